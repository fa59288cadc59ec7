"""The intake consumer: stored pushed alerts → the same hand-off as polled ones.

Runs in every replica (the stream's consumer group spreads the entries). An entry is
acknowledged only after the handler returned, whatever it returned (``None`` = already
handled, e.g. polled first). If the handler raises (Slack down, the post claim busy because
another replica or a killed process holds it), the entry stays pending and is taken over
again by ``XAUTOCLAIM`` after the queue's ``reclaim_after``: nothing is skipped, and the
hand-off's post claim + posted marker keep a second attempt from posting twice.

Alerts of mapped sources (not ``elastic``) are first kept in SecBot's own alerts store
(:class:`~secbot.siem.base.AlertArchive`, insert-if-absent), and the alert handed off is the
stored one: its status changes and auto-close then go to that store. An alert the store
already holds as not open (closed by a person, or auto-closed before a crash cut the
hand-off short) is not handed off again: it was shown, and reopening it is a person's call.
A store that fails leaves the entry pending, as a failed hand-off does.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

import structlog
from redis.exceptions import RedisError

from secbot.domain.alert import Alert
from secbot.domain.errors import SecBotError
from secbot.intake.queue import IntakeQueue, QueuedAlert
from secbot.intake.sources import ELASTIC
from secbot.siem.base import AlertArchive

log = structlog.stdlib.get_logger("secbot.intake.consumer")

IntakeHandler = Callable[[Alert], Awaitable[object]]


class StopConsuming(SecBotError):
    """Raised by a handler that is draining: the entry stays pending for the next process."""


def consumer_name() -> str:
    """Unique per process: a restarted process must not inherit a dead one's pending list
    silently; it takes entries over explicitly (XAUTOCLAIM) once they are idle."""
    return f"{socket.gethostname()}:{os.getpid()}"


class IntakeConsumer:
    """Reads the intake stream and hands each alert to ``handler``, in stream order."""

    def __init__(self, queue: IntakeQueue, handler: IntakeHandler, *, name: str | None = None,
                 batch: int = 64, block: float = 1.0, reclaim_every: float = 1.0,
                 archive: AlertArchive | None = None) -> None:
        self.queue = queue
        self.handler = handler
        self.archive = archive
        self.name = name or consumer_name()
        self.batch = batch
        self.block = block
        self.reclaim_every = reclaim_every
        self._stopping = asyncio.Event()
        self._last_reclaim = 0.0

    def stop(self) -> None:
        self._stopping.set()

    async def _handle(self, entry: QueuedAlert) -> bool:
        """True when the entry is done (and acknowledged)."""
        if entry.document is None:
            log.error("intake_entry_unreadable", entry=entry.entry_id, source=entry.source)
            await self.queue.bury(entry)
            return True
        alert = Alert(source=entry.document)
        try:
            stored = await self._kept(entry.source, alert)
            if stored is not None:
                await self.handler(stored)
        except StopConsuming:
            raise
        except Exception as exc:  # retried after reclaim_after; never dropped
            log.warning("intake_handoff_failed", alert=alert.uuid, kind=type(exc).__name__,
                        error=str(exc))
            return False
        await self.queue.ack([entry.entry_id])
        return True

    async def _kept(self, source: str, alert: Alert) -> Alert | None:
        """The alert to hand off: as kept in the own store for a mapped source; None when
        the store holds it as no longer open."""
        if self.archive is None or source == ELASTIC:
            return alert
        [stored] = await self.archive.keep([alert])
        if stored.workflow_status != "open":
            log.info("intake_already_triaged", alert=stored.uuid, source=source,
                     status=stored.workflow_status)
            return None
        return stored

    async def process(self, entries: list[QueuedAlert]) -> int:
        done = 0
        for entry in entries:
            if self._stopping.is_set():
                break
            done += await self._handle(entry)
        return done

    async def once(self) -> int:
        """One round: take over idle entries (at most every ``reclaim_every``), then read."""
        loop = asyncio.get_running_loop()
        done = 0
        if loop.time() - self._last_reclaim >= self.reclaim_every:
            self._last_reclaim = loop.time()
            done += await self.process(await self.queue.reclaim(self.name, self.batch))
        block = min(self.block, self.reclaim_every)
        done += await self.process(await self.queue.read(self.name, self.batch, block))
        return done

    async def run(self) -> None:
        """Until :meth:`stop`; Redis outages are waited out, never fatal."""
        while not self._stopping.is_set():
            try:
                await self.once()
            except StopConsuming:
                return
            except (RedisError, OSError) as exc:
                log.warning("intake_queue_unavailable", kind=type(exc).__name__)
                await asyncio.sleep(1.0)


__all__ = ["IntakeConsumer", "IntakeHandler", "StopConsuming", "consumer_name"]
