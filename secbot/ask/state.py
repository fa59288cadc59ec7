"""Where DMs, answers and approvals are remembered: small typed records plus the two atomic
operations exactly-once needs (a claim, and a due-time queue that fires once across replicas).

Production keeps everything in Redis under ``SECBOT_REDIS_PREFIX`` (``ask:…`` / ``respond:…``
keys), so any replica may receive a click and a restart forgets nothing; the in-memory variant
is for the demo without Redis (one process, nothing persists, said loudly by the demo).

Layout (Redis):

* ``<prefix>ix:rec:<kind>:<id>`` — a JSON record (:class:`AskRecord`, the respond room's
  proposals), with a TTL;
* ``<prefix>ix:claim:<name>`` — ``SET NX`` claims (asked once, answered once, approved once);
* ``<prefix>ix:due:<queue>`` — a sorted set of ids by due time (UNIX seconds). :meth:`take`
  hands an id that is due to one caller and pushes its score ``lease`` seconds on, atomically:
  a replica killed while working on it leaves it to come due again, never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis

from secbot.domain.codec import decode, encode
from secbot.store.unavailable import guarded

#: Move a due member's score ``lease`` seconds on, only if it is still due: one taker.
TAKE_DUE_LUA = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class AskRecord:
    """One question sent to one person about one alert (DESIGN.md §13).

    ``state``: ``asking`` (the DM is being sent; a crash here is resolved by looking for the
    DM's metadata before sending again), ``asked``, ``answered`` (``answer`` = yes / no /
    timeout / not_found / storm, ``applied`` once its outcome ran), ``not_found``,
    ``attached`` (not asked again: it takes the answer of the question ``attached_to``, see
    :mod:`secbot.ask.pending`), ``note`` (a storm group's "not asked" line waiting for the
    group's header).
    """

    alert_uuid: str
    rule_id: str
    email: str
    due: float  # UNIX seconds: when silence counts as ``on_timeout``
    state: str = "asking"
    user_id: str = ""
    dm_channel: str = ""
    dm_ts: str = ""
    question: str = ""
    answer: str = ""
    answered_by: str = ""
    answered_at: float = 0.0
    justification: str = ""
    applied: bool = False
    alert_id: str = ""  # the SIEM's id, for the tag
    attached_to: str = ""  # state ``attached``: the pending question whose answer this takes

    def to_json(self) -> str:
        return encode(self)

    @classmethod
    def from_json(cls, text: str | None) -> AskRecord | None:
        return decode(cls, text)  # another version's record: None, treated as unknown


class Interactions(Protocol):
    """The state the ask and respond rooms keep. Every method may raise StoreUnavailable."""

    async def put(self, kind: str, key: str, value: str, ttl: int) -> None: ...

    async def get(self, kind: str, key: str) -> str | None: ...

    async def claim(self, name: str, owner: str, ttl: int) -> bool:
        """True if ``name`` was free and is now ``owner``'s (for ``ttl`` seconds)."""

    async def claimed_by(self, name: str) -> str | None: ...

    async def release(self, name: str) -> None: ...

    async def schedule(self, queue: str, member: str, due: float) -> None: ...

    async def unschedule(self, queue: str, member: str) -> None: ...

    async def due(self, queue: str, now: float, limit: int = 50) -> list[str]: ...

    async def take(self, queue: str, member: str, now: float, lease: float) -> bool:
        """True for exactly one caller while ``member`` is due; its due time moves ``lease``
        seconds on, so it comes due again if the taker dies before :meth:`unschedule`."""


class RedisInteractions:
    """:class:`Interactions` on Redis (shared by replicas). Does not own the client."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix + "ix:"
        self._take = client.register_script(TAKE_DUE_LUA)

    def _k(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def put(self, kind: str, key: str, value: str, ttl: int) -> None:
        await guarded(self._client.set(self._k("rec", kind, key), value, ex=max(1, ttl)))

    async def get(self, kind: str, key: str) -> str | None:
        found = await guarded(self._client.get(self._k("rec", kind, key)))
        return None if found is None else str(found)

    async def claim(self, name: str, owner: str, ttl: int) -> bool:
        done = await guarded(self._client.set(self._k("claim", name), owner, nx=True,
                                              ex=max(1, ttl)))
        return bool(done)

    async def claimed_by(self, name: str) -> str | None:
        found = await guarded(self._client.get(self._k("claim", name)))
        return None if found is None else str(found)

    async def release(self, name: str) -> None:
        await guarded(self._client.delete(self._k("claim", name)))

    async def schedule(self, queue: str, member: str, due: float) -> None:
        await guarded(self._client.zadd(self._k("due", queue), {member: due}))

    async def unschedule(self, queue: str, member: str) -> None:
        await guarded(self._client.zrem(self._k("due", queue), member))

    async def due(self, queue: str, now: float, limit: int = 50) -> list[str]:
        found = await guarded(self._client.zrangebyscore(
            self._k("due", queue), "-inf", now, start=0, num=limit))
        return [str(m) for m in found]

    async def take(self, queue: str, member: str, now: float, lease: float) -> bool:
        taken = await guarded(self._take(keys=[self._k("due", queue)],
                                         args=[member, now, now + lease]))
        return bool(taken)



@dataclass
class MemoryInteractions:
    """:class:`Interactions` in this process only (demo without Redis, unit tests)."""

    clock: Callable[[], float] = time.time
    _values: dict[str, tuple[str, float]] = field(default_factory=dict)
    _queues: dict[str, dict[str, float]] = field(default_factory=dict)

    def _live(self, key: str) -> str | None:
        found = self._values.get(key)
        if found is None or found[1] < self.clock():
            self._values.pop(key, None)
            return None
        return found[0]

    async def put(self, kind: str, key: str, value: str, ttl: int) -> None:
        self._values[f"rec:{kind}:{key}"] = (value, self.clock() + max(1, ttl))

    async def get(self, kind: str, key: str) -> str | None:
        return self._live(f"rec:{kind}:{key}")

    async def claim(self, name: str, owner: str, ttl: int) -> bool:
        if self._live(f"claim:{name}") is not None:
            return False
        self._values[f"claim:{name}"] = (owner, self.clock() + max(1, ttl))
        return True

    async def claimed_by(self, name: str) -> str | None:
        return self._live(f"claim:{name}")

    async def release(self, name: str) -> None:
        self._values.pop(f"claim:{name}", None)

    async def schedule(self, queue: str, member: str, due: float) -> None:
        self._queues.setdefault(queue, {})[member] = due

    async def unschedule(self, queue: str, member: str) -> None:
        self._queues.get(queue, {}).pop(member, None)

    async def due(self, queue: str, now: float, limit: int = 50) -> list[str]:
        items = sorted((d, m) for m, d in self._queues.get(queue, {}).items() if d <= now)
        return [m for _, m in items[:limit]]

    async def take(self, queue: str, member: str, now: float, lease: float) -> bool:
        members = self._queues.get(queue, {})
        if member not in members or members[member] > now:
            return False
        members[member] = now + lease
        return True
