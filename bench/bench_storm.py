"""Alert-storm benchmark, run by hand: ``python bench/bench_storm.py [--alerts 10000]``.

``secbot run`` as its own process (so its RSS is its own) against the Slack and Elastic
stand-ins with Slack pacing on (``SECBOT_SLACK_PACE=1``: one message a second per channel,
bursts of 4) and storm groups at the default threshold (20 a minute). All alerts are of one
rule (``okta_login_new_country``), indexed at once. Measured: the time until every alert is
shown in Slack (its own message, or a line of its group's thread), Slack Web API calls per
alert, and the bot's peak RSS (``VmHWM``), each beside the target of issue 11.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RULE_FILE = "okta_login_new_country.yaml"  # what AlertBook's alerts match
sys.path.insert(0, str(REPO / "tests"))

from reliability_harness import (  # noqa: E402  (the tests' harness, not a package)
    IDENTITY_CHANNEL,
    SHARED_REDIS,
    AlertBook,
    bot_env,
    delete_prefix,
    free_port,
    reaped,
    start_bot,
    unique_prefix,
)
from test_groups import shown_counts  # noqa: E402

from secbot_emulators.elastic import ElasticEmulator  # noqa: E402
from secbot_emulators.slack import SlackEmulator  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rules_without_ask(target: Path) -> Path:
    """The shipped rules, the storm's rule without its ``ask`` step (``--no-ask``): asking
    each person costs Slack calls per alert (issue 14), apart from what groups cost."""
    target.mkdir()
    for source in (REPO / "rules").glob("*.yaml"):
        text = source.read_text()
        if source.name == RULE_FILE:
            rule = yaml.safe_load(text)
            rule.pop("ask", None)
            text = yaml.safe_dump(rule, sort_keys=False)
        (target / source.name).write_text(text)
    return target


async def run(alerts: int, timeout: float, no_ask: bool) -> None:
    prefix = unique_prefix("bench-storm")
    book = AlertBook()
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        env = bot_env(slack, es, http_port=free_port(), prefix=prefix, SECBOT_SLACK_PACE="1",
                      SECBOT_GROUP_THRESHOLD="20", SECBOT_LOG_LEVEL="WARNING")
        try:
            with tempfile.TemporaryDirectory() as work:
                if no_ask:
                    env["SECBOT_RULES_DIR"] = str(rules_without_ask(Path(work) / "rules"))
                bot = await start_bot(env, Path(work), "bench-storm")
                async with reaped(bot):
                    await bot.wait_healthy(60)
                    calls_before = len(slack.calls)
                    book.add(es, [f"bs-{i:05d}" for i in range(alerts)], auto_close=lambda _: False)
                    started = time.monotonic()
                    shown, rss = 0, 0.0
                    while time.monotonic() - started < timeout:
                        await asyncio.sleep(2.0)
                        rss = max(rss, peak_rss_mb(bot.pid))
                        counts = shown_counts(slack, IDENTITY_CHANNEL)
                        shown = sum(1 for u in book.uuids if counts[u])
                        if shown == alerts:
                            break
                    elapsed = time.monotonic() - started
                    rss = max(rss, peak_rss_mb(bot.pid))
                    calls = len(slack.calls) - calls_before
                    methods = Counter(c.method for c in slack.calls[calls_before:])
                    await bot.terminate()
        finally:
            await delete_prefix(SHARED_REDIS, prefix)
    counts = shown_counts(slack, IDENTITY_CHANNEL)
    twice = sum(1 for u in book.uuids if counts[u] > 1)
    rows = [
        ("alerts shown", f"{shown:,} of {alerts:,} ({twice} twice)", "all, once each"),
        ("time until all shown", f"{elapsed:,.0f} s", "<= 600 s"),
        ("Slack API calls per alert", f"{calls / alerts:.3f} ({calls:,} calls)", "<= 0.2"),
        ("peak RSS of the bot", f"{rss:,.0f} MB", "<= 200 MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'figure':<34}  target")
    for name, figure, target in rows:
        print(f"{name:<{width}}  {figure:<34}  {target}")
    print("Slack calls by method: " + ", ".join(f"{m} {n:,}" for m, n in methods.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--no-ask", action="store_true",
                        help="drop the rule's ask step (measure what groups cost alone)")
    args = parser.parse_args()
    asyncio.run(run(args.alerts, args.timeout, args.no_ask))


if __name__ == "__main__":
    main()
