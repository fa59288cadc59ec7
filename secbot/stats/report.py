"""``secbot stats`` as a report: per rule, per source, the top five and the change against the
previous period, from one :meth:`~secbot.siem.base.Siem.stats` call (DESIGN.md §3).

The SIEM counts per (rule, source); a rule seen from several sources (rare: mapped sources
name their own rules) is summed into one line here, and its medians are then the mean of the
sources' medians weighted by how many alerts each one's median covers — exact for the usual
single-source rule, an approximation otherwise (medians cannot be merged exactly).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from secbot.domain.errors import SecBotError
from secbot.domain.stats import AlertStats, RuleCounts
from secbot.siem.base import Siem

_PERIOD = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_PERIOD = timedelta(days=366)
TOP = 5


class PeriodError(SecBotError, ValueError):
    """A period SecBot cannot read (``7d``, ``24h``, ``2w``)."""


def parse_period(text: str) -> timedelta:
    """``7d`` → 7 days; hours (``h``), days (``d``) and weeks (``w``), at most a year."""
    match = _PERIOD.match(text or "")
    if match is None:
        raise PeriodError(f"cannot read the period {text!r}: use hours, days or weeks, "
                          "e.g. 24h, 7d, 2w")
    period = int(match.group(1)) * _UNIT[match.group(2)]
    if not timedelta(0) < period <= MAX_PERIOD:
        raise PeriodError(f"the period {text!r} must be between 1h and 366d")
    return period


@dataclass(frozen=True)
class Line:
    """One rule (or one source, or everything) in the period."""

    name: str
    alerts: int = 0
    auto_closed: int = 0
    closed: int = 0
    acknowledged: int = 0
    open: int = 0
    closed_by_reason: tuple[tuple[str, int], ...] = ()
    mtta_s: float | None = None
    mttr_s: float | None = None
    previous_alerts: int = 0
    sources: tuple[str, ...] = ()

    @property
    def change(self) -> float | None:
        """Relative change of ``alerts`` against the previous period; None from zero."""
        if not self.previous_alerts:
            return None
        return (self.alerts - self.previous_alerts) / self.previous_alerts


@dataclass(frozen=True)
class StatsReport:
    """What ``secbot stats``, ``@SecBot stats`` and the weekly report show."""

    since: datetime
    until: datetime
    previous_since: datetime
    rules: tuple[Line, ...]
    sources: tuple[Line, ...]
    total: Line

    @property
    def top(self) -> tuple[Line, ...]:
        """The five rules with the most alerts (ties by name)."""
        return tuple(line for line in self.rules if line.alerts)[:TOP]


def _weighted(pairs: Sequence[tuple[float | None, int]]) -> float | None:
    known = [(value, weight) for value, weight in pairs if value is not None and weight > 0]
    if not known:
        return None
    return sum(value * weight for value, weight in known) / sum(w for _, w in known)


def _merge(name: str, rows: Sequence[RuleCounts], previous: int) -> Line:
    reasons: dict[str, int] = defaultdict(int)
    for row in rows:
        for reason, count in row.closed_by_reason:
            reasons[reason] += count
    return Line(
        name=name, alerts=sum(r.alerts for r in rows),
        auto_closed=sum(r.auto_closed for r in rows), closed=sum(r.closed for r in rows),
        acknowledged=sum(r.acknowledged for r in rows), open=sum(r.open for r in rows),
        closed_by_reason=tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        mtta_s=_weighted([(r.mtta_s, r.closed + r.acknowledged) for r in rows]),
        mttr_s=_weighted([(r.mttr_s, r.closed) for r in rows]),
        previous_alerts=previous, sources=tuple(sorted({r.source for r in rows})))


def _lines(rows: Sequence[RuleCounts], previous: Sequence[RuleCounts], key: str
           ) -> tuple[Line, ...]:
    groups: dict[str, list[RuleCounts]] = defaultdict(list)
    before: dict[str, int] = defaultdict(int)
    for row in rows:
        groups[getattr(row, key)].append(row)
    for row in previous:
        before[getattr(row, key)] += row.alerts
    lines = [_merge(name, group, before.get(name, 0)) for name, group in groups.items()]
    lines += [Line(name=name, previous_alerts=count) for name, count in before.items()
              if name not in groups]  # quiet now, busy before: the drop is news too
    return tuple(sorted(lines, key=lambda line: (-line.alerts, line.name)))


def build_report(stats: AlertStats) -> StatsReport:
    """Per rule, per source and in total, with the previous period's alert counts."""
    previous_since = stats.previous_since or stats.since - (stats.until - stats.since)
    total = _merge("all", stats.rows, sum(r.alerts for r in stats.previous))
    return StatsReport(since=stats.since, until=stats.until, previous_since=previous_since,
                       rules=_lines(stats.rows, stats.previous, "rule"),
                       sources=_lines(stats.rows, stats.previous, "source"),
                       total=replace(total, sources=()))


async def fetch_report(siem: Siem, period: timedelta, now: datetime) -> StatsReport:
    """The report of ``[now − period, now)`` and the period before: one SIEM stats call."""
    since = now - period
    return build_report(await siem.stats(since, now, previous_since=since - period))


def _line_json(line: Line) -> dict[str, Any]:
    return {"alerts": line.alerts, "auto_closed": line.auto_closed, "closed": line.closed,
            "acknowledged": line.acknowledged, "open": line.open,
            "mtta_s": line.mtta_s, "mttr_s": line.mttr_s,
            "closed_by_reason": dict(line.closed_by_reason),
            "previous_alerts": line.previous_alerts, "change": line.change}


def to_json(report: StatsReport) -> dict[str, Any]:
    """The ``--json`` object of DESIGN.md §3 (``since``, ``until``, ``rules``), plus
    ``sources``, ``top``, ``total`` and ``previous`` (the period before)."""
    return {
        "since": report.since.isoformat(), "until": report.until.isoformat(),
        "rules": [{"rule": line.name, **_line_json(line), "sources": list(line.sources)}
                  for line in report.rules],
        "sources": [{"source": line.name, **_line_json(line)} for line in report.sources],
        "top": [line.name for line in report.top],
        "total": _line_json(report.total),
        "previous": {"since": report.previous_since.isoformat(),
                     "until": report.since.isoformat(),
                     "alerts": report.total.previous_alerts},
    }


__all__ = ["Line", "PeriodError", "StatsReport", "build_report", "fetch_report",
           "parse_period", "to_json"]
