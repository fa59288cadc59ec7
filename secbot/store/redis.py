"""The production :class:`~secbot.store.base.Store`: Redis, shared by every replica (DESIGN.md §9).

Key layout (``{p}`` is the configured prefix, ``SECBOT_REDIS_PREFIX``, default ``secbot:``):

=============================  =========  ==========================================  ===========
key                            type       value                                       expiry
=============================  =========  ==========================================  ===========
``{p}rec:{uuid}``              hash       the alert record, one JSON value per field  ``ttl``
                                          (:class:`~secbot.domain.record.AlertRecord`)
``{p}msg:{uuid}``              string     ``"{channel}|{ts}"`` of the Slack message   ``ttl``
``{p}ts:{channel}:{ts}``       string     the alert uuid                              ``ttl``
``{p}dedup:{key}``             hash       ``first`` (uuid), ``count``, ``u:{uuid}``   ``window``
                                          (the count each alert got, for idempotency)
``{p}claim:{uuid}``            string     ``"1"`` while a replica is posting it       ``ttl``
``{p}posted:{uuid}``           string     ``"1"`` once the top-level message exists   ``ttl``
``{p}checkpoint:{name}``       string     opaque poller checkpoint                    none
``{p}audit``                   stream     fields ``who when what why rule alert``     MAXLEN ~1e6
                                          (+ ``extra`` as JSON when not empty)
=============================  =========  ==========================================  ===========

Every method turns connection problems into :class:`StoreUnavailable` whose message never
contains the URL (it may carry a password).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from secbot.domain.record import AlertRecord, RecordUpdate
from secbot.domain.status import AuditAction
from secbot.store.base import (
    AuditEntry,
    DedupResult,
    MessageRef,
    StoreUnavailable,
    as_utc,
    positive_ttl,
)

__all__ = ["AUDIT_MAXLEN", "RedisStore"]

#: Approximate cap of the audit stream (``XADD … MAXLEN ~``): bounded memory, ~months of history.
AUDIT_MAXLEN = 1_000_000

# Filtering the audit stream by alert happens client-side, so read it in pages of this size.
_AUDIT_PAGE = 500

# One round trip, atomic on the server: the first caller opens the window (and only the first
# sets the expiry, so duplicates never extend it); later callers count one more hit. A uuid that
# claims again (poll overlap, a retry after a crash) gets its original answer back instead of
# being counted twice. The TTL check also repairs a key that somehow lost its expiry.
# Renew if we hold it, else take it only if free: one atomic step, so two replicas can never
# both believe they lead.
_ACQUIRE_LEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE_LEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Claim the key and append in one step: a crash cannot leave the claim without the entry.
_AUDIT_ONCE_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""

AUDIT_ONCE_TTL = 90 * 86400  # longer than any alert stays open and re-readable

# Per-field HSET, only on a record that exists: two writers of different fields (a reaction and
# the publisher, or two replicas) never lose each other's change, and an update arriving after
# the record expired does not leave a partial record behind.
_UPDATE_RECORD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if #ARGV > 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

_CLAIM_DEDUP_LUA = """
local first = redis.call('HGET', KEYS[1], 'first')
if not first then
  redis.call('HSET', KEYS[1], 'first', ARGV[1], 'count', 1, 'u:' .. ARGV[1], 1)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {ARGV[1], 1}
end
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local seen = redis.call('HGET', KEYS[1], 'u:' .. ARGV[1])
if seen then
  return {first, tonumber(seen)}
end
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'u:' .. ARGV[1], count)
return {first, count}
"""

# Builtin OSError covers socket errors that slip past redis-py's own wrapping.
_UNREACHABLE: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


@contextmanager
def _unavailable() -> Iterator[None]:
    """Re-raise connection failures as ``StoreUnavailable`` (redis-py messages hold no URL)."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}: {exc}") from exc


def _text(value: bytes | str) -> str:
    # The client may or may not have been built with decode_responses=True.
    return value.decode() if isinstance(value, bytes) else value


def _audit_fields(entry: AuditEntry) -> dict[str, str]:
    fields = {
        "who": entry.actor,
        "when": as_utc(entry.at).isoformat(),
        "what": str(entry.action),
        "why": entry.reason,
        "rule": entry.rule_id,
        "alert": entry.alert_uuid,
    }
    if entry.extra:
        fields["extra"] = json.dumps(dict(entry.extra), sort_keys=True)
    return fields


def _audit_entry(raw: Mapping[Any, Any]) -> AuditEntry | None:
    """Decode one stream entry; None for an entry this code did not write (skipped, not fatal)."""
    fields = {_text(k): _text(v) for k, v in raw.items()}
    try:
        at = as_utc(datetime.fromisoformat(fields["when"]))
        extra = json.loads(fields.get("extra", "{}"))
        action = AuditAction(fields.get("what", ""))
    except (KeyError, ValueError):
        return None
    return AuditEntry(
        alert_uuid=fields.get("alert", ""),
        actor=fields.get("who", ""),
        action=action,
        reason=fields.get("why", ""),
        at=at,
        rule_id=fields.get("rule", ""),
        extra={str(k): str(v) for k, v in extra.items()} if isinstance(extra, dict) else {},
    )


class RedisStore:
    """:class:`~secbot.store.base.Store` on Redis; safe to share between replicas.

    The store takes ownership of ``client``: :meth:`close` closes it. Atomicity across
    replicas comes from Redis itself (``SET NX``, a Lua script for dedup), never from
    client-side locks.
    """

    def __init__(self, client: aioredis.Redis, prefix: str = "secbot:") -> None:
        self._client = client
        self._prefix = prefix
        self._claim_dedup = client.register_script(_CLAIM_DEDUP_LUA)
        self._acquire_lease = client.register_script(_ACQUIRE_LEASE_LUA)
        self._audit_once = client.register_script(_AUDIT_ONCE_LUA)
        self._release_lease = client.register_script(_RELEASE_LEASE_LUA)
        self._update_record = client.register_script(_UPDATE_RECORD_LUA)

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str = "secbot:",
        *,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> RedisStore:
        """Build the client (composition root only). Connects lazily, on the first command."""
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            health_check_interval=30,  # re-validate idle pooled connections before reuse
        )
        return cls(client, prefix)

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    # -- alert records ------------------------------------------------------------------------

    async def save_record(self, record: AlertRecord, ttl: int) -> None:
        key, ttl = self._key("rec", record.uuid), positive_ttl("ttl", ttl)
        # MULTI/EXEC: a reader sees the old record or the whole new one, never a mix.
        with _unavailable():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=record.to_fields())  # type: ignore[arg-type]
                pipe.expire(key, ttl)
                await pipe.execute()

    async def update_record(self, uuid: str, update: RecordUpdate, ttl: int) -> bool:
        changes = update.to_fields()
        flat = [item for pair in changes.items() for item in pair]
        with _unavailable():
            done = await self._update_record(
                keys=[self._key("rec", uuid)], args=[positive_ttl("ttl", ttl), *flat]
            )
        return bool(done)

    async def load_record(self, uuid: str) -> AlertRecord | None:
        with _unavailable():
            raw = await self._client.hgetall(self._key("rec", uuid))
        if not raw:
            return None
        return AlertRecord.from_fields({_text(k): _text(v) for k, v in raw.items()})

    # -- message <-> alert --------------------------------------------------------------------

    async def link_message(self, uuid: str, ref: MessageRef, ttl: int) -> None:
        ttl = positive_ttl("ttl", ttl)
        # MULTI/EXEC: a reader never sees one direction without the other.
        with _unavailable():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(self._key("msg", uuid), f"{ref.channel}|{ref.ts}", ex=ttl)
                pipe.set(self._key("ts", ref.channel, ref.ts), uuid, ex=ttl)
                await pipe.execute()

    async def message_for_alert(self, uuid: str) -> MessageRef | None:
        with _unavailable():
            raw = await self._client.get(self._key("msg", uuid))
        if raw is None:
            return None
        # Slack channel ids never contain "|", so the first one is the separator.
        channel, _, ts = _text(raw).partition("|")
        return MessageRef(channel=channel, ts=ts)

    async def alert_for_message(self, channel: str, ts: str) -> str | None:
        with _unavailable():
            raw = await self._client.get(self._key("ts", channel, ts))
        return None if raw is None else _text(raw)

    # -- dedup and exactly-once posting -------------------------------------------------------

    async def claim_dedup(self, key: str, uuid: str, window: int) -> DedupResult:
        window = positive_ttl("window", window)
        with _unavailable():
            first, count = await self._claim_dedup(
                keys=[self._key("dedup", key)], args=[uuid, window]
            )
        return DedupResult(first_uuid=_text(first), count=int(count))

    async def claim_post(self, uuid: str, ttl: int) -> bool:
        # The TTL frees the claim of a replica that died mid-post (DESIGN.md §10 recovery).
        with _unavailable():
            won = await self._client.set(
                self._key("claim", uuid), "1", nx=True, ex=positive_ttl("ttl", ttl)
            )
        return bool(won)

    async def release_post(self, uuid: str) -> None:
        with _unavailable():
            await self._client.delete(self._key("claim", uuid))

    async def mark_posted(self, uuid: str, ttl: int) -> None:
        with _unavailable():
            await self._client.set(self._key("posted", uuid), "1", ex=positive_ttl("ttl", ttl))

    async def is_posted(self, uuid: str) -> bool:
        with _unavailable():
            return bool(await self._client.exists(self._key("posted", uuid)))

    # -- checkpoints --------------------------------------------------------------------------

    async def get_checkpoint(self, name: str) -> str | None:
        with _unavailable():
            raw = await self._client.get(self._key("checkpoint", name))
        return None if raw is None else _text(raw)

    async def set_checkpoint(self, name: str, value: str) -> None:
        # No expiry: losing the checkpoint would re-read (and re-triage) the whole index.
        with _unavailable():
            await self._client.set(self._key("checkpoint", name), value)

    # -- audit stream -------------------------------------------------------------------------

    async def append_audit(self, entry: AuditEntry, *, once_key: str | None = None) -> str | None:
        fields = _audit_fields(entry)
        if once_key is not None:
            flat = [item for pair in fields.items() for item in pair]
            with _unavailable():
                entry_id = await self._audit_once(
                    keys=[self._key("audit-once", once_key), self._key("audit")],
                    args=[AUDIT_ONCE_TTL, AUDIT_MAXLEN, *flat],
                )
            return None if entry_id is None else _text(entry_id)
        with _unavailable():
            entry_id = await self._client.xadd(
                self._key("audit"),
                fields,  # type: ignore[arg-type]  # redis-py's invariant dict type
                maxlen=AUDIT_MAXLEN,
                approximate=True,  # "~": trims whole radix nodes, O(1) instead of exact trimming
            )
        return _text(entry_id)

    async def read_audit(self, alert_uuid: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` matching entries, returned oldest first.

        Walks the stream backwards (XREVRANGE, in pages) so that a recent alert's history and
        "the last N changes" are cheap; filtering by alert is client-side, so asking for an
        alert with fewer than ``limit`` entries reads the whole stream.
        """
        if limit < 1:
            return []
        found: list[AuditEntry] = []
        upper = "+"
        page = limit if alert_uuid is None else max(limit, _AUDIT_PAGE)
        while len(found) < limit:
            with _unavailable():
                batch = await self._client.xrevrange(
                    self._key("audit"), max=upper, min="-", count=page
                )
            batch = batch or []
            for _entry_id, raw_fields in batch:
                entry = _audit_entry(raw_fields or {})
                if entry is not None and alert_uuid in (None, entry.alert_uuid):
                    found.append(entry)
                    if len(found) == limit:
                        break
            if len(batch) < page:
                break
            last_id = batch[-1][0]
            if last_id is None:
                break
            upper = "(" + _text(last_id)  # exclusive: continue just below the last id
        found.reverse()
        return found

    # -- leases -------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        millis = max(1, int(ttl * 1000))
        with _unavailable():
            won = await self._acquire_lease(keys=[self._key("lease", name)], args=[owner, millis])
        return bool(won)

    async def release_lease(self, name: str, owner: str) -> None:
        with _unavailable():
            await self._release_lease(keys=[self._key("lease", name)], args=[owner])

    # -- lifecycle ----------------------------------------------------------------------------

    async def ping(self) -> bool:
        """True when Redis answers; never raises (used by ``/healthz`` and the demo fallback)."""
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._client.aclose()
