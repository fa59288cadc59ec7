"""Statistics benchmark, run by hand: ``python bench/bench_stats.py [--alerts 1000000]``.

1. Embedded store: ``--alerts`` alerts (50 rules; open, acknowledged, closed by people with
   reasons, auto-closed by SecBot; stamped over 14 days so both the period and the one before
   have alerts) written into a SQLite file, then ``secbot stats`` (the report: one
   ``Siem.stats`` call covering the period and the previous one) timed in process, best of
   ``--repeat``, and once as the real command (``python -m secbot stats --json``, process
   start included). Target: <= 2 s over 1,000,000 alerts.
2. Elastic stand-in: ``--es-alerts`` alerts indexed into the Elasticsearch emulator; the
   report through ``ElasticSiem`` (real ``AsyncElasticsearch``), counting the searches with
   aggregations and the hits that came back. Target: one aggregation request per call.

The SQLite file is written once per size under ``--workdir`` (default /tmp) and reused for a day.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from secbot.runtime.settings import load_settings
from secbot.runtime.siem_clients import build_elastic_siem
from secbot.siem.elastic_stats import stats_body
from secbot.siem.embedded import EmbeddedSiem
from secbot.stats.report import StatsReport, fetch_report
from secbot_emulators.elastic import ElasticEmulator

INDEX = ".alerts-security.alerts-default"
REASONS = ("false_positive", "benign_positive", "true_positive", "duplicate")
#: Now (to the minute), so the in-process report and the command see the same window (almost).
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert(i: int, rng: random.Random) -> dict[str, Any]:
    """One alert in one of the five fates, with its workflow fields as Kibana writes them."""
    stamp = NOW - timedelta(seconds=rng.uniform(0, 14 * 86400))
    doc: dict[str, Any] = {
        "@timestamp": iso(stamp), "kibana.alert.uuid": f"b{i:08d}",
        "kibana.alert.rule.name": f"Bench rule {rng.randrange(50):02d}",
        "kibana.alert.workflow_status": "open", "user": {"email": f"u{i % 977}@example.com"},
    }
    fate = rng.random()
    if fate < 0.4:
        return doc
    later = iso(stamp + timedelta(seconds=rng.expovariate(1 / 3600)))
    doc["kibana.alert.workflow_status_updated_at"] = later
    if fate < 0.5:
        doc.update({"kibana.alert.workflow_status": "acknowledged",
                    "kibana.alert.workflow_user": "U0TRIAGER"})
    elif fate < 0.8:
        doc.update({"kibana.alert.workflow_status": "closed",
                    "kibana.alert.workflow_user": "U0TRIAGER",
                    "kibana.alert.workflow_reason": rng.choice(REASONS)})
    else:
        doc.update({"kibana.alert.workflow_status": "closed",
                    "kibana.alert.workflow_user": "secbot",
                    "kibana.alert.workflow_reason": "false_positive",
                    "kibana.alert.workflow_tags": ["closed_by:secbot"]})
    return doc


async def build_db(path: Path, count: int) -> float:
    """Write ``count`` alerts into a fresh SQLite file; seconds taken (setup, not a target)."""
    started = time.perf_counter()
    path.unlink(missing_ok=True)
    siem = EmbeddedSiem(path)
    rng = random.Random(15)
    for start in range(0, count, 50_000):
        await siem.insert([alert(i, rng) for i in range(start, min(count, start + 50_000))])
    await siem.close()
    return time.perf_counter() - started


async def embedded_report(path: Path) -> tuple[float, StatsReport]:
    siem = EmbeddedSiem(path)
    try:
        started = time.perf_counter()
        report = await fetch_report(siem, timedelta(days=7), NOW)
        return time.perf_counter() - started, report
    finally:
        await siem.close()


def cli_seconds(path: Path) -> tuple[float, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECBOT_")}
    env.update(SECBOT_SIEM="embedded", SECBOT_EMBEDDED_DB=str(path),
               SECBOT_SOURCES_DIR=str(path.parent / "no-sources"))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "secbot", "stats", "--json", "--since", "7d"],
                          env=env, capture_output=True, text=True, check=True, timeout=120)
    return time.perf_counter() - started, json.loads(done.stdout)


async def elastic_calls(count: int) -> tuple[int, int, float, StatsReport]:
    """(aggregation searches per report, hits the request asks for, seconds, report)."""
    async with ElasticEmulator.running() as emu:
        rng = random.Random(15)
        emu.index_documents(INDEX, [alert(i, rng) for i in range(count)])
        siem = build_elastic_siem(load_settings(elasticsearch_url=emu.url,
                                                kibana_url=emu.kibana_url, alerts_index=INDEX))
        try:
            before = emu.es.aggregation_searches
            started = time.perf_counter()
            report = await fetch_report(siem, timedelta(days=7), NOW)
            took = time.perf_counter() - started
            return (emu.es.aggregation_searches - before,
                    stats_body(NOW, NOW, by_source=False)["size"], took, report)
        finally:
            await siem.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--es-alerts", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    path = args.workdir / f"secbot-bench-stats-{args.alerts}.sqlite3"
    # Alerts are stamped relative to the time of writing: a file older than a day is rewritten.
    if not path.exists() or time.time() - path.stat().st_mtime > 86400:
        print(f"writing {args.alerts:,} alerts ... {await build_db(path, args.alerts):.0f}s "
              "(setup, not a target)")
    times = []
    for _ in range(max(1, args.repeat)):
        took, report = await embedded_report(path)
        times.append(took)
    cli, doc = cli_seconds(path)
    searches, hits, es_took, es_report = await elastic_calls(args.es_alerts)
    print(f"{'measure':<64}{'target':>10}{'figure':>12}")
    print(f"{f'secbot stats, embedded, {args.alerts:,} alerts (best of {len(times)})':<64}"
          f"{'<= 2 s':>10}{min(times):>11.2f}s")
    print(f"{'  median of the runs':<64}{'-':>10}{sorted(times)[len(times) // 2]:>11.2f}s")
    print(f"{'  the command (python -m secbot stats --json, process start)':<64}{'-':>10}"
          f"{cli:>11.2f}s")
    print(f"{'  alerts counted in the 7-day period / the one before':<64}{'-':>10}"
          f"{f'{report.total.alerts:,} / {report.total.previous_alerts:,}':>20}")
    print(f"{f'Elastic stand-in ({args.es_alerts:,} alerts): aggregation requests a call':<64}"
          f"{'1':>10}{searches:>12}")
    print(f"{'  hits asked for (size of the request)':<64}{'0':>10}{hits:>12}")
    print(f"{'  the call (emulator, pure Python)':<64}{'-':>10}{es_took:>11.2f}s")
    print(f"{'  alerts the command counted (its now is a little later)':<64}{'-':>10}"
          f"{doc['total']['alerts']:>12,}")
    print(f"{'  stand-in alerts counted (7 days)':<64}{'-':>10}{es_report.total.alerts:>12,}")


if __name__ == "__main__":
    asyncio.run(main())
