"""An in-process :class:`~secbot.store.base.Store`: the demo fallback and a fake for unit tests.

**Not persistent, single process.** Everything lives in dictionaries of this process and is gone
when it exits; two processes (or two replicas) each see their own state, so the exactly-once and
dedup guarantees of DESIGN.md §9/§10 hold only within one process. Production uses
:class:`secbot.store.redis.RedisStore`.

It behaves like the Redis store wherever a caller could tell: values go through JSON, entries
expire after their TTL (measured with ``time.monotonic``, or an injected clock so tests of other
layers can move time forward), TTLs below one second are refused, the audit log is capped.
Methods never await while they touch state, so each one is atomic on the event loop, which is
what makes concurrent ``claim_dedup``/``claim_post`` safe here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from secbot.domain.record import AlertRecord, RecordUpdate, StatusIntent
from secbot.store.base import AuditEntry, DedupResult, MessageRef, as_utc, positive_ttl
from secbot.store.memory_groups import MemoryGroups

__all__ = ["MemoryStore"]

_V = TypeVar("_V")

# Same cap as the Redis stream (secbot.store.redis.AUDIT_MAXLEN), so memory stays bounded.
_AUDIT_MAXLEN = 1_000_000

# Expired entries are dropped lazily on read; a full sweep every this many writes keeps a
# long-running demo from accumulating keys that are never read again.
_SWEEP_EVERY = 1_000


class _ExpiringMap(Generic[_V]):
    """A dict whose entries may carry a deadline on a monotonic clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._data: dict[str, tuple[_V, float | None]] = {}
        self._writes = 0

    def get(self, key: str) -> _V | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, deadline = item
        if deadline is not None and deadline <= self._clock():
            del self._data[key]
            return None
        return value

    def set(self, key: str, value: _V, ttl: int | None = None) -> None:
        deadline = None if ttl is None else self._clock() + ttl
        self._data[key] = (value, deadline)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep()

    def set_nx(self, key: str, value: _V, ttl: int | None = None) -> bool:
        if self.get(key) is not None:
            return False
        self.set(key, value, ttl)
        return True

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def _sweep(self) -> None:
        now = self._clock()
        expired = [k for k, (_, d) in self._data.items() if d is not None and d <= now]
        for key in expired:
            del self._data[key]


@dataclass
class _DedupWindow:
    first_uuid: str
    count: int = 1
    # The count each alert got: a uuid claiming again (poll overlap, retry) is not recounted.
    seen: dict[str, int] = field(default_factory=dict)


class MemoryStore(MemoryGroups):
    """:class:`~secbot.store.base.Store` in this process's memory: non-persistent, single-process.

    For ``secbot demo`` when no Redis answers, and as the store fake in tests of other layers.
    ``clock`` (seconds, monotonic) can be replaced to make entries expire without sleeping.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: _ExpiringMap[dict[str, str]] = _ExpiringMap(clock)
        self._messages: _ExpiringMap[MessageRef] = _ExpiringMap(clock)
        self._by_ts: _ExpiringMap[str] = _ExpiringMap(clock)
        # A group's members in arrival order (a dict is an ordered set); renewed as one.
        self._members: _ExpiringMap[dict[str, None]] = _ExpiringMap(clock)
        self._intents: _ExpiringMap[str] = _ExpiringMap(clock)  # uuid -> intent JSON
        self._dedup: _ExpiringMap[_DedupWindow] = _ExpiringMap(clock)
        self._claims: _ExpiringMap[bool] = _ExpiringMap(clock)
        self._posted: _ExpiringMap[bool] = _ExpiringMap(clock)
        self._checkpoints: dict[str, str] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._audit_once: set[str] = set()
        self._clock = clock
        self._audit: deque[tuple[str, AuditEntry]] = deque(maxlen=_AUDIT_MAXLEN)
        self._last_id = (0, -1)

    # -- alert records ------------------------------------------------------------------------

    async def save_record(self, record: AlertRecord, ttl: int) -> None:
        # Stored encoded, as in Redis: the caller's later mutations don't leak in, and
        # non-JSON-able fields fail here exactly as they would in production.
        self._records.set(record.uuid, record.to_fields(), positive_ttl("ttl", ttl))

    async def update_record(self, uuid: str, update: RecordUpdate, ttl: int) -> bool:
        ttl = positive_ttl("ttl", ttl)
        current = self._records.get(uuid)
        if current is None:
            return False
        self._records.set(uuid, {**current, **update.to_fields()}, ttl)
        return True

    async def load_record(self, uuid: str) -> AlertRecord | None:
        stored = self._records.get(uuid)
        return None if stored is None else AlertRecord.from_fields(stored)

    # -- message <-> alert --------------------------------------------------------------------

    async def link_message(self, uuid: str, ref: MessageRef, ttl: int) -> None:
        ttl = positive_ttl("ttl", ttl)
        self._messages.set(uuid, ref, ttl)
        self._by_ts.set(f"{ref.channel}:{ref.ts}", uuid, ttl)

    async def link_member(self, group_uuid: str, member_uuid: str, ref: MessageRef, ttl: int
                          ) -> None:
        ttl = positive_ttl("ttl", ttl)
        members = self._members.get(group_uuid) or {}
        members.setdefault(member_uuid, None)
        self._members.set(group_uuid, members, ttl)
        self._messages.set(member_uuid, ref, ttl)

    async def group_members(self, group_uuid: str, start: int = 0, stop: int = -1) -> list[str]:
        members = list(self._members.get(group_uuid) or {})
        return members[start:] if stop == -1 else members[start:stop + 1]

    async def message_for_alert(self, uuid: str) -> MessageRef | None:
        return self._messages.get(uuid)

    async def alert_for_message(self, channel: str, ts: str) -> str | None:
        return self._by_ts.get(f"{channel}:{ts}")

    # -- dedup and exactly-once posting -------------------------------------------------------

    async def claim_dedup(self, key: str, uuid: str, window: int) -> DedupResult:
        window = positive_ttl("window", window)
        current = self._dedup.get(key)
        if current is None:
            self._dedup.set(key, _DedupWindow(first_uuid=uuid, seen={uuid: 1}), window)
            return DedupResult(first_uuid=uuid, count=1)
        # Mutated in place: the deadline set by the first claim stays, the window never slides.
        if uuid not in current.seen:
            current.count += 1
            current.seen[uuid] = current.count
        return DedupResult(first_uuid=current.first_uuid, count=current.seen[uuid])

    async def claim_post(self, uuid: str, ttl: int) -> bool:
        return self._claims.set_nx(uuid, True, positive_ttl("ttl", ttl))

    async def release_post(self, uuid: str) -> None:
        self._claims.delete(uuid)

    async def mark_posted(self, uuid: str, ttl: int) -> None:
        self._posted.set(uuid, True, positive_ttl("ttl", ttl))

    async def is_posted(self, uuid: str) -> bool:
        return self._posted.get(uuid) is not None

    # -- checkpoints --------------------------------------------------------------------------

    async def get_checkpoint(self, name: str) -> str | None:
        return self._checkpoints.get(name)

    async def set_checkpoint(self, name: str, value: str) -> None:
        self._checkpoints[name] = value

    # -- status-change intents ----------------------------------------------------------------

    async def save_intent(self, intent: StatusIntent, ttl: int) -> None:
        self._intents.set(intent.uuid, intent.to_json(), positive_ttl("ttl", ttl))

    async def load_intent(self, uuid: str) -> StatusIntent | None:
        stored = self._intents.get(uuid)
        return None if stored is None else StatusIntent.from_json(stored)

    async def clear_intent(self, uuid: str, change_id: str) -> None:
        current = await self.load_intent(uuid)
        if current is not None and current.change_id == change_id:
            self._intents.delete(uuid)

    # -- audit log ----------------------------------------------------------------------------

    def _next_id(self) -> str:
        """A Redis-stream-style id ``{ms}-{seq}``, increasing even if the wall clock steps back."""
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last_id
        self._last_id = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return f"{self._last_id[0]}-{self._last_id[1]}"

    async def append_audit(self, entry: AuditEntry, *, once_key: str | None = None) -> str | None:
        if once_key is not None:
            if once_key in self._audit_once:
                return None
            self._audit_once.add(once_key)
        stored = replace(entry, at=as_utc(entry.at), extra=dict(entry.extra))
        entry_id = self._next_id()
        self._audit.append((entry_id, stored))
        return entry_id

    async def read_audit(self, alert_uuid: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` matching entries, returned oldest first (as the Redis store)."""
        if limit < 1:
            return []
        found: list[AuditEntry] = []
        for _entry_id, entry in reversed(self._audit):
            if alert_uuid in (None, entry.alert_uuid):
                # A copy, so a caller can't edit the log through ``extra``.
                found.append(replace(entry, extra=dict(entry.extra)))
                if len(found) == limit:
                    break
        found.reverse()
        return found

    # -- leases -------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        holder = self._leases.get(name)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._leases[name] = (owner, now + ttl)
        return True

    async def release_lease(self, name: str, owner: str) -> None:
        holder = self._leases.get(name)
        if holder is not None and holder[0] == owner:
            del self._leases[name]

    # -- lifecycle ----------------------------------------------------------------------------

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        """Nothing to release; the state stays readable (tests may inspect it after close)."""
