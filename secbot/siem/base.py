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
    """Result of ``set_status``: how many alerts changed and how many were already there."""

    updated: int
    noops: int
    missing: Sequence[str] = ()


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
        """Add tags (``kibana.alert.workflow_tags``), e.g. ``closed_by:U123``."""

    async def get(self, alert_id: str) -> Alert | None:
        """One alert by ``_id``/uuid, or None."""

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

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
