"""Alert-group state in Redis (:class:`~secbot.domain.group.GroupState`), mixed into
:class:`secbot.store.redis.RedisStore`.

Key layout (``{p}`` is the prefix):

==================================  ======  ===============================================
``{p}gkey:{key}``                   string  the group id a grouping key currently leads to
``{p}grp:{group id}``               hash    ``meta`` (JSON), ``count``, ``shown``, ``header_ts``,
                                            ``first_seen``, ``last_seen``, ``inflight``,
                                            ``b:{start}`` (a posted batch, JSON),
                                            ``t:{field}\\x1f{value}`` (tallies), ``s:{status}``
``{p}members:{group id}``           zset    members in join order (shared with duplicates)
``{p}groupof:{uuid}``               string  the group an alert joined
``{p}groups-pending``               set     groups with members not listed yet, or a header
                                            to redraw
``{p}rate:{key}``                   zset    alert uuids scored by arrival time (a minute)
==================================  ======  ===============================================

Each join is one Lua script: membership, tallies and the pending mark land together or not at
all, and a member that joins again (a redelivered alert) changes nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from secbot.domain.group import Batch, GroupJoin, GroupMeta, GroupState, GroupUpdate
from secbot.store.base import StoreUnavailable, positive_ttl

_P = ParamSpec("_P")
_R = TypeVar("_R")
_UNREACHABLE: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


def _guarded(
    method: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Connection failures become ``StoreUnavailable`` (redis-py messages hold no URL)."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}: {exc}") from exc

    return wrapper

JOIN_GROUP_LUA = """
redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[2])
redis.call('SADD', KEYS[4], ARGV[5])
local seen = redis.call('ZSCORE', KEYS[2], ARGV[1])
if seen then
  return tonumber(seen) - 1
end
local n = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('ZADD', KEYS[2], n, ARGV[1])
if n == 1 then redis.call('HSET', KEYS[1], 'first_seen', ARGV[3]) end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[3])
redis.call('HINCRBY', KEYS[1], 's:' .. ARGV[4], 1)
for i = 6, #ARGV do redis.call('HINCRBY', KEYS[1], 't:' .. ARGV[i], 1) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return n - 1
"""

SETTLE_LUA = """
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local shown = tonumber(redis.call('HGET', KEYS[1], 'shown') or '0')
if shown >= count and not redis.call('HGET', KEYS[1], 'redraw') then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

REDRAWN_LUA = """
if redis.call('HGET', KEYS[1], 'redraw') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'redraw')
end
return 0
"""

END_GROUP_LUA = """
if ARGV[1] == '' or redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

COUNT_HIT_LUA = """
redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[3]) + 1)
return redis.call('ZCARD', KEYS[1])
"""

_SEP = "\x1f"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def group_state(raw: Mapping[str, str]) -> GroupState | None:
    """Decode the group hash; None when it has no (valid) meta."""
    meta = GroupMeta.from_json(raw.get("meta", ""))
    if meta is None:
        return None
    tallies: dict[str, dict[str, int]] = {}
    statuses: dict[str, int] = {}
    batches: list[Batch] = []
    for name, value in raw.items():
        if name.startswith("t:"):
            fname, _, fvalue = name[2:].partition(_SEP)
            tallies.setdefault(fname, {})[fvalue] = int(value)
        elif name.startswith("s:"):
            statuses[name[2:]] = int(value)
        elif name.startswith("b:"):
            batch = Batch.from_json(value)
            if batch is not None:
                batches.append(batch)
    start, _, end = raw.get("inflight", "").partition(",")
    return GroupState(
        meta=meta, count=int(raw.get("count", 0)), shown=int(raw.get("shown", 0)),
        header_ts=raw.get("header_ts") or None, first_seen=raw.get("first_seen", ""),
        last_seen=raw.get("last_seen", ""),
        inflight=(int(start), int(end)) if start and end else None,
        batches=tuple(sorted(batches, key=lambda b: b.start)),
        tallies=tallies, statuses=statuses, closed_note=raw.get("closed_note", ""),
        redraw=int(raw.get("redraw", 0) or 0),
    )


def update_fields(update: GroupUpdate) -> Iterator[tuple[str, str]]:
    """The hash fields an update sets."""
    if update.header_ts is not None:
        yield "header_ts", update.header_ts
    if update.inflight is not None:
        start, end = update.inflight
        yield "inflight", "" if (start, end) == (0, 0) else f"{start},{end}"
    if update.batch is not None:
        yield f"b:{update.batch.start}", update.batch.to_json()
        yield "shown", str(update.batch.end)
        yield "inflight", ""
    if update.closed_note is not None:
        yield "closed_note", update.closed_note


class RedisGroups:
    """The group half of the Store contract; needs ``_client`` and ``_key`` of RedisStore."""

    _client: aioredis.Redis

    def _key(self, *parts: str) -> str:  # pragma: no cover - RedisStore provides it
        raise NotImplementedError

    def _script(self, source: str) -> Any:
        scripts: dict[str, Any] = self.__dict__.setdefault("_group_scripts", {})
        if source not in scripts:
            scripts[source] = self._client.register_script(source)
        return scripts[source]

    @_guarded
    async def claim_group(self, key: str, group_id: str, window: int) -> str:
        gkey = self._key("gkey", key)
        await self._client.set(gkey, group_id, nx=True, ex=positive_ttl("window", window))
        holder = await self._client.get(gkey)
        return group_id if holder is None else _text(holder)

    @_guarded
    async def group_for_key(self, key: str) -> str | None:
        holder = await self._client.get(self._key("gkey", key))
        return None if holder is None else _text(holder)

    @_guarded
    async def end_group(self, key: str, group_id: str | None) -> None:
        await self._script(END_GROUP_LUA)(keys=[self._key("gkey", key)], args=[group_id or ""])

    @_guarded
    async def open_group(self, meta: GroupMeta, ttl: int) -> None:
        key = self._key("grp", meta.group_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "meta", meta.to_json())
            pipe.expire(key, positive_ttl("ttl", ttl))
            await pipe.execute()

    @_guarded
    async def join_group(self, group_id: str, join: GroupJoin, ttl: int) -> int:
        status = "auto-closed" if join.auto_closed else "open"
        tally = [f"{name}{_SEP}{value}" for name, value in join.tally.items()]
        keys = [
            self._key("grp", group_id), self._key("members", group_id),
            self._key("groupof", join.member_uuid), self._key("groups-pending"),
        ]
        position = await self._script(JOIN_GROUP_LUA)(
            keys=keys, args=[join.member_uuid, positive_ttl("ttl", ttl), join.seen_at, status,
                             group_id, *tally],
        )
        return int(position)

    @_guarded
    async def load_group(self, group_id: str) -> GroupState | None:
        raw = await self._client.hgetall(self._key("grp", group_id))
        return group_state({_text(k): _text(v) for k, v in (raw or {}).items()})

    @_guarded
    async def group_of(self, member_uuid: str) -> str | None:
        raw = await self._client.get(self._key("groupof", member_uuid))
        return None if raw is None else _text(raw)

    @_guarded
    async def update_group(self, group_id: str, update: GroupUpdate, ttl: int) -> None:
        key = self._key("grp", group_id)
        async with self._client.pipeline(transaction=True) as pipe:
            fields = dict(update_fields(update))
            if fields:
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            if update.statuses is not None:
                old = [k for k in await self._client.hkeys(key) if _text(k).startswith("s:")]
                if old:
                    pipe.hdel(key, *old)
                counts = {f"s:{name}": str(n) for name, n in update.statuses.items() if n}
                if counts:
                    pipe.hset(key, mapping=counts)  # type: ignore[arg-type]
                pipe.hincrby(key, "redraw", 1)
                pipe.sadd(self._key("groups-pending"), group_id)
            pipe.expire(key, positive_ttl("ttl", ttl))
            await pipe.execute()

    @_guarded
    async def redrawn(self, group_id: str, version: int) -> None:
        await self._script(REDRAWN_LUA)(keys=[self._key("grp", group_id)], args=[version])

    @_guarded
    async def pending_groups(self) -> list[str]:
        raw = await self._client.smembers(self._key("groups-pending"))
        return sorted(_text(g) for g in raw or [])

    @_guarded
    async def settle_group(self, group_id: str) -> bool:
        done = await self._script(SETTLE_LUA)(
            keys=[self._key("grp", group_id), self._key("groups-pending")], args=[group_id]
        )
        return bool(done)

    @_guarded
    async def count_hit(self, key: str, member: str, window: float) -> int:
        count = await self._script(COUNT_HIT_LUA)(
            keys=[self._key("rate", key)], args=[time.time(), member, window]
        )
        return int(count)
