"""The report as a Slack message (``@SecBot stats`` and the weekly report) and its chart file.

Rule names are SIEM content and may carry Slack control sequences (``<!channel>``): every
line is escaped (:func:`secbot.render.mrkdwn.escape`) and backticks are replaced, so the
code block can neither notify anyone nor end early.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from secbot.render import mrkdwn as md
from secbot.stats.chart import render_png_async
from secbot.stats.report import Line, StatsReport
from secbot.stats.table import change, duration, period_title, reasons, table

#: Rules in a Slack table: the rest is summed in the total row (and in ``secbot stats``).
SLACK_RULES = 15


@dataclass(frozen=True)
class ChartFile:
    """A file to upload beside a message (``files_upload_v2``)."""

    filename: str
    content: bytes
    title: str
    alt_txt: str


def _block(text: str) -> str:
    lines = [md.escape(line).replace("`", "\u02cb") for line in text.splitlines()]
    return "```\n" + "\n".join(lines) + "\n```"


def _versus(line: Line) -> str:
    if line.change is None:
        return f"{line.previous_alerts:,} the period before"
    return f"{change(line)} vs the period before"


def slack_text(report: StatsReport, heading: str = "Alert statistics") -> str:
    """Heading, per-rule and per-source tables, top five and closing reasons."""
    rules = report.rules[:SLACK_RULES]
    total = report.total
    parts = [f"*{md.escape(heading)}* — {md.escape(period_title(report))}",
             f"{total.alerts:,} alerts ({_versus(total)}): "
             f"{total.auto_closed:,} auto-closed, {total.closed:,} closed by people, "
             f"{total.acknowledged:,} acknowledged, {total.open:,} open; "
             f"median time to first action {duration(total.mtta_s)}, to close "
             f"{duration(total.mttr_s)}.",
             _block(table("rule", rules, total))]
    if len(report.rules) > len(rules):
        parts.append(f"_{len(report.rules) - len(rules)} more rules: `secbot stats`_")
    if len(report.sources) > 1:
        parts.append(_block(table("source", report.sources)))
    if report.top:
        parts.append("*Top five:* " + ", ".join(
            f"{i}. {md.escape(line.name)} ({line.alerts:,})"
            for i, line in enumerate(report.top, start=1)))
    by_reason = reasons(rules)
    if by_reason:
        parts.append("*Closed by people, by reason:*\n" + _block(by_reason))
    return "\n".join(parts)


async def chart_file(report: StatsReport) -> ChartFile:
    """The PNG chart of the report (rendered off the event loop)."""
    days = (report.until - report.since) / timedelta(days=1)
    return ChartFile(filename=f"secbot-stats-{report.until:%Y%m%d}.png",
                     content=await render_png_async(report),
                     title=f"SecBot alerts, last {days:g} days",
                     alt_txt="Stacked bars per rule: auto-closed, closed by people, "
                             "acknowledged and open alerts")


__all__ = ["ChartFile", "chart_file", "slack_text"]
