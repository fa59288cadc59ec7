"""Alert statistics as the SIEM computes them (DESIGN.md §3, ``secbot stats``).

One :class:`RuleCounts` per (SIEM rule name, source) for alerts whose ``@timestamp`` lies in
``[since, until)``. Every figure comes from the alert documents as they are now, so an alert
is counted once, in its current status:

- ``auto_closed``: closed by SecBot — credited to ``secbot`` in ``kibana.alert.workflow_user``
  (embedded and own stores) or tagged ``closed_by:secbot`` (Kibana credits its API key's user
  profile, so the tag is the only mark SecBot can leave), and never reopened since (no
  ``reopened_by:`` tag).
- ``closed``: closed by a person (every other close); ``closed_by_reason`` splits them by
  ``kibana.alert.workflow_reason`` (``unspecified`` when none).
- ``acknowledged``: acknowledged (or Kibana's legacy ``in-progress``) now; ``open``: open now.
- ``mtta_s``: median seconds from ``@timestamp`` to the latest status change, over alerts a
  person acted on (acknowledged or closed by a person). The SIEM keeps only the latest change
  time (``kibana.alert.workflow_status_updated_at``), so for an alert acknowledged and later
  closed this is its close time: an upper bound of its first action. ``mttr_s``: the same
  over alerts closed by a person. Auto-closed alerts are in neither median: they would pull
  both towards zero and hide how long people take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

#: Who SecBot is in ``workflow_user`` and tags (``closed_by:secbot``).
BOT_USER = "secbot"
AUTO_CLOSE_TAG = f"closed_by:{BOT_USER}"
REOPEN_TAG_PREFIX = "reopened_by:"
NO_REASON = "unspecified"
NO_RULE = "(no rule name)"


@dataclass(frozen=True)
class RuleCounts:
    """One rule's alerts from one source in the period (see the module docstring)."""

    rule: str
    source: str
    alerts: int = 0
    auto_closed: int = 0
    closed: int = 0
    acknowledged: int = 0
    open: int = 0
    closed_by_reason: tuple[tuple[str, int], ...] = ()
    mtta_s: float | None = None
    mttr_s: float | None = None


@dataclass(frozen=True)
class AlertStats:
    """What :meth:`secbot.siem.base.Siem.stats` answers: counts per (rule, source)."""

    since: datetime
    until: datetime
    rows: tuple[RuleCounts, ...] = field(default=())
    #: The period before, ``[previous_since, since)``, when asked for (same counting).
    previous: tuple[RuleCounts, ...] = field(default=())
    previous_since: datetime | None = None

    def sources(self) -> Sequence[str]:
        """The sources present, sorted."""
        return sorted({row.source for row in self.rows})


def median(values: Sequence[float]) -> float | None:
    """The median as Elasticsearch's exact ``percentiles`` at 50 gives it for small sets:
    the mean of the two middle values of an even count; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2.0


__all__ = ["AUTO_CLOSE_TAG", "BOT_USER", "NO_REASON", "NO_RULE", "REOPEN_TAG_PREFIX",
           "AlertStats", "RuleCounts", "median"]
