"""The report as monospace text: the terminal (``secbot stats``) and Slack code blocks.

Columns per rule: alerts, auto-closed, closed by people, acknowledged, open, median time to
first human action (MTTA), median time to close (MTTR), change against the previous period.
"""

from __future__ import annotations

from collections.abc import Sequence

from secbot.stats.report import Line, StatsReport

HEADERS = ("alerts", "auto", "closed", "ack", "open", "MTTA", "MTTR", "vs prev")
#: Rule names longer than this are cut (with …) so a Slack code block does not wrap.
NAME_WIDTH = 40


def duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3.5h``, ``2.1d``; ``–`` when nobody acted."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def change(line: Line) -> str:
    """``+25%``, ``-10%``, ``new`` (nothing before), ``=`` (no change)."""
    if line.change is None:
        return "new" if line.alerts else "–"
    if line.change == 0:
        return "="
    return f"{line.change:+.0%}"


def _cells(line: Line) -> list[str]:
    return [f"{line.alerts:,}", f"{line.auto_closed:,}", f"{line.closed:,}",
            f"{line.acknowledged:,}", f"{line.open:,}", duration(line.mtta_s),
            duration(line.mttr_s), change(line)]


def _name(text: str) -> str:
    return text if len(text) <= NAME_WIDTH else text[:NAME_WIDTH - 1] + "…"


def table(title: str, lines: Sequence[Line], total: Line | None = None) -> str:
    """Aligned columns: names left, figures right; a total row under a rule when given."""
    rows = [[_name(line.name), *_cells(line)] for line in lines]
    if total is not None:
        rows.append(["total", *_cells(total)])
    header = [title, *HEADERS]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def render(row: list[str]) -> str:
        return "  ".join([row[0].ljust(widths[0]),
                          *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:],
                                                                       strict=True))])

    out = [render(header), render(["-" * w for w in widths])]
    out += [render(row) for row in rows[:-1 if total is not None else None]]
    if total is not None:
        out += [render(["-" * w for w in widths]), render(rows[-1])]
    return "\n".join(line.rstrip() for line in out)


def reasons(lines: Sequence[Line]) -> str:
    """``rule: false_positive 3, duplicate 1`` per rule that people closed."""
    parts = [f"{_name(line.name)}: " + ", ".join(f"{reason} {count:,}"
                                                 for reason, count in line.closed_by_reason)
             for line in lines if line.closed_by_reason]
    return "\n".join(parts)


def period_title(report: StatsReport) -> str:
    """``2026-11-25 09:00 → 2026-12-02 09:00 UTC``."""
    return (f"{report.since:%Y-%m-%d %H:%M} → {report.until:%Y-%m-%d %H:%M} UTC "
            f"(previous: from {report.previous_since:%Y-%m-%d %H:%M})")


def render_text(report: StatsReport, *, max_rules: int | None = None) -> str:
    """The whole report for a terminal: per rule, per source, top five, closing reasons."""
    rules = report.rules if max_rules is None else report.rules[:max_rules]
    parts = [f"Alerts {period_title(report)}", "", table("rule", rules, report.total), "",
             table("source", report.sources), ""]
    if len(rules) < len(report.rules):
        parts.insert(3, f"(showing {len(rules)} of {len(report.rules)} rules)")
    top = ", ".join(f"{i}. {line.name} ({line.alerts:,})" for i, line in
                    enumerate(report.top, start=1))
    parts.append(f"Top five: {top or 'no alerts'}")
    by_reason = reasons(rules)
    if by_reason:
        parts += ["", "Closed by people, by reason:", by_reason]
    return "\n".join(parts)


__all__ = ["change", "duration", "period_title", "reasons", "render_text", "table"]
