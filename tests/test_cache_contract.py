"""The enrichment cache's two backends keep one contract: Redis (shared by replicas) and the
in-process layer (used without Redis, and when Redis fails). Each test runs against both.

The contract, as :mod:`secbot.enrich.cache` states it: a hit is served without asking the
provider; data lives for ``ttl``, "not found" and partial data for ``negative_ttl``; provider
failures are never cached; nothing is stored without a lifetime and storage is bounded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from secbot.domain.enrichment import Enrichment
from secbot.enrich.cache import CacheBackend, CachedEnricher, MemoryCache, RedisCache, cache_key
from secbot.enrich.common import SourceBase, not_found

MEMORY_BOUND = 16


@dataclass
class Backend:
    """One backend under test, and how to see what it holds without going through it."""

    cache: CacheBackend
    #: Seconds the entry under ``key`` has left; None when absent.
    lifetime: Callable[[str], Awaitable[float | None]]
    #: How many entries it holds at most (None: bounded by lifetimes, not by count).
    maxsize: int | None


@pytest.fixture(params=["redis", "memory"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        memory = MemoryCache(max_entries=MEMORY_BOUND)

        async def memory_lifetime(key: str) -> float | None:
            return memory.remaining(key)

        yield Backend(memory, memory_lifetime, MEMORY_BOUND)
        return
    client = Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"secbot-test-{uuid.uuid4().hex[:8]}:"

    async def redis_lifetime(key: str) -> float | None:
        ms = await client.pttl(prefix + key)
        assert ms != -1, f"{key} was stored without a TTL"
        return None if ms < 0 else ms / 1000

    yield Backend(RedisCache(client, prefix), redis_lifetime, None)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


class Table(SourceBase):
    """A provider answering from a table; counts calls; ``fail`` makes it fail."""

    name = "table"
    fields = ("user.email",)

    def __init__(self, table: dict[str, dict[str, Any]]) -> None:
        self.table = table
        self.calls = 0
        self.fail = False

    def normalize_key(self, key: str) -> str:
        return key.strip().lower()

    async def lookup(self, key: str) -> Enrichment:
        self.calls += 1
        if self.fail:
            return Enrichment.unavailable(self.name, "table: server error (HTTP 503)")
        key = self.normalize_key(key)
        if key not in self.table:
            return not_found(self.name, f"user {key!r}")
        return Enrichment.ok(self.name, self.table[key])


def cached(source: Table, backend: Backend, **ttls: float) -> CachedEnricher:
    # local_ttl=0: every lookup goes to the backend under test, not the per-process layer.
    return CachedEnricher(source, backend.cache, local_ttl=0, **ttls)


async def test_a_hit_is_served_without_asking_the_provider(backend: Backend) -> None:
    source = Table({"a@x.com": {"division": "sec"}})
    first = await cached(source, backend, ttl=60).lookup("A@x.com")
    # Another wrapper on the same backend (another replica, for Redis) sees the entry.
    again = await cached(Table({}), backend, ttl=60).lookup("a@x.com ")
    assert first.available and again.available and again.data == first.data
    assert source.calls == 1
    lifetime = await backend.lifetime(cache_key("table", "a@x.com"))
    assert lifetime is not None and 0 < lifetime <= 60


async def test_a_miss_asks_the_provider_once_per_key(backend: Backend) -> None:
    source = Table({"a@x.com": {"v": 1}, "b@x.com": {"v": 2}})
    wrapper = cached(source, backend, ttl=60)
    assert (await wrapper.lookup("a@x.com")).data["v"] == 1
    assert (await wrapper.lookup("b@x.com")).data["v"] == 2
    assert source.calls == 2


async def test_entries_expire_after_their_ttl(backend: Backend) -> None:
    source = Table({"a@x.com": {"v": 1}})
    wrapper = cached(source, backend, ttl=0.2, negative_ttl=0.2)
    await wrapper.lookup("a@x.com")
    await wrapper.lookup("a@x.com")
    assert source.calls == 1
    await asyncio.sleep(0.3)
    source.table["a@x.com"] = {"v": 2}
    assert (await wrapper.lookup("a@x.com")).data["v"] == 2
    assert source.calls == 2


async def test_not_found_and_partial_data_are_cached_only_briefly(backend: Backend) -> None:
    source = Table({"p@x.com": {"partial": True, "v": 1}})
    wrapper = cached(source, backend, ttl=60, negative_ttl=0.2)
    missing = await wrapper.lookup("nobody@x.com")
    assert missing.error == "user 'nobody@x.com' not found"
    assert (await wrapper.lookup("nobody@x.com")).error == missing.error  # from the cache
    await wrapper.lookup("p@x.com")
    await wrapper.lookup("p@x.com")
    assert source.calls == 2
    for key in ("nobody@x.com", "p@x.com"):
        lifetime = await backend.lifetime(cache_key("table", key))
        assert lifetime is not None and lifetime <= 0.2
    await asyncio.sleep(0.3)
    await wrapper.lookup("nobody@x.com")
    await wrapper.lookup("p@x.com")
    assert source.calls == 4


async def test_provider_failures_are_never_cached(backend: Backend) -> None:
    source = Table({"a@x.com": {"v": 1}})
    source.fail = True
    wrapper = cached(source, backend, ttl=60)
    assert not (await wrapper.lookup("a@x.com")).available
    assert await backend.lifetime(cache_key("table", "a@x.com")) is None
    source.fail = False
    assert (await wrapper.lookup("a@x.com")).available  # the provider is asked again
    assert source.calls == 2


async def test_storage_is_bounded(backend: Backend) -> None:
    source = Table({f"u{i}@x.com": {"v": i} for i in range(3 * MEMORY_BOUND)})
    wrapper = cached(source, backend, ttl=60)
    for i in range(3 * MEMORY_BOUND):
        await wrapper.lookup(f"u{i}@x.com")
    present = [
        await backend.lifetime(cache_key("table", f"u{i}@x.com")) for i in range(3 * MEMORY_BOUND)
    ]
    held = [p for p in present if p is not None]
    if backend.maxsize is not None:
        assert len(held) <= backend.maxsize
        assert present[-1] is not None  # the newest entry survives; the oldest went first
        assert present[0] is None
    # Either way, everything held expires (the Redis lifetime check asserts a TTL is set).
    assert all(0 < p <= 60 for p in held)


async def test_a_corrupt_entry_is_a_miss_not_an_error(backend: Backend) -> None:
    source = Table({"a@x.com": {"v": 1}})
    await backend.cache.set(cache_key("table", "a@x.com"), "{not json", 60)
    assert (await cached(source, backend, ttl=60).lookup("a@x.com")).data["v"] == 1
    assert source.calls == 1
