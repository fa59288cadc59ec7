"""Closing a big alert group, run by hand: ``python bench/bench_group_close.py [--alerts 1000]``.

The whole service (``build_service``: Socket Mode, poller, pipeline, publisher, triage) against
the Slack and Elastic/Kibana stand-ins and the real Redis on 127.0.0.1:6379 (throw-away key
prefix). ``--alerts`` alerts of one rule, one user and one project (one ``dedup.key``) are
indexed before the start and taken in by the first poll; the poll interval is then long, so
every SIEM request the stand-in records after the ✅ is the close's own. The bench waits until
the group's message stands for every alert, then a triager reacts ✅ on it and the clock runs
until the SIEM shows every alert closed.

Targets (issue 11): all closed in the SIEM within 10 s, at most 20 SIEM calls (reads included).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from secbot.rules.lists import load_lists
from secbot.rules.loader import load_rules
from secbot.runtime.settings import load_settings
from secbot.runtime.wiring import build_service
from secbot.store.records import AlertRecords
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

REPO = Path(__file__).resolve().parents[1]
INDEX = ".alerts-security.alerts-default"
CHANNEL = "C0PRODSEC"  # the GCP rule routes prod-* projects here; nothing auto-closes
TRIAGER = "U0TRIAGER"  # the Slack stand-in's alice, in S0TRIAGE


def gcp_alert(i: int, run: str) -> dict[str, Any]:
    stamp = datetime.now(UTC) - timedelta(seconds=600) + timedelta(milliseconds=i)
    return {
        "@timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "kibana.alert.uuid": f"{run}-{i:05d}",
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "high",
        "kibana.alert.rule.name": "GCP Service Account Key Creation",
        "cloud": {"project": {"id": "prod-payments"}},
        "user": {"email": "dev@example.com"},
        "source.ip": "198.51.100.7",
    }


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout:g}s")
        await asyncio.sleep(0.1)


async def biggest_group(slack: SlackEmulator, records: AlertRecords) -> tuple[str, int]:
    """The top-level message in the channel standing for the most alerts, and how many."""
    best = ("", 0)
    for message in slack.messages(CHANNEL):
        if message.thread_ts and message.thread_ts != message.ts:
            continue
        size = len(await records.members_of_thread(CHANNEL, message.ts))
        best = max(best, (message.ts, size), key=lambda pair: pair[1])
    return best


async def run(count: int) -> None:
    run_id, prefix = uuid.uuid4().hex[:8], f"secbot-bench-group:{uuid.uuid4().hex}:"
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        es.index_documents(INDEX, [gcp_alert(i, run_id) for i in range(count)])
        settings = load_settings(
            slack_bot_token=slack.bot_token, slack_app_token=slack.app_token,
            slack_api_url=slack.api_url, siem="elastic", elasticsearch_url=es.url,
            kibana_url=es.kibana_url, default_channel="C0DEFAULT", triagers=["S0TRIAGE"],
            poll_interval=3600, http_port=0, redis_prefix=prefix, slack_pace=0,
            rules_dir=REPO / "rules", intake_port=0)
        service, resources = await build_service(
            settings, load_rules(REPO / "rules", lists=load_lists(REPO / "lists")))
        task = asyncio.create_task(service.run())
        store = RedisStore.from_url(settings.redis_url, prefix)
        records = AlertRecords(store)
        try:
            await slack.wait_for_connections(1, timeout=10)
            started = time.monotonic()

            async def grouped() -> tuple[str, int] | None:
                ts, size = await biggest_group(slack, records)
                return (ts, size) if size >= count else None

            ts, size = await wait_for(grouped, 600, f"one message for all {count} alerts")
            ingest = time.monotonic() - started
            await asyncio.sleep(1.0)  # let the last thread lines and edits settle
            before = (es.calls(), es.calls("es"), es.calls("kibana"))
            clicked = time.monotonic()
            slack.user_reacts(TRIAGER, "white_check_mark", CHANNEL, ts)
            uids = [f"{run_id}-{i:05d}" for i in range(count)]

            async def all_closed() -> bool:
                return all((es.document(INDEX, u) or {}).get("kibana.alert.workflow_status")
                           == "closed" for u in uids)

            try:
                await wait_for(all_closed, 120, "every alert closed in the SIEM")
            except SystemExit:
                closed = sum((es.document(INDEX, u) or {}).get("kibana.alert.workflow_status")
                             == "closed" for u in uids)
                print(f"closed {closed} of {count}; told: {slack.ephemeral[-3:]}")
                raise
            took = time.monotonic() - clicked
            await asyncio.sleep(2.0)  # the tags call and the message edit follow the close
            calls = es.calls() - before[0]
            reads, writes = es.calls("es") - before[1], es.calls("kibana") - before[2]
            audited = sum([len(await store.read_audit(u, limit=5)) > 0 for u in uids[:50]])
        finally:
            service.stop()
            await asyncio.wait_for(task, 30)
            keys = [k async for k in store._client.scan_iter(match=prefix + "*")]
            if keys:
                await store._client.delete(*keys)
            await store.close()
            await resources.aclose()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"group of {size:,} alerts formed in {ingest:.1f}s (setup, not a target)")
    print(f"{'measure':<44}{'target':>12}{'figure':>12}")
    print(f"{'✅ → every alert closed in the SIEM':<44}{'<= 10 s':>12}{took:>11.2f}s")
    print(f"{'SIEM calls for the close (ES + Kibana)':<44}{'<= 20':>12}{calls:>12}")
    print(f"{'  of which ES reads / Kibana writes':<44}{'-':>12}{f'{reads} / {writes}':>12}")
    print(f"{'audited (first 50 members checked)':<44}{'50':>12}{audited:>12}")
    print(f"{'max RSS (whole stack, one process)':<44}{'-':>12}{rss:>9.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    asyncio.run(run(parser.parse_args().alerts))


if __name__ == "__main__":
    main()
