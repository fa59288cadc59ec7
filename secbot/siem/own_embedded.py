"""SecBot's own alerts store on SQLite: mapped-source alerts in the demo and in tests.

The :class:`~secbot.siem.base.AlertArchive` contract by composition over
:class:`~secbot.siem.embedded.EmbeddedSiem` on an index (table) of its own, so polling,
status changes (Kibana's semantics: same status is a no-op, the reason kept only on close,
the person credited in ``kibana.alert.workflow_user``), tags and searches behave exactly as
the embedded SIEM's. What it adds is :meth:`keep`: insert-if-absent, never an overwrite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from secbot.domain.alert import Alert
from secbot.domain.stats import AlertStats
from secbot.domain.status import Status
from secbot.siem.base import OWN_ALERTS_INDEX, Checkpoint, Page, StatusChange
from secbot.siem.embedded import EmbeddedSiem


class EmbeddedAlertStore:
    """Mapped-source alerts in a SQLite table of their own (``:memory:`` by default)."""

    def __init__(self, path: str | Path = ":memory:", *, index: str = OWN_ALERTS_INDEX) -> None:
        self.index = index
        self._db = EmbeddedSiem(path, index=index)
        # keep() reads then writes; one writer at a time makes that insert-if-absent.
        self._keeping = asyncio.Lock()

    async def keep(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store the alerts not stored yet (by uuid); each one back as stored."""
        async with self._keeping:
            stored: list[Alert] = []
            for alert in alerts:
                found = await self._db.get(alert.uuid)
                if found is None:
                    await self._db.insert([{"_id": alert.uuid, "_source": dict(alert.source)}])
                    found = await self._db.get(alert.uuid)
                assert found is not None  # just written under the lock
                stored.append(found)
            return stored

    async def insert(self, docs: Sequence[Mapping[str, Any]], *, index: str | None = None) -> int:
        """Seed documents as they are (tests, fixtures): overwrites, unlike :meth:`keep`."""
        return await self._db.insert(docs, index=index)

    # --- the Siem protocol, delegated --------------------------------------------------------
    async def fetch_new(
        self, since: Checkpoint | None, *, overlap_seconds: float = 0.0, limit: int = 500
    ) -> Page:
        return await self._db.fetch_new(since, overlap_seconds=overlap_seconds, limit=limit)

    async def set_status(
        self, ids: Sequence[str], status: Status, *, reason: str | None, user: str
    ) -> StatusChange:
        return await self._db.set_status(ids, status, reason=reason, user=user)

    async def add_tags(self, ids: Sequence[str], tags: Sequence[str]) -> None:
        await self._db.add_tags(ids, tags)

    async def get(self, alert_id: str) -> Alert | None:
        return await self._db.get(alert_id)

    async def get_many(self, ids: Sequence[str]) -> dict[str, Alert]:
        return await self._db.get_many(ids)

    async def open_related(self, any_of: Mapping[str, Sequence[str]], *, since: datetime,
                           size: int = 50) -> list[Alert]:
        return await self._db.open_related(any_of, since=since, size=size)

    async def search(
        self,
        filters: Mapping[str, Any],
        *,
        index: str | None = None,
        since: datetime | None = None,
        size: int = 50,
    ) -> list[dict[str, Any]]:
        return await self._db.search(filters, index=index, since=since, size=size)

    async def stats(self, since: datetime, until: datetime, *,
                    previous_since: datetime | None = None) -> AlertStats:
        """Per (rule, ``secbot.source``): the same SQL as the embedded SIEM's."""
        return await self._db.stats(since, until, previous_since=previous_since)

    async def ping(self) -> bool:
        return await self._db.ping()

    async def close(self) -> None:
        await self._db.close()


__all__ = ["EmbeddedAlertStore"]
