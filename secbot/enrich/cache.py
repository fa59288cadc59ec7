"""TTL cache in front of an enricher's ``lookup``: Redis shared by replicas, memory otherwise.

* Keyed by enricher name + the normalised key, hashed (no emails or IPs in Redis key names).
* Data is cached for ``ttl``; "not found" for ``negative_ttl`` (short: the project may be
  created a minute later), and so is data marked ``partial: true`` (some sources failed);
  failures are never cached (the breaker deals with those).
* An optional per-process layer (``local_ttl`` seconds, at most ``local_entries`` keys) in front
  of Redis makes the hot path a dict lookup; it is kept short so replicas never disagree for
  long. Both in-process maps are bounded cachetools caches (:mod:`secbot.resilience.cache`).
* Concurrent lookups of one key share one provider call (a burst of 500 alerts from one project
  costs one request).
* When Redis is missing or fails, the in-process cache takes over: slower to warm up, never an
  error for the alert.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from secbot.domain.alert import thaw
from secbot.domain.enrichment import Enrichment
from secbot.enrich.common import Source, SourceWrapper, is_not_found
from secbot.resilience.cache import TtlMemory

log = structlog.stdlib.get_logger(__name__)

CACHE_VERSION = "v1"


class CacheBackend(Protocol):
    """Where cached results live. Values are JSON text."""

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: float) -> None: ...


class MemoryCache:
    """The in-process :class:`CacheBackend`: bounded (``max_entries``) and per-entry TTL, on
    cachetools (:class:`~secbot.resilience.cache.TtlMemory`). Used when Redis is absent or down."""

    def __init__(
        self, max_entries: int = 50_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._data: TtlMemory[str] = TtlMemory(max_entries, clock=clock)

    @property
    def maxsize(self) -> int:
        return self._data.maxsize

    async def get(self, key: str) -> str | None:
        return self._data.get(key)

    def remaining(self, key: str) -> float | None:
        """Seconds the entry under ``key`` has left (None: absent), like Redis ``PTTL``."""
        return self._data.remaining(key)

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._data.set(key, value, ttl)

    def __len__(self) -> int:
        return len(self._data)


class RedisCache:
    """Redis string keys with a TTL (``PX``), under ``prefix``.

    Lookups issued in the same event-loop turn are sent as one ``MGET`` (writes as one
    pipeline): a burst of 1,000 alerts costs a few round trips, not thousands, and never
    exhausts the connection pool the rest of SecBot (dedup, posting) shares.
    """

    def __init__(self, redis: Redis, prefix: str = "secbot:", *, batch: int = 500) -> None:
        self._redis = redis
        self.prefix = prefix
        self._batch = batch
        self._gets: list[tuple[str, asyncio.Future[str | None]]] = []
        self._sets: list[tuple[str, str, int, asyncio.Future[None]]] = []
        self._flushers: set[asyncio.Task[None]] = set()  # strong refs: tasks may be GC'd

    async def get(self, key: str) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._gets.append((self.prefix + key, future))
        if len(self._gets) == 1:
            asyncio.get_running_loop().call_soon(self._spawn, self._flush_gets())
        return await future

    async def set(self, key: str, value: str, ttl: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sets.append((self.prefix + key, value, max(1, int(ttl * 1000)), future))
        if len(self._sets) == 1:
            asyncio.get_running_loop().call_soon(self._spawn, self._flush_sets())
        await future

    def _spawn(self, flush: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(flush)
        self._flushers.add(task)
        task.add_done_callback(self._flushers.discard)

    async def _flush_gets(self) -> None:
        while self._gets:
            batch, self._gets = self._gets[: self._batch], self._gets[self._batch :]
            try:
                values = await self._redis.mget([key for key, _ in batch])
            except Exception as exc:  # handed to every waiter; CachedEnricher falls back
                _fail(batch, exc)
                continue
            for (_, future), value in zip(batch, values, strict=True):
                if not future.done():
                    text = value.decode() if isinstance(value, bytes) else value
                    future.set_result(None if text is None else str(text))

    async def _flush_sets(self) -> None:
        while self._sets:
            batch, self._sets = self._sets[: self._batch], self._sets[self._batch :]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key, value, px, _ in batch:
                        pipe.set(key, value, px=px)
                    await pipe.execute()
            except Exception as exc:
                _fail([(key, future) for key, _, _, future in batch], exc)
                continue
            for *_, future in batch:
                if not future.done():
                    future.set_result(None)


def _fail(batch: Sequence[tuple[str, asyncio.Future[Any]]], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def cache_key(enricher: str, key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
    return f"enrich:{CACHE_VERSION}:{enricher}:{digest}"


def encode(result: Enrichment) -> str:
    if result.available:
        return json.dumps({"data": thaw(result.data)}, default=str, separators=(",", ":"))
    return json.dumps({"missing": result.error})


def decode(name: str, text: str) -> Enrichment | None:
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
        return Enrichment.ok(name, payload["data"])
    if isinstance(payload, dict) and isinstance(payload.get("missing"), str):
        return Enrichment.unavailable(name, payload["missing"])
    return None


class CachedEnricher(SourceWrapper):
    """A :class:`Source` whose ``lookup`` goes through the cache."""

    def __init__(
        self,
        inner: Source,
        backend: CacheBackend | None = None,
        *,
        ttl: float = 900.0,
        negative_ttl: float = 60.0,
        local_ttl: float = 0.0,
        local_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(inner)
        self.fallback = MemoryCache(clock=clock)
        # `is not None`, not `or`: an empty MemoryCache has len 0 and would be replaced.
        self.backend: CacheBackend = backend if backend is not None else self.fallback
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.local_ttl = min(local_ttl, ttl)
        self._local: TtlMemory[Enrichment] = TtlMemory(local_entries, clock=clock)
        self._inflight: dict[str, asyncio.Task[Enrichment]] = {}
        self._backend_down_logged = False

    async def lookup(self, key: str) -> Enrichment:
        ckey = cache_key(self.name, self.inner.normalize_key(str(key)))
        if self.local_ttl > 0:
            hit = self._local.get(ckey)
            if hit is not None:
                return hit
        cached = await self._get(ckey)
        if cached is not None:
            self._remember_locally(ckey, cached)
            return cached
        task = self._inflight.get(ckey)
        if task is None:
            task = asyncio.create_task(self._fill(ckey, key))
            self._inflight[ckey] = task
            task.add_done_callback(self._forget(ckey))
        # shield: one caller timing out must not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    def _forget(self, ckey: str) -> Callable[[asyncio.Task[Enrichment]], None]:
        def done(_task: asyncio.Task[Enrichment]) -> None:
            self._inflight.pop(ckey, None)

        return done

    async def _fill(self, ckey: str, key: str) -> Enrichment:
        result = await self.inner.lookup(key)
        if result.available:
            # A merged result missing some of its sources is kept only briefly.
            partial = result.data.get("partial") is True
            await self._set(ckey, result, self.negative_ttl if partial else self.ttl)
        elif is_not_found(result):
            await self._set(ckey, result, self.negative_ttl)
        return result

    def _remember_locally(self, ckey: str, result: Enrichment) -> None:
        if self.local_ttl > 0:
            ttl = self.local_ttl if result.available else min(self.local_ttl, self.negative_ttl)
            self._local.set(ckey, result, ttl)

    async def _get(self, ckey: str) -> Enrichment | None:
        try:
            text = await self.backend.get(ckey)
        except (RedisError, OSError) as exc:
            self._backend_failed(exc)
            text = await self.fallback.get(ckey)
        return decode(self.name, text) if text is not None else None

    async def _set(self, ckey: str, result: Enrichment, ttl: float) -> None:
        self._remember_locally(ckey, result)
        text = encode(result)
        try:
            await self.backend.set(ckey, text, ttl)
        except (RedisError, OSError) as exc:
            self._backend_failed(exc)
            await self.fallback.set(ckey, text, ttl)

    def _backend_failed(self, exc: Exception) -> None:
        if not self._backend_down_logged:  # once: a Redis outage would flood the log
            log.warning("enrichment cache unavailable, using in-process cache: %s", exc)
            self._backend_down_logged = True


__all__ = [
    "CacheBackend",
    "CachedEnricher",
    "MemoryCache",
    "RedisCache",
    "cache_key",
    "decode",
    "encode",
]
