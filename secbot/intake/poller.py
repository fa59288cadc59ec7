"""The alert poller: new SIEM alerts → the handler, each exactly once, crash-safe.

Position = the (``@timestamp``, uuid) of the last alert handed off, kept in the Store. Every poll
re-reads ``overlap_seconds`` behind it because Elasticsearch makes documents searchable late
(refresh interval, delayed or backfilling rule runs); the re-read alerts that were already
handled are skipped by uuid. Within one poll, the following pages continue from the previous
page's last alert with no overlap, so paging always terminates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from secbot.domain.alert import Alert
from secbot.siem.base import Checkpoint, Siem

log = structlog.stdlib.get_logger(__name__)

# The return value is ignored: handlers may report what they did (e.g. a triage decision).
AlertHandler = Callable[[Alert], Awaitable[object]]


class PollerStore(Protocol):
    """The part of :class:`secbot.store.base.Store` the poller needs."""

    async def get_checkpoint(self, name: str) -> str | None: ...

    async def set_checkpoint(self, name: str, value: str) -> None: ...

    async def is_posted(self, uuid: str) -> bool: ...


def _position(alert: Alert) -> Checkpoint | None:
    stamp = alert.timestamp
    return None if stamp is None else Checkpoint(timestamp=stamp, uuid=alert.uuid)


def _after(a: Checkpoint, b: Checkpoint | None) -> bool:
    """True if ``a`` sorts strictly after ``b`` in (timestamp, uuid) order."""
    return b is None or (a.timestamp, a.uuid) > (b.timestamp, b.uuid)


class AlertPoller:
    """Drains new alerts from a :class:`~secbot.siem.base.Siem` into a handler.

    Guarantees: alerts reach the handler in (``@timestamp``, uuid) order within a page run;
    an alert whose uuid the store reports as posted, or that this poller already handed off,
    is not handed off again; the checkpoint only moves past alerts whose handler returned, so
    a crash re-reads (and the store's posted-marker dedupes) instead of skipping.
    """

    def __init__(
        self,
        siem: Siem,
        store: PollerStore,
        *,
        overlap_seconds: float = 300.0,
        page_size: int = 500,
        checkpoint_name: str = "alerts",
        start: Checkpoint | None = None,
        partition: Callable[[Alert], Hashable] | None = None,
    ) -> None:
        self.siem = siem
        self.store = store
        self.overlap_seconds = overlap_seconds
        self.page_size = page_size
        self.checkpoint_name = checkpoint_name
        self._start = start
        # Alerts with different partition keys (e.g. rules) are independent and run
        # concurrently; alerts sharing a key keep their order (dedup threading depends on it).
        self.partition = partition
        self.checkpoint: Checkpoint | None = None
        # uuid -> @timestamp of alerts handed off by this process: spares a store round trip
        # for every overlap re-read and covers handlers that do not mark alerts posted.
        self._handled: dict[str, datetime] = {}

    async def _load_checkpoint(self) -> Checkpoint | None:
        stored = await self._stored_checkpoint()
        remembered = self.checkpoint
        if remembered is not None and (stored is None or _after(remembered, stored)):
            # The store lost (or rolled back) what this process wrote, e.g. Redis restarted
            # empty: re-reading the whole index would re-post every open alert.
            log.warning("store checkpoint %s behind memory; continuing from %s",
                        stored.dumps() if stored else None, remembered.dumps())
            return remembered
        return stored

    async def _stored_checkpoint(self) -> Checkpoint | None:
        text = await self.store.get_checkpoint(self.checkpoint_name)
        if not text:
            return self._start
        try:
            return Checkpoint.loads(text)
        except ValueError:
            # Re-reading from the start is safe (posted alerts are skipped); crashing is not.
            log.warning("unreadable checkpoint %r; polling from the start", text)
            return self._start

    async def _save(self, checkpoint: Checkpoint | None, saved: Checkpoint | None) -> None:
        if checkpoint is not None and checkpoint != saved:
            await self.store.set_checkpoint(self.checkpoint_name, checkpoint.dumps())
        self.checkpoint = checkpoint

    async def _is_done(self, alert: Alert) -> bool:
        if alert.uuid in self._handled:
            return True
        if not await self.store.is_posted(alert.uuid):
            return False
        if alert.timestamp is not None:  # remembered: the next overlap re-read costs nothing
            self._handled[alert.uuid] = alert.timestamp
        return True

    async def poll_once(self, handler: AlertHandler) -> int:
        """Hand every new alert to ``handler``; returns how many were handed off.

        If ``handler`` raises, the checkpoint stays at the last alert that succeeded and the
        exception propagates; the next poll starts with the failed alert again.
        """
        saved = await self._load_checkpoint()
        checkpoint = saved
        since, overlap = saved, self.overlap_seconds
        previous_last: Checkpoint | None = None
        delivered = 0
        try:
            while True:
                page = await self.siem.fetch_new(
                    since, overlap_seconds=overlap, limit=self.page_size
                )
                handled, checkpoint, error = await self._run_page(page.alerts, handler, checkpoint)
                delivered += handled
                if error is not None:
                    raise error
                # Persist per page: one store write per page, at most a page re-read on crash.
                await self._save(checkpoint, saved)
                saved = checkpoint
                last = _position(page.alerts[-1]) if page.alerts else None
                if not page.more or last is None:
                    break
                if previous_last is not None and not _after(last, previous_last):
                    break  # a backend that does not advance must not loop us forever
                since, overlap, previous_last = last, 0.0, last
        finally:
            await self._save(checkpoint, saved)
            self._forget_before(checkpoint)
        return delivered

    async def _handle_group(
        self,
        alerts: list[tuple[int, Alert]],
        handler: AlertHandler,
        failed: dict[int, BaseException],
    ) -> int:
        """One partition's alerts, in order; stops at its first failure."""
        handled = 0
        for index, alert in alerts:
            if await self._is_done(alert):
                continue
            try:
                await handler(alert)
            except Exception as exc:
                failed[index] = exc
                return handled
            handled += 1
            if alert.timestamp is not None:
                self._handled[alert.uuid] = alert.timestamp
        return handled

    async def _run_page(
        self, alerts: Sequence[Alert], handler: AlertHandler, checkpoint: Checkpoint | None
    ) -> tuple[int, Checkpoint | None, BaseException | None]:
        """Hand a page off; partitions run concurrently, each in order.

        The checkpoint advances over the page in order and stops before the first alert that
        failed (or whose partition stopped before it): nothing after a failure is skipped.
        """
        groups: dict[Hashable, list[tuple[int, Alert]]] = {}
        for index, alert in enumerate(alerts):
            key = self.partition(alert) if self.partition else None
            groups.setdefault(key, []).append((index, alert))
        failed: dict[int, BaseException] = {}
        counts = await asyncio.gather(
            *(self._handle_group(items, handler, failed) for items in groups.values())
        )
        first_failure = min(failed, default=len(alerts))
        for alert in alerts[:first_failure]:
            position = _position(alert)
            if position is not None and _after(position, checkpoint):
                checkpoint = position
        return sum(counts), checkpoint, failed.get(first_failure)

    def _forget_before(self, checkpoint: Checkpoint | None) -> None:
        """Drop memo entries the overlap window can no longer re-read."""
        if checkpoint is None:
            return
        horizon = checkpoint.timestamp - timedelta(seconds=self.overlap_seconds + 1)
        stale = [uuid for uuid, stamp in self._handled.items() if stamp < horizon]
        for uuid in stale:
            del self._handled[uuid]


__all__ = ["AlertHandler", "AlertPoller", "PollerStore"]
