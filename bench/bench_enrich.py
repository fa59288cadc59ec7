"""Enrichment throughput: 1,000 alerts × 4 enrichers, each provider answering in 100 ms.

The real enrichers (built by ``build_enrichers``: cache + breaker + concurrency cap) talk to
in-process stand-ins (``httpx.MockTransport``) that sleep 100 ms per lookup: PagerDuty
(two calls of 50 ms), HRIS, a JIT API and GCP IAM. Every alert has its own user, so the first
pass is all cache misses; the second pass repeats the alerts and is all cache hits.

Targets (issue #5): cold wall time ≤ 1.5 × (1000 × 0.1 s / cap) and ≥ 10× faster than serial;
cache-hit path ≤ 0.5 ms per alert.

    python bench/bench_enrich.py [--alerts 1000] [--caps 10,25,50,100] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from secbot.domain.alert import Alert
from secbot.enrich.engine import EnrichmentEngine
from secbot.runtime.enrichers import build_enrichers
from secbot.runtime.settings import load_settings

EngineFactory = Callable[[int, bool, float, str], EnrichmentEngine]
NAMES = ("oncall", "hr", "jit_permissions", "gcp_service_account")
LATENCY = 0.100  # seconds per lookup
SA = "deployer@prod.iam.gserviceaccount.com"


async def standin(request: httpx.Request) -> httpx.Response:
    """Answers every provider in its real shape after its share of the 100 ms lookup."""
    host, path = request.url.host, request.url.path
    if host == "pd.bench":  # PagerDuty: /users then /oncalls → 2 × 50 ms
        await asyncio.sleep(LATENCY / 2)
        if path == "/users":
            email = request.url.params["query"]
            return httpx.Response(200, json={"users": [{"id": "P" + email, "email": email}]})
        return httpx.Response(200, json={"oncalls": [], "more": False})
    await asyncio.sleep(LATENCY)
    if host == "hris.bench":
        email = path.rsplit("/", 1)[-1]
        return httpx.Response(
            200, json={"email": email, "division": "Platform", "title": "SRE", "status": "active"}
        )
    if host == "jit.bench":
        return httpx.Response(200, json={"grants": []})
    return httpx.Response(
        200, json={"email": SA, "displayName": "Deployer", "description": "CI", "projectId": "prod"}
    )


def make_alerts(n: int) -> list[Alert]:
    return [
        Alert.from_hit(
            {
                "kibana.alert.uuid": f"bench-{i}",
                "user": {"email": f"user{i}@example.com"},
                "gcp.audit.resource_name": f"projects/prod/serviceAccounts/sa{i}-{SA}",
            }
        )
        for i in range(n)
    ]


def engine_for(
    cap: int,
    http: httpx.AsyncClient,
    redis: Redis | None,
    *,
    local_ttl: float = 10.0,
    prefix: str = "bench:",
) -> EnrichmentEngine:
    settings = load_settings(
        pagerduty_url="http://pd.bench",
        pagerduty_token="t",
        hris_url="http://hris.bench",
        hris_token="t",
        entitle_url="http://jit.bench",
        entitle_token="t",
        jit_provider="generic",
        gcp_enabled=True,
        gcp_iam_url="http://iam.bench",
        whois_enabled=False,
        enrich_concurrency=cap,
        enrich_provider_timeout=60,
        enrich_local_cache_ttl=local_ttl,
        redis_prefix=prefix,
    )
    # The engine timeout covers queueing behind the cap too; the bench measures throughput.
    return EnrichmentEngine(build_enrichers(settings, redis=redis, http=http), timeout=120)


async def run_all(engine: EnrichmentEngine, alerts: Sequence[Alert]) -> tuple[float, int]:
    started = time.perf_counter()
    results = await asyncio.gather(*(engine.enrich(a, NAMES) for a in alerts))
    wall = time.perf_counter() - started
    failed = sum(1 for r in results for e in r.values() if not e.available)
    return wall, failed


async def run_serial(engine: EnrichmentEngine, alerts: Sequence[Alert]) -> list[float]:
    times = []
    for a in alerts:
        started = time.perf_counter()
        for name in NAMES:  # one enricher after another, one alert after another
            await engine.enrich(a, [name])
        times.append(time.perf_counter() - started)
    return times


async def hit_latencies(engine: EnrichmentEngine, alerts: Sequence[Alert]) -> list[float]:
    times = []
    for a in alerts:
        started = time.perf_counter()
        await engine.enrich(a, NAMES)
        times.append(time.perf_counter() - started)
    return times


async def cpu_floor(n: int, http: httpx.AsyncClient, redis: Redis, prefix: str) -> float:
    """The cold pass with no cap at all: what one process needs in CPU for n × 4 lookups
    (client, cache, breaker AND the in-process stand-ins). Wall ≈ max(bound, this)."""
    wall, _ = await run_all(engine_for(1000, http, redis, prefix=prefix), make_alerts(n))
    return wall


async def cold_table(
    alerts: Sequence[Alert], caps: Sequence[int], serial_est: float, make: EngineFactory
) -> bool:
    """Cold pass (all misses) per concurrency cap, against the targets; True if all met."""
    n, ok = len(alerts), True
    print(
        f"{'cap':>5} {'bound s':>8} {'target s':>9} {'cold wall s':>12} "
        f"{'x bound':>8} {'vs serial':>10} {'failed':>7}"
    )
    for cap in caps:
        bound = n * LATENCY / cap
        wall, failed = await run_all(make(cap, True, 10.0, f"{cap}:"), alerts)
        good = wall <= 1.5 * bound and serial_est / wall >= 10 and failed == 0
        ok &= good
        print(
            f"{cap:>5} {bound:>8.2f} {1.5 * bound:>9.2f} {wall:>12.2f} "
            f"{wall / bound:>8.2f} {serial_est / wall:>9.0f}x {failed:>7}"
            f"{'' if good else '  MISSED'}"
        )
    return ok


async def hit_table(alerts: Sequence[Alert], make: EngineFactory) -> bool:
    """All-hit passes: per-alert latency one at a time, and amortised over a batch."""
    ok = True
    print(
        f"{'cache-hit path (all hits)':<34} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>8}"
        f" {'batch ms/alert':>15}"
    )
    for label, local_ttl, use_redis in (
        ("Redis + in-process layer", 10.0, True),
        ("Redis only", 0.0, True),
        ("in-process only (no Redis)", 0.0, False),
    ):
        engine = make(50, use_redis, local_ttl, "hit:")
        await run_all(engine, alerts)  # warm
        per = sorted(await hit_latencies(engine, alerts))
        batch, _ = await run_all(engine, alerts)
        mean = statistics.mean(per) * 1000
        ok &= mean <= 0.5 or (use_redis and local_ttl == 0)  # Redis-only is informative
        print(
            f"{label:<34} {per[len(per) // 2] * 1000:>7.3f} "
            f"{per[int(len(per) * 0.99)] * 1000:>7.3f} {mean:>8.3f} "
            f"{batch * 1000 / len(alerts):>15.3f}"
        )
    return ok


async def main(n: int, caps: Sequence[int], redis_url: str) -> int:
    alerts = make_alerts(n)
    redis: Redis = Redis.from_url(redis_url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    http = httpx.AsyncClient(transport=httpx.MockTransport(standin))

    def make(cap: int, use_redis: bool, local_ttl: float, tag: str) -> EnrichmentEngine:
        cache = redis if use_redis else None
        return engine_for(cap, http, cache, local_ttl=local_ttl, prefix=prefix + tag)

    try:
        serial = await run_serial(engine_for(10, http, None), make_alerts(10))
        serial_est = statistics.mean(serial) * n
        print(
            f"serial: {statistics.mean(serial) * 1000:.0f} ms/alert measured on 10 alerts "
            f"→ {serial_est:.0f} s for {n} alerts"
        )
        floor = await cpu_floor(n, http, redis, f"{prefix}floor:")
        print(
            f"CPU floor: the cold pass uncapped takes {floor:.2f} s (client + stand-ins in "
            f"one process); expect wall ≈ max(bound, floor)\n"
        )
        ok = await cold_table(alerts, caps, serial_est, make)
        print()
        ok &= await hit_table(alerts, make)
    finally:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        for i in range(0, len(keys), 500):
            await redis.delete(*keys[i : i + 500])
        await redis.aclose()
        await http.aclose()
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
    return 0 if ok else 1


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--caps", default="10,20,25,50,100")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    caps = [int(c) for c in args.caps.split(",") if c.strip()]
    return asyncio.run(main(args.alerts, caps, args.redis))


if __name__ == "__main__":
    raise SystemExit(cli())


__all__: list[Any] = []
