"""Intake benchmarks, run by hand: ``python bench/bench_intake.py [--alerts 20000]``.

1. Durable acceptance: the real listener (aiohttp) storing into the real Redis on
   127.0.0.1:6379 under a throw-away prefix; several concurrent clients post batches of
   Elastic alert documents, then the same with one alert per request (what a Kibana rule
   action per alert or a naive sender does). Alerts in 202 answers per second, request
   p95/p99 and the process RSS, beside the target (issue 12: >= 1,000 alerts/s durably).
2. Push → Slack latency (``--push N``, default 200 at ``--push-rate`` 20/s): the whole
   service (``build_service``: listener, stream, consumer, pipeline, Slack publisher) with
   the Slack and Elastic emulators in separate processes and pacing off; one alert per
   request, timed from just before the POST to the emulator's record of the
   ``chat.postMessage`` (p50/p95/p99; target p95 <= 300 ms). The poller runs too, but the
   alerts are never indexed in Elasticsearch: every post came through the push path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
import uuid
from typing import Any

import httpx
import redis.asyncio as aioredis
from aiohttp import web

from secbot.intake.listener import IntakeConfig, intake_app
from secbot.intake.queue import IntakeQueue
from secbot.intake.sources import load_sources

TOKEN = "bench-token"


def alert(i: int) -> dict[str, object]:
    return {"@timestamp": "2024-05-01T10:00:00.000Z", "kibana.alert.uuid": str(uuid.uuid4()),
            "kibana.alert.rule.name": "Bench", "user": {"email": f"u{i}@example.com"},
            "source": {"ip": "203.0.113.7"}}


def okta_alert(i: int) -> dict[str, Any]:
    """An alert of rules/okta_login_new_country.yaml, its own user (never a duplicate), an
    address outside the VPN range (stays open: one post, no SIEM write). Its enrichers (HR,
    threat intel) are not configured here: unavailable at once, as the message says."""
    return {"@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "kibana.alert.uuid": f"push-{uuid.uuid4().hex}",
            "kibana.alert.workflow_status": "open", "kibana.alert.severity": "medium",
            "kibana.alert.rule.name": "Okta Sign-In From New Country",
            "user": {"email": f"u{i}-{uuid.uuid4().hex[:6]}@example.com"},
            "source": {"ip": f"203.0.113.{i % 250 + 1}", "geo": {"country_name": "Brazil"}}}


async def client_loop(url: str, bodies: list[bytes], latencies: list[float]) -> int:
    accepted = 0
    async with httpx.AsyncClient(timeout=30, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}) as http:
        for body in bodies:
            began = time.perf_counter()
            response = await http.post(url, content=body)
            latencies.append(time.perf_counter() - began)
            if response.status_code == 202:
                accepted += int(response.json()["accepted"])
    return accepted


async def main(total: int, batch: int, clients: int, port: int) -> None:
    for size, count in ((batch, total), (1, min(total, 5_000))):
        await acceptance(count, size, clients, port)


async def acceptance(total: int, batch: int, clients: int, port: int) -> None:
    prefix = f"secbot-bench:{uuid.uuid4().hex}:"
    redis = aioredis.Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    queue = IntakeQueue(redis, prefix)
    config = IntakeConfig(sources=load_sources(None), tokens={"elastic": TOKEN}, queue=queue,
                          rate=1e9)
    runner = web.AppRunner(intake_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    bodies = [json.dumps([alert(i + j) for j in range(batch)]).encode()
              for i in range(0, total, batch)]
    per_client = [bodies[c::clients] for c in range(clients)]
    latencies: list[float] = []
    url = f"http://127.0.0.1:{port}/v1/alerts/elastic"
    began = time.perf_counter()
    counts = await asyncio.gather(*(client_loop(url, b, latencies) for b in per_client))
    elapsed = time.perf_counter() - began
    stored = await queue.backlog()
    await redis.delete(queue.key)
    await runner.cleanup()
    await redis.aclose()
    q = statistics.quantiles(latencies, n=100)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = sum(counts) / elapsed
    print(f"{'measure':<34}{'target':>14}{'figure':>16}")
    print(f"{'intake, alerts/s durably (202)':<34}{'>= 1,000':>14}{rate:>16,.0f}")
    print(f"{'request p95 / p99 (batch ' + str(batch) + ')':<34}{'-':>14}"
          f"{q[94] * 1000:>9.1f}/{q[98] * 1000:.1f} ms")
    print(f"{'alerts in the stream':<34}{sum(counts):>14,}{stored:>16,}")
    print(f"{'max RSS (listener + clients)':<34}{'-':>14}{rss:>13.0f} MB")


async def push_latency(count: int, rate: float) -> None:
    """Push → Slack through the real service against emulator processes (see module doc)."""
    from bench_e2e import REPO, emulator_processes, free_port, posted_at

    from secbot.rules.lists import load_lists
    from secbot.rules.loader import load_rules
    from secbot.runtime.settings import load_settings
    from secbot.runtime.wiring import build_service
    from secbot_emulators.slack import DEFAULT_APP_TOKEN, DEFAULT_BOT_TOKEN

    intake_port = free_port()
    with emulator_processes() as (slack_url, es_url, kibana_url):
        settings = load_settings(
            slack_bot_token=DEFAULT_BOT_TOKEN, slack_app_token=DEFAULT_APP_TOKEN,
            slack_api_url=f"{slack_url}/api/", siem="elastic", elasticsearch_url=es_url,
            kibana_url=kibana_url, default_channel="C0DEFAULT", poll_interval=1.0,
            http_port=0, redis_prefix=f"secbot-bench:{uuid.uuid4().hex}:", slack_pace=0,
            intake_port=intake_port, intake_tokens=f"elastic={TOKEN}", intake_rate=1e6,
            group_threshold=0,  # storm groups off: every alert its own post, as in bench_e2e
            log_level="WARNING")
        service, resources = await build_service(
            settings, load_rules(REPO / "rules", lists=load_lists(REPO / "lists")))
        task = asyncio.create_task(service.run())
        sent: dict[str, float] = {}
        url = f"http://127.0.0.1:{intake_port}/v1/alerts/elastic"
        try:
            await asyncio.sleep(1.5)
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                for i in range(count):
                    doc = okta_alert(i)
                    sent[doc["kibana.alert.uuid"]] = time.time()
                    (await http.post(url, json=doc)).raise_for_status()
                    await asyncio.sleep(1 / rate)
            async with httpx.AsyncClient(base_url=slack_url) as slack:
                done = await _all_posted(slack, posted_at, set(sent))
        finally:
            service.stop()
            await task
            await resources.aclose()
    q = statistics.quantiles(sorted(done[u] - t for u, t in sent.items()), n=100)
    print(f"{'push → Slack (' + str(count) + f' at {rate:g}/s)':<34}{'p95 <= 300 ms':>14}"
          f"{q[49] * 1000:>7.0f}/{q[94] * 1000:.0f}/{q[98] * 1000:.0f} ms (p50/p95/p99)")


async def _all_posted(slack: httpx.AsyncClient, posted_at: Any, uuids: set[str],
                      timeout: float = 60.0) -> dict[str, float]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        done: dict[str, float] = await posted_at(slack)
        if uuids <= set(done):
            return done
        await asyncio.sleep(0.5)
    raise SystemExit(f"{len(uuids - set(done))} pushed alerts not posted within {timeout} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--push", type=int, default=200, help="push → Slack alerts (0: skip)")
    parser.add_argument("--push-rate", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.batch, args.clients, args.port))
    if args.push:
        asyncio.run(push_latency(args.push, args.push_rate))
