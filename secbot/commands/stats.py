"""``@SecBot stats [7d]``: the statistics table in the thread, and the chart as a PNG.

Triagers only (the router checks): the figures say which attacks were seen and how fast the
team reacts. The SIEM computes the counts (:meth:`~secbot.siem.base.Siem.stats`); the chart
is rendered off the event loop and uploaded by the chat layer with ``files_upload_v2``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from secbot.commands.context import CommandContext, Reply
from secbot.domain.secrets import redact
from secbot.render import mrkdwn as md
from secbot.siem.base import Siem, SiemError
from secbot.stats.message import chart_file, slack_text
from secbot.stats.report import PeriodError, fetch_report, parse_period

DEFAULT_PERIOD = "7d"


class StatsCommand:
    """Answers ``stats [period]`` with the table and its chart."""

    def __init__(self, siem: Siem, *, clock: Callable[[], datetime] | None = None) -> None:
        self.siem = siem
        self._clock = clock or (lambda: datetime.now(UTC))

    async def __call__(self, args: list[str], ctx: CommandContext) -> Reply:
        text = args[0] if args else DEFAULT_PERIOD
        try:
            period = parse_period(text)
        except PeriodError as exc:
            return Reply(f"{exc}. Example: `@SecBot stats 7d`.", ephemeral=True)
        try:
            report = await fetch_report(self.siem, period, self._clock())
        except SiemError as exc:
            return Reply(md.escape(redact(f"SecBot could not get statistics from the SIEM: {exc}")),
                         ephemeral=True)
        return Reply(slack_text(report), upload=await chart_file(report))


__all__ = ["DEFAULT_PERIOD", "StatsCommand"]
