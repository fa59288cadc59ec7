"""Retries (http), the TTL cache (real Redis), the circuit breaker and the registry."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from enrich_support import FAST, alert
from redis.asyncio import Redis

from secbot.domain.enrichment import Enrichment
from secbot.enrich.breaker import CircuitBreaker, GuardedEnricher
from secbot.enrich.cache import CachedEnricher, RedisCache, cache_key
from secbot.enrich.common import SourceBase, not_found
from secbot.enrich.http import RetryPolicy, retry_after_seconds, send
from secbot.runtime.enrichers import build_enrichers
from secbot.runtime.settings import load_settings
from secbot_emulators.providers import Script, json_reply

# http ---------------------------------------------------------------------------------------


def test_retry_after_parsing_and_backoff_caps() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30)), now) == 30.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    policy = RetryPolicy(base=1.0, cap=4.0, max_retry_after=10.0)
    assert policy.delay(10, None, rand=lambda: 1.0) == 4.0  # capped
    assert policy.delay(10, None, rand=lambda: 0.0) == 2.0  # equal jitter: ≥ half
    assert policy.delay(1, None, rand=lambda: 0.5) == 1.5  # ceiling 2, jittered
    assert policy.delay(0, 3.0) == 3.0  # server's hint wins
    assert policy.delay(0, 60.0) is None  # too long to wait for an alert


async def test_send_honours_retry_after_then_gives_up() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    script = Script().on(
        "/x",
        json_reply(429, {}, **{"Retry-After": "2"}),
        json_reply(503, {}),
        json_reply(200, {"ok": 1}),
    )
    policy = RetryPolicy(attempts=3, base=0.5, cap=0.5, max_retry_after=5)
    response = await send(script.client(), "GET", "/x", policy=policy, sleep=sleep)
    assert response.status_code == 200 and slept[0] == 2.0 and 0.25 <= slept[1] <= 0.5
    script.on("/x", json_reply(429, {}, **{"Retry-After": "3600"}))
    response = await send(script.client(), "GET", "/x", policy=policy, sleep=sleep)
    assert response.status_code == 429 and len(slept) == 2  # not waited an hour


async def test_send_retries_connection_errors() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        return json_reply(200, {})

    script = Script().on("/y", flaky)
    assert (await send(script.client(), "GET", "/y", policy=FAST)).status_code == 200


async def test_send_gives_up_on_a_dead_host_with_the_httpx_error() -> None:
    calls = 0

    def dead(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused", request=request)

    script = Script().on("/z", dead)
    with pytest.raises(httpx.ConnectError):
        await send(script.client(), "GET", "/z", policy=FAST)
    assert calls == FAST.attempts


async def test_send_does_not_retry_a_client_error() -> None:
    script = Script().on("/w", json_reply(401, {}), json_reply(200, {}))
    response = await send(script.client(), "GET", "/w", policy=FAST)
    assert response.status_code == 401


# cache --------------------------------------------------------------------------------------


class Counting(SourceBase):
    """A source answering from a table, counting calls; ``fail`` makes it fail."""

    name = "counting"
    fields = ("user.email",)

    def __init__(self, table: dict[str, Any], delay: float = 0.0) -> None:
        self.table = table
        self.calls = 0
        self.fail = False
        self.delay = delay

    def normalize_key(self, key: str) -> str:
        return key.strip().lower()

    async def lookup(self, key: str) -> Enrichment:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            return Enrichment.unavailable(self.name, "provider: server error (HTTP 503)")
        key = self.normalize_key(key)
        if key not in self.table:
            return not_found(self.name, f"user {key!r}")
        return Enrichment.ok(self.name, self.table[key])


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"secbot-test-{uuid.uuid4().hex[:8]}:"
    yield client, prefix
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_redis_cache_hits_negative_ttl_and_no_failure_caching(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    source = Counting({"a@x.com": {"on_call": True, "schedules": ["p"]}})
    cached = CachedEnricher(source, RedisCache(client, prefix), ttl=60, negative_ttl=1)
    first = await cached.lookup("A@x.com")
    again = await cached.enrich(alert(user={"email": "a@x.com"}))
    assert first.data["on_call"] is True and again.data == first.data and source.calls == 1
    assert await client.pttl(prefix + cache_key("counting", "a@x.com")) > 50_000
    # A second replica (fresh wrapper, same Redis) sees the entry.
    other = CachedEnricher(Counting({}), RedisCache(client, prefix), ttl=60)
    assert (await other.lookup("a@x.com")).data["schedules"] == ("p",)
    # Negative results are cached, briefly.
    assert (await cached.lookup("b@x.com")).error == "user 'b@x.com' not found"
    await cached.lookup("b@x.com")
    assert source.calls == 2
    ttl = await client.pttl(prefix + cache_key("counting", "b@x.com"))
    assert 0 < ttl <= 1000
    # Failures are not cached.
    source.fail = True
    await cached.lookup("c@x.com")
    await cached.lookup("c@x.com")
    assert source.calls == 4


async def test_concurrent_lookups_share_one_call() -> None:
    source = Counting({"a@x.com": {"v": 1}}, delay=0.05)
    cached = CachedEnricher(source, ttl=60)
    results = await asyncio.gather(*(cached.lookup("a@x.com") for _ in range(50)))
    assert source.calls == 1 and all(r.data["v"] == 1 for r in results)


async def test_redis_down_falls_back_to_memory() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    source = Counting({"a@x.com": {"v": 1}})
    cached = CachedEnricher(source, RedisCache(dead), ttl=60)
    assert (await cached.lookup("a@x.com")).available
    assert (await cached.lookup("a@x.com")).available
    assert source.calls == 1
    await dead.aclose()


# breaker ------------------------------------------------------------------------------------


async def test_dead_provider_costs_one_timeout_per_window() -> None:
    source = Counting({"a@x.com": {"v": 1}}, delay=10)  # hangs: a dead provider
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, window=30, clock=lambda: now[0])
    guarded = GuardedEnricher(source, breaker=breaker, timeout=0.1, concurrency=10)
    for _ in range(3):
        assert (await guarded.lookup("a@x.com")).error == "timeout after 0.1s"
    assert breaker.state == "open"
    started = time.perf_counter()
    results = await asyncio.gather(*(guarded.lookup("a@x.com") for _ in range(100)))
    assert time.perf_counter() - started < 0.05  # fail fast, no waiting for timeouts
    assert all("circuit open" in (r.error or "") for r in results) and source.calls == 3
    now[0] = 31.0  # window over: exactly one probe goes through
    probes = await asyncio.gather(*(guarded.lookup("a@x.com") for _ in range(5)))
    assert source.calls == 4 and sum("timeout" in (p.error or "") for p in probes) == 1
    assert breaker.state == "open"
    now[0] = 62.0
    source.delay = 0
    assert (await guarded.lookup("a@x.com")).available and breaker.state == "closed"


async def test_not_found_does_not_trip_and_cap_bounds_concurrency() -> None:
    source = Counting({}, delay=0.02)
    guarded = GuardedEnricher(source, breaker=CircuitBreaker(2, 60), timeout=1, concurrency=5)
    active = peak = 0
    inner_lookup = source.lookup

    async def tracked(key: str) -> Enrichment:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            return await inner_lookup(key)
        finally:
            active -= 1

    source.lookup = tracked  # type: ignore[method-assign]
    results = await asyncio.gather(*(guarded.lookup(f"u{i}@x.com") for i in range(40)))
    assert all(r.error and r.error.endswith("not found") for r in results)
    assert guarded.breaker.state == "closed" and peak == 5


# registry -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_secbot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Environment wins over explicit values in Settings: keep the host's SECBOT_* out.
    import os

    for name in list(os.environ):
        if name.startswith("SECBOT_"):
            monkeypatch.delenv(name)


def test_registry_builds_only_configured_enrichers() -> None:
    bare = build_enrichers(load_settings(whois_enabled=False), http=httpx.AsyncClient())
    assert set(bare) == {"hr"}
    full = build_enrichers(
        load_settings(
            gcp_enabled=True,
            entitle_url="https://entitle.local",
            entitle_token="t",
            pagerduty_token="p",
            hris_url="https://hris.local",
            abuseipdb_key="a",
            greynoise_key="g",
        ),
        http=httpx.AsyncClient(),
    )
    assert set(full) == {
        "gcp_project",
        "gcp_service_account",
        "jit_permissions",
        "oncall",
        "hr",
        "threat_intel",
        "whois",
    }
    wrapped = full["oncall"]
    assert isinstance(wrapped, CachedEnricher) and isinstance(wrapped.inner, GuardedEnricher)
    assert repr(load_settings(pagerduty_token="secret-pd")).count("secret-pd") == 0


async def test_registry_owns_and_closes_its_client() -> None:
    enrichers = build_enrichers(load_settings())
    assert "whois" in enrichers
    await enrichers.aclose()


async def test_retry_async_awaits_a_lambdas_coroutine() -> None:
    """tenacity awaits only coroutine functions; a lambda returning one must still be awaited
    (it once came back as an unawaited coroutine, and the GCP enricher subscripted it)."""
    from secbot.resilience.retry import RetryableError as Transient
    from secbot.resilience.retry import retry_async

    tries: list[int] = []

    async def flaky() -> int:
        tries.append(1)
        if len(tries) < 2:
            raise Transient("once")
        return 5

    async def no_sleep(_: float) -> None:
        return None

    assert await retry_async(lambda: flaky(), RetryPolicy(attempts=3), sleep=no_sleep) == 5
    assert len(tries) == 2
