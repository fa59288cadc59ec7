"""Intake throughput, run by hand: ``python bench/bench_intake.py [--alerts 20000]``.

The real listener (aiohttp) storing into the real Redis on 127.0.0.1:6379 under a throw-away
prefix; several concurrent clients post batches of Elastic alert documents. Prints the
durable acceptance rate (alerts in 202 answers per second), request latency p95/p99, and the
process RSS, beside the target (issue 12: >= 1,000 alerts/s durably).

Not measured here yet: push → Slack p95 with the emulators in separate processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
import uuid

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=18081)
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.batch, args.clients, args.port))
