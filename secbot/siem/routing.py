"""One :class:`~secbot.siem.base.Siem` for the rest of SecBot, two stores behind it.

Elastic Security alerts live in the SIEM (status changes go to Kibana); alerts of mapped
intake sources live in SecBot's own alerts store (:class:`~secbot.siem.base.AlertArchive`).
Their uuids tell them apart: a mapped alert's is ``<source>:<id>`` with ``<source>`` one of
the mapped sources, which no Kibana uuid or ``_id`` looks like (hex, no colon). So triage,
commands and the hand-off keep calling one Siem, and each status change reaches the store
that holds the alert.

Polling reads the SIEM only: mapped alerts never arrive by poll. They enter the own store
from the durable intake stream, stored *before* their hand-off (the stream entry is
acknowledged only after both), so the stream, not a poll, is their safety net.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from secbot.domain.alert import Alert, lookup, parse_timestamp
from secbot.domain.stats import AlertStats
from secbot.domain.status import Status
from secbot.siem.base import AlertArchive, Checkpoint, Page, Siem, StatusChange


class RoutingSiem:
    """The SIEM plus SecBot's own store, routed by alert id (``<mapped source>:<id>``)."""

    def __init__(self, siem: Siem, own: AlertArchive, sources: Collection[str]) -> None:
        self.siem = siem
        self.own = own
        self.sources = frozenset(sources)

    def is_own(self, alert_id: str) -> bool:
        """True for ids of mapped-source alerts (``threatstack:123``)."""
        source, sep, rest = alert_id.partition(":")
        return bool(sep and rest) and source in self.sources

    def _split(self, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        own = [i for i in ids if self.is_own(i)]
        return [i for i in ids if not self.is_own(i)], own

    async def keep(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Mapped-source alerts into the own store (see :meth:`AlertArchive.keep`)."""
        return await self.own.keep(alerts)

    async def fetch_new(self, since: Checkpoint | None, *, overlap_seconds: float = 0.0,
                        limit: int = 500) -> Page:
        return await self.siem.fetch_new(since, overlap_seconds=overlap_seconds, limit=limit)

    async def set_status(self, ids: Sequence[str], status: Status, *, reason: str | None,
                         user: str) -> StatusChange:
        """Each id's status changed in the store that holds it; the outcomes joined.

        A message's alerts come from one rule, so in practice one store is asked. Were both
        asked and the second to fail outright, the first one's changes are not lost: its ids
        come back ``changed`` and the second's ``failed`` with the error.
        """
        siem_ids, own_ids = self._split(ids)
        results: list[StatusChange] = []
        for store, part in ((self.siem, siem_ids), (self.own, own_ids)):
            if not part:
                continue
            try:
                results.append(await store.set_status(part, status, reason=reason, user=user))
            except Exception as exc:
                if not results:
                    raise
                results.append(StatusChange(failed=tuple(part), error=f"{type(exc).__name__}: "
                                            f"{exc}"))
        return StatusChange(
            changed=tuple(i for r in results for i in r.changed),
            already=tuple(i for r in results for i in r.already),
            missing=tuple(i for r in results for i in r.missing),
            failed=tuple(i for r in results for i in r.failed),
            error="; ".join(r.error for r in results if r.error) or None)

    async def add_tags(self, ids: Sequence[str], tags: Sequence[str]) -> None:
        siem_ids, own_ids = self._split(ids)
        if siem_ids:
            await self.siem.add_tags(siem_ids, tags)
        if own_ids:
            await self.own.add_tags(own_ids, tags)

    async def get(self, alert_id: str) -> Alert | None:
        return await (self.own if self.is_own(alert_id) else self.siem).get(alert_id)

    async def get_many(self, ids: Sequence[str]) -> dict[str, Alert]:
        siem_ids, own_ids = self._split(ids)
        found: dict[str, Alert] = {}
        if siem_ids:
            found.update(await self.siem.get_many(siem_ids))
        if own_ids:
            found.update(await self.own.get_many(own_ids))
        return found

    async def open_related(self, any_of: Mapping[str, Sequence[str]], *, since: datetime,
                           size: int = 50) -> list[Alert]:
        """Open alerts of both stores sharing an entity value, newest first, at most ``size``."""
        both = await asyncio.gather(self.siem.open_related(any_of, since=since, size=size),
                                    self.own.open_related(any_of, since=since, size=size))
        merged = [alert for found in both for alert in found]
        merged.sort(key=lambda alert: _newest_first(alert.frozen))
        return merged[:size]

    async def search(self, filters: Mapping[str, Any], *, index: str | None = None,
                     since: datetime | None = None, size: int = 50) -> list[dict[str, Any]]:
        """Alerts of both stores (newest first) by default; a named index is the SIEM's."""
        if index is not None:
            return await self.siem.search(filters, index=index, since=since, size=size)
        both = await asyncio.gather(self.siem.search(filters, since=since, size=size),
                                    self.own.search(filters, since=since, size=size))
        merged = [doc for found in both for doc in found]
        merged.sort(key=_newest_first)
        return merged[:size]

    async def stats(self, since: datetime, until: datetime, *,
                    previous_since: datetime | None = None) -> AlertStats:
        """Both stores' counts side by side: their rows never share a (rule, source), since
        the SIEM's are ``elastic`` and the own store's are its mapped sources."""
        siem, own = await asyncio.gather(
            self.siem.stats(since, until, previous_since=previous_since),
            self.own.stats(since, until, previous_since=previous_since))
        return AlertStats(since=since, until=until, rows=(*siem.rows, *own.rows),
                          previous=(*siem.previous, *own.previous),
                          previous_since=previous_since)

    async def ping(self) -> bool:
        return all(await asyncio.gather(self.siem.ping(), self.own.ping()))

    async def close(self) -> None:
        await self.siem.close()
        await self.own.close()


def _newest_first(doc: Mapping[str, Any]) -> tuple[bool, float]:
    stamp = parse_timestamp(lookup(doc, "@timestamp"))
    return (stamp is None, -stamp.timestamp() if stamp is not None else 0.0)


__all__ = ["RoutingSiem"]
