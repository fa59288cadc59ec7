"""End-to-end benchmark (run by hand): alert indexed in Elastic → message posted in Slack.

    python bench/bench_e2e.py [--alerts 200] [--rate 20] [--backlog 2000]

The real service (bolt + Socket Mode + poller + pipeline + Redis) runs in this process; the
Elastic and Slack emulators run as separate processes (as the real services would be remote),
reached over loopback. Alerts are indexed with ``_bulk``; post times come from the Slack
emulator's recorded calls. Targets (issue #4): p95 latency ≤ 1.5 s at
SECBOT_POLL_INTERVAL=1 over 200 alerts; ≥ 200 alerts/s end to end with Slack pacing off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from secbot.demo.synthetic import generate
from secbot.rules.lists import load_lists
from secbot.rules.loader import load_rules
from secbot.runtime.service import SecBotService
from secbot.runtime.settings import load_settings
from secbot.runtime.wiring import build_service
from secbot_emulators.slack import DEFAULT_APP_TOKEN, DEFAULT_BOT_TOKEN

INDEX = ".alerts-security.alerts-default"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def emulator_processes() -> Iterator[tuple[str, str, str]]:
    """Start both emulators; yields (slack base url, es url, kibana url)."""
    slack_port, es_port, kibana_port = free_port(), free_port(), free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "secbot_emulators.slack", "--port", str(slack_port)],
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secbot_emulators.elastic",
                "--port",
                str(es_port),
                "--kibana-port",
                str(kibana_port),
            ],
            stdout=subprocess.DEVNULL,
        ),
    ]
    try:
        for port in (slack_port, es_port):
            wait_for_port(port)
        yield (
            f"http://127.0.0.1:{slack_port}",
            f"http://127.0.0.1:{es_port}",
            f"http://127.0.0.1:{kibana_port}",
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def wait_for_port(port: int) -> None:
    deadline = time.time() + 20
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"emulator on port {port} did not start")


async def posted_at(http: httpx.AsyncClient) -> dict[str, float]:
    """alert uuid → when it reached Slack: its own post (metadata) or, for a duplicate, the
    thread reply that names it as the latest."""
    out: dict[str, float] = {}
    for method in ("chat.postMessage", "chat.update"):
        calls = (await http.get("/_emulator/calls", params={"method": method})).json()["calls"]
        for call in calls:
            if call["error"] is not None or call["status"] != 200:
                continue
            params = call["params"]
            meta = params.get("metadata") or {}
            if isinstance(meta, str):
                meta = json.loads(meta)
            uid = (meta.get("event_payload") or {}).get("alert_uuid")
            text = str(params.get("text", ""))
            if not uid and "Latest: `" in text:
                uid = text.split("Latest: `", 1)[1].split("`", 1)[0]
            if uid:
                out[uid] = min(out.get(uid, call["at"]), call["at"])
    return out


async def index(es: httpx.AsyncClient, docs: list[dict[str, Any]]) -> None:
    lines = []
    for doc in docs:
        lines.append(json.dumps({"create": {"_index": INDEX, "_id": doc["kibana.alert.uuid"]}}))
        lines.append(json.dumps(doc))
    response = await es.post(
        "/_bulk",
        params={"refresh": "true"},
        content="\n".join(lines) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    response.raise_for_status()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"


async def run(count: int, rate: float, backlog: int) -> list[tuple[str, str, str]]:
    rules = load_rules(REPO / "rules", lists=load_lists(REPO / "lists"))
    with emulator_processes() as (slack_url, es_url, kibana_url):
        settings = load_settings(
            slack_bot_token=DEFAULT_BOT_TOKEN,
            slack_app_token=DEFAULT_APP_TOKEN,
            slack_api_url=f"{slack_url}/api/",
            siem="elastic",
            elasticsearch_url=es_url,
            kibana_url=kibana_url,
            default_channel="C0DEFAULT",
            poll_interval=1.0,
            http_port=0,
            redis_prefix=f"secbot-bench:{uuid.uuid4().hex}:",
            slack_pace=0,
            flood_threshold=0,
            log_level="WARNING",
        )
        service, resources = await build_service(settings, rules)
        task = asyncio.create_task(service.run())
        async with (
            httpx.AsyncClient(base_url=slack_url) as slack,
            httpx.AsyncClient(base_url=es_url) as es,
        ):
            try:
                await asyncio.sleep(1.5)
                latencies = await latency_run(slack, es, service, count, rate)
                throughput = await throughput_run(slack, es, service, backlog)
            finally:
                service.stop()
                await task
                await resources.aclose()
    q = statistics.quantiles(sorted(latencies), n=100)
    return [
        (f"latency p50 ({count} alerts at {rate:g}/s, poll 1 s)", f"{q[49]:.2f} s", ""),
        ("latency p95", f"{q[94]:.2f} s", "≤ 1.5 s"),
        ("latency p99", f"{q[98]:.2f} s", ""),
        (f"throughput, {backlog}-alert backlog, pacing off", f"{throughput:,.0f}/s", "≥ 200/s"),
    ]


async def latency_run(
    slack: httpx.AsyncClient,
    es: httpx.AsyncClient,
    service: SecBotService,
    count: int,
    rate: float,
) -> list[float]:
    inserted: dict[str, float] = {}
    target = delivered(service) + count
    for source in generate(count, seed=int(time.time())):
        source["@timestamp"] = now_iso()
        inserted[source["kibana.alert.uuid"]] = time.time()
        await index(es, [source])
        await asyncio.sleep(1 / rate)
    done = await wait_posted(slack, service, set(inserted), timeout=60, target=target)
    return [done[u] - t for u, t in inserted.items()]


async def throughput_run(
    slack: httpx.AsyncClient, es: httpx.AsyncClient, service: SecBotService, backlog: int
) -> float:
    docs: list[dict[str, Any]] = list(generate(backlog, seed=int(time.time()) + 1))
    stamp = now_iso()
    for doc in docs:
        doc["@timestamp"] = stamp
    target = delivered(service) + backlog
    start = time.time()
    await index(es, docs)
    done = await wait_posted(
        slack, service, {d["kibana.alert.uuid"] for d in docs}, timeout=300, target=target
    )
    return backlog / (max(done[d["kibana.alert.uuid"]] for d in docs) - start)


def delivered(service: SecBotService) -> float:
    """Alerts the service has finished (posted or threaded), from its own metrics."""
    total = 0.0
    for name in ("secbot_alerts_posted_total", "secbot_alerts_threaded_total"):
        for metric in service.parts.metrics.registry.collect():
            for sample in metric.samples:
                if sample.name == name:
                    total += sample.value
    return total


async def wait_posted(
    slack: httpx.AsyncClient, service: SecBotService, uuids: set[str], timeout: float, target: float
) -> dict[str, float]:
    """Wait on the service's counters (cheap), then read the post times once."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if delivered(service) >= target:
            done = await posted_at(slack)
            if uuids <= set(done):
                return done
        await asyncio.sleep(0.05)
    raise SystemExit(f"not all alerts were posted within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="alerts indexed per second")
    parser.add_argument("--backlog", type=int, default=2000)
    args = parser.parse_args()
    rows = asyncio.run(run(args.alerts, args.rate, args.backlog))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target}")


if __name__ == "__main__":
    main()
