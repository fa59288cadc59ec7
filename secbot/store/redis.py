"""The production :class:`~secbot.store.base.Store`: Redis, shared by every replica (DESIGN.md §9).

Key layout (``{p}`` is the configured prefix, ``SECBOT_REDIS_PREFIX``, default ``secbot:``):

=============================  =========  ==========================================  ===========
key                            type       value                                       expiry
=============================  =========  ==========================================  ===========
``{p}rec:{uuid}``              hash       the alert record, one JSON value per field  ``ttl``
                                          (:class:`~secbot.domain.record.AlertRecord`)
``{p}msg:{uuid}``              string     ``"{channel}|{ts}"`` of the Slack message   ``ttl``
``{p}ts:{channel}:{ts}``       string     the alert uuid                              ``ttl``
``{p}members:{uuid}``          zset       uuids shown on this alert's message         ``ttl``
                                          (duplicates), scored by arrival order
``{p}intent:{uuid}``           hash       ``id`` (change id), ``body`` (JSON              ``ttl``
                                          :class:`~secbot.domain.record.StatusIntent`)
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

from secbot.domain.record import AlertRecord, RecordUpdate, StatusIntent
from secbot.domain.status import AuditAction
from secbot.store.base import (
    AuditEntry,
    DedupResult,
    MessageRef,
    StoreUnavailable,
    as_utc,
    positive_ttl,
)
from secbot.store.redis_groups import RedisGroups
from secbot.store.redis_scripts import (
    ACQUIRE_LEASE_LUA,
    AUDIT_ONCE_LUA,
    CLAIM_DEDUP_LUA,
    CLEAR_INTENT_LUA,
    LINK_MEMBER_LUA,
    RELEASE_LEASE_LUA,
    UPDATE_RECORD_LUA,
)

__all__ = ["AUDIT_MAXLEN", "RedisStore"]

#: Approximate cap of the audit stream (``XADD … MAXLEN ~``): bounded memory, ~months of history.
AUDIT_MAXLEN = 1_000_000

# Filtering the audit stream by alert happens client-side, so read it in pages of this size.
_AUDIT_PAGE = 500

AUDIT_ONCE_TTL = 90 * 86400  # longer than any alert stays open and re-readable

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


class RedisStore(RedisGroups):
    """:class:`~secbot.store.base.Store` on Redis; safe to share between replicas.

    The store takes ownership of ``client``: :meth:`close` closes it. Atomicity across
    replicas comes from Redis itself (``SET NX``, a Lua script for dedup), never from
    client-side locks.
    """

    def __init__(self, client: aioredis.Redis, prefix: str = "secbot:") -> None:
        self._client = client
        self._prefix = prefix
        self._claim_dedup = client.register_script(CLAIM_DEDUP_LUA)
        self._acquire_lease = client.register_script(ACQUIRE_LEASE_LUA)
        self._audit_once = client.register_script(AUDIT_ONCE_LUA)
        self._release_lease = client.register_script(RELEASE_LEASE_LUA)
        self._update_record = client.register_script(UPDATE_RECORD_LUA)
        self._link_member = client.register_script(LINK_MEMBER_LUA)
        self._clear_intent = client.register_script(CLEAR_INTENT_LUA)

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

    async def link_member(self, group_uuid: str, member_uuid: str, ref: MessageRef, ttl: int
                          ) -> None:
        keys = [
            self._key("members", group_uuid),
            self._key("members-seq", group_uuid),
            self._key("msg", member_uuid),
        ]
        with _unavailable():
            await self._link_member(
                keys=keys, args=[member_uuid, f"{ref.channel}|{ref.ts}", positive_ttl("ttl", ttl)]
            )

    async def group_members(self, group_uuid: str, start: int = 0, stop: int = -1) -> list[str]:
        with _unavailable():
            raw = await self._client.zrange(self._key("members", group_uuid), start, stop)
        return [_text(member) for member in raw or [] if isinstance(member, (bytes, str))]

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

    # -- status-change intents ----------------------------------------------------------------

    async def save_intent(self, intent: StatusIntent, ttl: int) -> None:
        key, ttl = self._key("intent", intent.uuid), positive_ttl("ttl", ttl)
        with _unavailable():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping={"id": intent.change_id, "body": intent.to_json()})
                pipe.expire(key, ttl)
                await pipe.execute()

    async def load_intent(self, uuid: str) -> StatusIntent | None:
        with _unavailable():
            body = await self._client.hget(self._key("intent", uuid), "body")
        return None if body is None else StatusIntent.from_json(_text(body))

    async def clear_intent(self, uuid: str, change_id: str) -> None:
        with _unavailable():
            await self._clear_intent(keys=[self._key("intent", uuid)], args=[change_id])

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
