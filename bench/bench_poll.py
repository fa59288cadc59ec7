"""Poller throughput and empty-poll latency through the Elastic emulator (run by hand).

    python bench/bench_poll.py [--alerts 50000] [--page-size 500] [--empty-polls 200]

Starts ``python -m secbot_emulators.elastic`` in a subprocess (so client and server do not
share one event loop), seeded with a backlog of synthetic alerts, then drains it through
:class:`ElasticSiem` (real AsyncElasticsearch + httpx clients) and :class:`AlertPoller`, and
times polls that find nothing new. The embedded SQLite backend is measured the same way for
comparison. Targets: drain ≥ 1,000 alerts/s; empty poll median/p95 ≤ 20 ms on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from secbot.domain.alert import Alert
from secbot.intake.poller import AlertPoller
from secbot.runtime.settings import load_settings
from secbot.runtime.siem_clients import build_elastic_siem
from secbot.siem.base import Siem
from secbot.siem.embedded import EmbeddedSiem
from secbot.store.memory import MemoryStore

OVERLAP = 300.0


def synthetic_alerts(count: int, recent: int) -> list[dict[str, Any]]:
    """``count`` old alerts (outside the overlap) plus ``recent`` ones inside it."""
    now = datetime.now(UTC)
    old_start = now - timedelta(hours=26)
    docs = []
    for i in range(count + recent):
        if i < count:
            stamp = old_start + timedelta(seconds=i * 86400 / max(count, 1))
        else:
            stamp = now - timedelta(seconds=OVERLAP / 2) + timedelta(milliseconds=i - count)
        uuid = f"{i:08d}-bench-{i * 7919 % 100003:06d}"
        docs.append({
            "@timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "kibana.alert.uuid": uuid, "kibana.alert.workflow_status": "open",
            "kibana.alert.rule.name": f"Bench rule {i % 17}", "kibana.alert.severity": "medium",
            "kibana.alert.reason": f"event on host-{i % 500} created medium alert",
            "event.kind": "signal", "host": {"name": f"host-{i % 500}"},
            "user": {"email": f"user{i % 900}@example.com"},
        })
    return docs


@asynccontextmanager
async def emulator_process(seed: Path) -> AsyncIterator[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "secbot_emulators.elastic", "--port", "0", "--kibana-port", "0",
        "--seed", str(seed), stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        yield json.loads(await asyncio.wait_for(process.stdout.readline(), 120))
    finally:
        process.terminate()
        await process.wait()


async def measure(siem: Siem, expected: int, page_size: int, empty_polls: int
                  ) -> dict[str, float]:
    store = MemoryStore()
    seen: set[str] = set()

    async def handler(alert: Alert) -> None:
        seen.add(alert.uuid)
        await store.mark_posted(alert.uuid, ttl=86400)

    poller = AlertPoller(siem, store, overlap_seconds=OVERLAP, page_size=page_size)
    started = time.perf_counter()
    delivered = await poller.poll_once(handler)
    drain = time.perf_counter() - started
    assert delivered == expected == len(seen), (delivered, expected, len(seen))
    overlap = await siem.fetch_new(poller.checkpoint, overlap_seconds=OVERLAP, limit=10_000)
    latencies = []
    for _ in range(empty_polls):
        tick = time.perf_counter()
        assert await poller.poll_once(handler) == 0
        latencies.append((time.perf_counter() - tick) * 1000)
    latencies.sort()
    return {"drain_s": drain, "rate": expected / drain,
            "median_ms": statistics.median(latencies),
            "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
            "reread": float(len(overlap.alerts))}


async def run(args: argparse.Namespace) -> list[tuple[str, dict[str, float]]]:
    docs = synthetic_alerts(args.alerts, args.recent)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "backlog.ndjson"
        seed.write_text("\n".join(json.dumps(doc) for doc in docs), encoding="utf-8")
        async with emulator_process(seed) as urls:
            siem = build_elastic_siem(load_settings(
                elasticsearch_url=urls["elasticsearch"], kibana_url=urls["kibana"]))
            try:
                rows.append(("elastic (emulator)", await measure(
                    siem, len(docs), args.page_size, args.empty_polls)))
            finally:
                await siem.close()
        embedded = EmbeddedSiem(Path(tmp) / "bench.sqlite3")
        try:
            await embedded.insert(docs)
            rows.append(("embedded (sqlite)", await measure(
                embedded, len(docs), args.page_size, args.empty_polls)))
        finally:
            await embedded.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=50_000, help="backlog size")
    parser.add_argument("--recent", type=int, default=200,
                        help="extra alerts stamped in the last few minutes")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--empty-polls", type=int, default=200)
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    total = args.alerts + args.recent
    print(f"\nbacklog {total} alerts, page size {args.page_size}, overlap {OVERLAP:.0f}s; "
          f"an empty poll re-reads the overlap (already-posted alerts, skipped)\n")
    print(f"{'backend':<20} {'drain s':>8} {'alerts/s':>10} {'empty p50 ms':>13} "
          f"{'empty p95 ms':>13} {'re-read':>8}")
    for name, result in rows:
        print(f"{name:<20} {result['drain_s']:>8.2f} {result['rate']:>10.0f} "
              f"{result['median_ms']:>13.2f} {result['p95_ms']:>13.2f} "
              f"{result['reread']:>8.0f}")
    print(f"{'target':<20} {'':>8} {'>= 1000':>10} {'<= 20':>13} {'<= 20':>13}")


if __name__ == "__main__":
    main()
