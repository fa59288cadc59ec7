"""The weekly statistics report to ``SECBOT_REPORT_CHANNEL``, posted once across replicas.

Every replica runs :meth:`WeeklyReport.run` (a check a minute). Once the week's slot has come
(Monday 09:00 UTC by default) and the week's report is not marked done, a replica takes a
short lease named after the ISO week (only one can hold it), checks the mark again, posts the
table with the chart (``files_upload_v2`` with the table as its comment: one message), marks
the week done in the store, and gives the lease up. A replica that starts after the slot
still posts that week's report; the next week's waits for its slot.

A failure (Slack, the SIEM) releases the lease unmarked: the next check, on any replica,
tries again. A crash between the post and the mark can post the week twice (after the lease
expires) — the one window where "once" turns into "at least once", preferred to losing it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from secbot.resilience.loop import run_every
from secbot.siem.base import Siem
from secbot.stats.message import chart_file, slack_text
from secbot.stats.report import fetch_report
from secbot.store.base import Store

log = structlog.stdlib.get_logger(__name__)

DONE_CHECKPOINT = "stats:weekly-report"
#: Long enough for a slow SIEM and Slack; short enough that a dead replica's claim passes soon.
LEASE_SECONDS = 300.0
CHECK_SECONDS = 60.0


def week_slot(now: datetime, weekday: int, hour: int) -> datetime:
    """The report time of ``now``'s ISO week: ``weekday`` (0 = Monday) at ``hour`` UTC."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = day - timedelta(days=day.weekday())
    return monday + timedelta(days=weekday, hours=hour)


def week_key(moment: datetime) -> str:
    """``2026-W49``: the ISO week of ``moment``."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


class WeeklyReport:
    """Posts the last seven days' statistics to ``channel`` once a week."""

    def __init__(self, siem: Siem, store: Store, client: AsyncWebClient, channel: str, *,
                 owner: str, clock: Callable[[], datetime] | None = None, weekday: int = 0,
                 hour: int = 9, period: timedelta = timedelta(days=7),
                 check_seconds: float = CHECK_SECONDS) -> None:
        self.siem, self.store, self.client, self.channel = siem, store, client, channel
        self.owner = owner
        self._clock = clock or (lambda: datetime.now(UTC))
        self.weekday, self.hour, self.period = weekday, hour, period
        self.check_seconds = check_seconds

    async def run(self) -> None:
        """Check now, then every ``check_seconds``, until cancelled; failures are logged."""
        await run_every(self.tick, self.check_seconds, what="weekly report")

    async def tick(self) -> bool:
        """Post this week's report if it is due and nobody posted it; True when this did."""
        now = self._clock()
        slot = week_slot(now, self.weekday, self.hour)
        if now < slot:
            return False
        key = week_key(slot)
        if await self.store.get_checkpoint(DONE_CHECKPOINT) == key:
            return False
        lease = f"{DONE_CHECKPOINT}:{key}"
        if not await self.store.acquire_lease(lease, self.owner, LEASE_SECONDS):
            return False  # another replica is posting it
        try:
            if await self.store.get_checkpoint(DONE_CHECKPOINT) == key:
                return False  # posted while this replica was asking for the lease
            await self._post(slot, key)
            await self.store.set_checkpoint(DONE_CHECKPOINT, key)
            return True
        finally:
            await self.store.release_lease(lease, self.owner)

    async def _post(self, slot: datetime, key: str) -> None:
        report = await fetch_report(self.siem, self.period, slot)
        chart = await chart_file(report)
        await self.client.files_upload_v2(
            channel=self.channel, initial_comment=slack_text(report, f"Weekly report {key}"),
            content=chart.content, filename=chart.filename, title=chart.title,
            alt_txt=chart.alt_txt)
        log.info("weekly report %s posted to %s", key, self.channel)


__all__ = ["DONE_CHECKPOINT", "WeeklyReport", "week_key", "week_slot"]
