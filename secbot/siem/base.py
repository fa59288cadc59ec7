"""The SIEM contract (DESIGN.md §2): where alerts come from and where their status goes.

Implementations: :mod:`secbot.siem.embedded` (SQLite, demo and tests) and
:mod:`secbot.siem.elastic` (Elasticsearch reads + Kibana detection-engine status API).
Both pass ``tests/test_siem_contract.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from secbot.domain.alert import Alert
from secbot.domain.errors import SecBotError
from secbot.domain.stats import AlertStats
from secbot.domain.status import Status


@dataclass(frozen=True)
class Checkpoint:
    """Position of the poller: the last handed-off alert's ``@timestamp`` and uuid.

    Serialised as ``"<iso timestamp>|<uuid>"`` so the store can keep it as one string.
    """

    timestamp: datetime
    uuid: str = ""

    def dumps(self) -> str:
        return f"{self.timestamp.isoformat()}|{self.uuid}"

    @classmethod
    def loads(cls, text: str) -> Checkpoint:
        stamp, _, uuid = text.partition("|")
        return cls(timestamp=datetime.fromisoformat(stamp), uuid=uuid)


@dataclass(frozen=True)
class Page:
    """A page of new alerts in (``@timestamp``, uuid) order; ``more`` if another page follows."""

    alerts: Sequence[Alert]
    more: bool


@dataclass(frozen=True)
class StatusChange:
    """What ``set_status`` did, per requested id (each id lands in exactly one group).

    ``changed``: now in the status because of this call. ``already``: were in it (a no-op).
    ``missing``: not in the SIEM. ``failed``: the SIEM failed part-way through a bulk change
    and did not confirm these (``error`` says how); a timeout may hide a change that landed,
    so a caller that must know reads them again. ``set_status`` raises only when it confirmed
    nothing at all; once part of a change landed it returns, so that knowledge is never lost.
    """

    updated: int = 0
    noops: int = 0
    missing: Sequence[str] = ()
    changed: tuple[str, ...] = ()
    already: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    error: str | None = None

    def __post_init__(self) -> None:
        # The counts follow the ids when ids are given; a store that only counts (no bulk
        # partial results) may still give just ``updated``/``noops``.
        if self.changed and not self.updated:
            object.__setattr__(self, "updated", len(self.changed))
        if self.already and not self.noops:
            object.__setattr__(self, "noops", len(self.already))

    @property
    def complete(self) -> bool:
        """True when nothing failed (every id is changed, already there, or missing)."""
        return not self.failed


#: Ids per SIEM request in bulk reads and writes: a 1,000-alert group costs a handful of calls.
#: Kibana's ``signal_ids`` is a ``terms`` filter (Elasticsearch allows 65,536 terms) and a
#: lookup asks for two hits per id, well inside the default 10,000-hit result window.
BULK_CHUNK = 500


def chunks(ids: Sequence[str], size: int = BULK_CHUNK) -> list[list[str]]:
    """``ids`` in order, in lists of at most ``size``."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), max(1, size))]


class SiemError(SecBotError):
    """The SIEM failed in a way the caller should report (message names URL/index)."""


class Siem(Protocol):
    """A source of detection alerts that can also change their triage status."""

    async def fetch_new(
        self, since: Checkpoint | None, *, overlap_seconds: float = 0.0, limit: int = 500
    ) -> Page:
        """Open, non-building-block alerts strictly after ``since`` minus ``overlap_seconds``.

        Ordered by (``@timestamp``, uuid). Re-reading during the overlap is expected; callers
        dedupe by uuid. ``since=None`` means from the beginning.
        """

    async def set_status(
        self, ids: Sequence[str], status: Status, *, reason: str | None, user: str
    ) -> StatusChange:
        """Change status; same status is a no-op. ``user`` is credited (tag/workflow_user)."""

    async def add_tags(self, ids: Sequence[str], tags: Sequence[str]) -> None:
        """Add tags (``kibana.alert.workflow_tags``), e.g. ``closed_by:U123``; bulk, chunked."""

    async def get(self, alert_id: str) -> Alert | None:
        """One alert by ``_id``/uuid, or None."""

    async def get_many(self, ids: Sequence[str]) -> dict[str, Alert]:
        """The alerts among ``ids`` (``_id`` or uuid), keyed by the id asked for; unknown ids
        are absent. Bounded: one read per :data:`BULK_CHUNK` ids, not one per alert."""

    async def open_related(
        self,
        any_of: Mapping[str, Sequence[str]],
        *,
        since: datetime,
        size: int = 50,
    ) -> list[Alert]:
        """Open alerts since ``since`` where any named field equals one of its values.

        Newest first, at most ``size`` (one bounded search): "what else is open for this
        user or host" (DESIGN.md §10 groups, related alerts). Empty ``any_of``: no alerts.
        """

    async def search(
        self,
        filters: Mapping[str, Any],
        *,
        index: str | None = None,
        since: datetime | None = None,
        size: int = 50,
    ) -> list[dict[str, Any]]:
        """Documents (``_source``) whose fields equal ``filters``, newest first.

        ``index`` defaults to the alerts index; investigation commands pass log indices.
        """

    async def stats(self, since: datetime, until: datetime, *,
                    previous_since: datetime | None = None) -> AlertStats:
        """Counts per (rule, source) of non-building-block alerts stamped in ``[since,
        until)`` — and in ``[previous_since, since)`` when given, for the change against the
        period before — computed by the store in one request (an aggregation, SQL), never
        by reading every alert. What is counted how: :mod:`secbot.domain.stats`."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


#: Where SecBot keeps the alerts of mapped intake sources (DESIGN.md §11): one index with a
#: ``secbot.source`` field, rather than one per source, so one search, count or poll covers
#: them all and a new source needs no index, template or privilege of its own.
OWN_ALERTS_INDEX = "secbot-alerts"


class AlertArchive(Siem, Protocol):
    """A :class:`Siem` that SecBot writes itself: the alerts store of mapped sources.

    Documents carry the workflow fields Kibana uses (``kibana.alert.workflow_status``,
    ``_user``, ``_status_updated_at``, ``_reason``, ``workflow_tags``), so they are searched,
    counted and triaged like SIEM alerts. Implementations: :mod:`secbot.siem.own_embedded`
    (SQLite) and :mod:`secbot.siem.own_elastic` (an Elasticsearch index of SecBot's own).
    """

    async def keep(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store alerts not stored yet; returns each one *as stored* (in the given order).

        An alert already there is not overwritten: a source re-sending an alert, or the
        intake redelivering it after a crash, must not reopen what a person closed. Callers
        hand an alert off only while the stored one is open.
        """
        ...
