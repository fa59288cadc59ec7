"""The durable intake queue: a Redis stream read by a consumer group (DESIGN.md §11).

``{p}intake`` holds every accepted alert that is not yet handed off. A request's alerts are
appended in one MULTI/EXEC (all or none), and the listener answers 202 only after EXEC
returned, so a SecBot crash right after the 202 loses nothing. Consumers (one per process,
every replica) read with ``XREADGROUP``; an entry is acknowledged *and deleted* only after
the hand-off returned (so the stream holds exactly the work not done yet and needs no
trimming). Entries pending on a consumer that died (``kill -9``) or failed are taken over
with ``XAUTOCLAIM`` once idle for ``reclaim_after`` seconds; the hand-off's post claim and
posted marker make a second attempt harmless.

How durable "stored" is beyond a SecBot crash is Redis's own setting: with
``appendonly yes`` + ``appendfsync always`` a Redis crash loses nothing either
(``everysec``: up to a second).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from secbot.domain.errors import SecBotError

GROUP = "secbot"


class QueueUnavailable(SecBotError):
    """Redis did not take or give the entries; nothing was acknowledged."""


@dataclass(frozen=True)
class QueuedAlert:
    """One stored alert: stream entry id, intake source and its ``_source`` document."""

    entry_id: str
    source: str
    document: dict[str, Any] | None  # None: the entry could not be decoded (kept for a human)


def _decode(entry_id: str, fields: dict[str, str]) -> QueuedAlert:
    try:
        doc = json.loads(fields.get("d", ""))
    except ValueError:
        doc = None
    return QueuedAlert(entry_id, fields.get("s", ""), doc if isinstance(doc, dict) else None)


class IntakeQueue:
    """Append, read, take over and acknowledge intake entries (``decode_responses=True``)."""

    def __init__(self, client: aioredis.Redis, prefix: str, *, reclaim_after: float = 15.0) -> None:
        self.client = client
        self.key = f"{prefix}intake"
        self.dead_key = f"{prefix}intake:dead"
        self.reclaim_ms = max(1, int(reclaim_after * 1000))
        self._group_ready = False

    async def append(self, source: str, documents: Sequence[dict[str, Any]]) -> list[str]:
        """Store every document of one request atomically; returns their entry ids."""
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for doc in documents:
                    fields: Any = {"s": source, "d": json.dumps(doc, separators=(",", ":"))}
                    pipe.xadd(self.key, fields)
                ids = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"intake queue: {type(exc).__name__}") from None
        return [str(i) for i in ids]

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # "0": a group created after alerts were queued still delivers them.
            await self.client.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def read(self, consumer: str, count: int, block: float) -> list[QueuedAlert]:
        """New entries for ``consumer``, waiting up to ``block`` seconds for the first."""
        await self.ensure_group()
        answer: Any = await self.client.xreadgroup(
            GROUP, consumer, {self.key: ">"}, count=count, block=max(1, int(block * 1000))
        )
        return [_decode(eid, fields) for _, entries in answer or [] for eid, fields in entries]

    async def reclaim(self, consumer: str, count: int) -> list[QueuedAlert]:
        """Entries idle on any consumer (a dead one, or this one after a failure)."""
        await self.ensure_group()
        answer = await self.client.xautoclaim(
            self.key, GROUP, consumer, self.reclaim_ms, start_id="0-0", count=count
        )
        entries = answer[1] if len(answer) > 1 else []
        # Entries deleted while pending come back as None (Redis < 7 shape): nothing to do.
        return [_decode(eid, fields) for eid, fields in entries if fields]

    async def ack(self, entry_ids: Sequence[str]) -> None:
        """Done: acknowledged and removed from the stream in one step."""
        if not entry_ids:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.key, GROUP, *entry_ids)
            pipe.xdel(self.key, *entry_ids)
            await pipe.execute()

    async def bury(self, entry: QueuedAlert, raw: dict[str, str] | None = None) -> None:
        """Move an undecodable entry aside (kept, not retried forever) and acknowledge it."""
        fields: Any = raw or {"id": entry.entry_id, "s": entry.source}
        await self.client.xadd(self.dead_key, fields)
        await self.ack([entry.entry_id])

    async def backlog(self) -> int:
        """Entries not yet handed off (pending ones included)."""
        return int(await self.client.xlen(self.key))


__all__ = ["GROUP", "IntakeQueue", "QueueUnavailable", "QueuedAlert"]
