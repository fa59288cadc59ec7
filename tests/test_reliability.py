"""Reliability of ``secbot run`` as real processes (issue #6, items 1–4).

1. kill -9 at random points while 500 alerts flow → every alert posted exactly once, every
   auto-close applied (and audited) exactly once;
2. three replicas on one Redis → one leader, events answered once, leader takeover;
3. outages (Elasticsearch, Slack 429/5xx, Socket Mode drop, Redis restarted empty) → nothing
   lost, nothing duplicated, /healthz degraded meanwhile and 200 again without a restart;
4. SIGTERM during a backlog → the in-flight alert finishes, exit 0 within 30 s.

Run only this module: ``python -m pytest tests/test_reliability.py -s`` (``-s`` shows the summary
lines). Knobs (environment): ``SECBOT_TEST_SEED`` (random kill points, default 6),
``SECBOT_TEST_KILLS`` (default 24), ``SECBOT_TEST_ALERTS`` (default 500),
``SECBOT_TEST_OUTAGE_SECONDS`` (Elasticsearch outage; default 8 so CI stays fast — the issue asks
for 60: ``SECBOT_TEST_OUTAGE_SECONDS=60 python -m pytest tests/test_reliability.py -k elastic``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from reliability_harness import (
    AUTO_CLOSE_REASON,
    IDENTITY_CHANNEL,
    SHARED_REDIS,
    TRIAGER,
    AlertBook,
    BotProcess,
    PrivateRedis,
    alert_post_counts,
    all_posted,
    audit_by_alert,
    bot_env,
    check_auto_close,
    delete_prefix,
    delivery_report,
    es_status,
    free_port,
    kill_inside_slack,
    posted_ts,
    reaped,
    start_bot,
    unique_prefix,
    wait_until,
)

from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator, reaction_added

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SECBOT_TEST_SEED", "6"))
KILLS = int(os.environ.get("SECBOT_TEST_KILLS", "24"))
ALERTS = int(os.environ.get("SECBOT_TEST_ALERTS", "500"))
OUTAGE_SECONDS = float(os.environ.get("SECBOT_TEST_OUTAGE_SECONDS", "8"))


def kibana_status_calls(es: ElasticEmulator) -> int:
    return sum(
        1
        for app, method, path in es.requests
        if app == "kibana" and method == "POST" and path.endswith("/signals/status")
    )


def top_posts(slack: SlackEmulator) -> int:
    return sum(alert_post_counts(slack).values())


# --- 1. kill -9 ------------------------------------------------------------------------------


KILL_POINTS = (
    "startup",
    "poll",
    "post-unanswered",
    "post-unanswered",
    "post-answered",
    "close-held",
    "close-done",
)


async def kill_at_random_point(
    bot: BotProcess, slack: SlackEmulator, es: ElasticEmulator, rng: random.Random
) -> str:
    """SIGKILL ``bot`` at a point chosen by ``rng``; returns where (for the summary).

    - ``startup``: somewhere in start-up (imports, auth.test, Socket Mode, lease wait);
    - ``poll``: around the first polls of a new leader (the dead leader's lease just expired);
    - ``post-unanswered``: inside Slack's handling of the k-th alert post: the message exists,
      the bot never learns its ts (only the message metadata can tell a retry about it);
    - ``post-answered``: right after the k-th alert post, before or while the bot records it;
    - ``close-held``: while the k-th Kibana close is held by the server (not applied yet);
    - ``close-done``: right after the k-th Kibana close, before the posted marker.
    """
    where = rng.choice(KILL_POINTS)
    if where in ("startup", "poll"):
        low, high = (0.1, 2.2) if where == "startup" else (2.2, 4.5)
        await asyncio.sleep(rng.uniform(low, high))
        await bot.kill()
        return where
    nth = rng.randint(1, 12) if where.startswith("post") else rng.randint(1, 5)
    if where == "close-held":
        nth = 1
        es.hang_next(1, 2.0, target="kibana")

    def progress() -> int:
        return top_posts(slack) if where.startswith("post") else kibana_status_calls(es)

    target = progress() + nth
    deadline = time.monotonic() + 20
    with contextlib.ExitStack() as stack:
        if where == "post-unanswered":
            stack.enter_context(kill_inside_slack(slack, "chat.postMessage", nth, bot))
        while bot.alive and time.monotonic() < deadline and progress() < target:
            await asyncio.sleep(0.002)
    if progress() < target:
        where += "(timeout)"
    await bot.kill()
    es.clear_faults()
    return where


async def test_kill_9_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    prefix = unique_prefix("kill9")
    book = AlertBook()
    batch = math.ceil(ALERTS / KILLS)
    kills: Counter[str] = Counter()
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        env = bot_env(slack, es, http_port=free_port(), prefix=prefix)
        try:
            for run in range(KILLS):
                # Progressive: each run finds a fresh batch waiting (plus whatever the previous
                # runs left). A few alerts are "late": indexed with a @timestamp up to a minute
                # old, which only the poller's overlap re-read finds.
                now = datetime.now(UTC)
                start = len(book.uuids)
                for uid in [f"k9-{i:04d}" for i in range(start, min(ALERTS, start + batch))]:
                    late = rng.random() < 0.1
                    at = now - timedelta(seconds=rng.uniform(5, 60)) if late else now
                    book.add(es, [uid], auto_close=lambda _: rng.random() < 0.4, at=at)
                bot = await start_bot(env, tmp_path, f"kill9-run{run:02d}")
                async with reaped(bot):
                    kills[await kill_at_random_point(bot, slack, es, rng)] += 1
            assert len(book.uuids) == ALERTS

            final = await start_bot(env, tmp_path, "kill9-final")
            async with reaped(final):

                async def done() -> bool:
                    closed = all(es_status(es, u)[0] == "closed" for u in book.auto_close)
                    return closed and await all_posted(slack, book.uuids)

                await wait_until(
                    done,
                    timeout=120,
                    what="every alert handled",
                    explain=lambda: (
                        delivery_report(slack, book.uuids).describe() + "\n" + final.log_tail()
                    ),
                )
                await asyncio.sleep(1.0)  # a few more polls: nothing may be posted again
                code, _ = await final.terminate()
            assert code == 0, final.log_tail()

            report = delivery_report(slack, book.uuids)
            audit = await audit_by_alert(SHARED_REDIS, prefix)
            problems = check_auto_close(es, book, audit)
            # Evidence that kills landed in the dangerous windows: history look-ups are
            # retries of an alert whose earlier attempt may have posted; ClaimBusy is a dead
            # run's claim being waited out.
            repairs = len(slack.calls_to("conversations.history"))
            busy = sum(
                log.read_text(errors="replace").count('"kind": "ClaimBusy"')
                for log in tmp_path.glob("kill9-*.log")
            )
            summary = (
                f"kill -9: alerts injected={report.injected} "
                f"(auto-close={len(book.auto_close)}), killed runs={sum(kills.values())} "
                f"{dict(sorted(kills.items()))}, lost={len(report.lost)}, "
                f"duplicated={len(report.duplicated)}, SIEM/audit problems={len(problems)}; "
                f"history look-ups={repairs}, polls waiting out a dead claim={busy}"
            )
            print("\n" + summary)
            assert sum(kills.values()) >= 20
            assert report.ok, f"{summary}\n{report.describe()}"
            assert not problems, f"{summary}\n" + "\n".join(problems[:40])
        finally:
            await delete_prefix(SHARED_REDIS, prefix)


# --- 2. replicas ---------------------------------------------------------------------------------

LEASE_TTL = 2.0
POLL_INTERVAL = 0.3


async def roles(bots: list[BotProcess]) -> list[str | None]:
    return list(await asyncio.gather(*(bot.role() for bot in bots)))


def bot_replies(slack: SlackEmulator, ts: str, needle: str) -> list[str]:
    """Texts of the bot's thread replies under ``ts`` that contain ``needle``."""
    return [
        r.text
        for r in slack.replies(IDENTITY_CHANNEL, ts)
        if r.user != TRIAGER and needle in r.text
    ]


async def test_replicas_elect_one_poller_answer_events_once_and_take_over(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED + 1)
    prefix = unique_prefix("replicas")
    book = AlertBook()
    async with (
        SlackEmulator.running(ack_timeout=1.0, random_seed=SEED) as slack,
        ElasticEmulator.running() as es,
    ):
        bots = [
            await start_bot(
                bot_env(slack, es, http_port=free_port(), prefix=prefix), tmp_path, f"replica{i}"
            )
            for i in range(3)
        ]
        try:
            async with reaped(*bots):
                await asyncio.gather(*(bot.wait_healthy() for bot in bots))

                async def one_leader() -> list[str | None] | None:
                    seen = await roles(bots)
                    return (
                        seen if sorted(map(str, seen)) == ["leader", "standby", "standby"] else None
                    )

                seen = await wait_until(one_leader, timeout=10, what="one leader, two standbys")
                leader = bots[seen.index("leader")]
                assert len(slack.socket.live_connections()) == 3

                # Alerts are posted once, by the leader.
                book.add(
                    es,
                    [f"rep-a{i:02d}" for i in range(30)],
                    auto_close=lambda _: rng.random() < 0.3,
                )
                await wait_until(
                    lambda: all_posted(slack, book.uuids), timeout=30, what="batch A posted"
                )
                ts_of = posted_ts(slack)

                # Reactions and @SecBot commands: Socket Mode spreads them over the replicas;
                # each is answered once. One reaction is also replayed with the same event_id.
                targets = book.stay_open[:12]
                acked, asked, replayed = targets[:5], targets[5:11], targets[11]
                first_delivery = len(slack.deliveries)
                for uid in acked:
                    slack.user_reacts(TRIAGER, "eyes", IDENTITY_CHANNEL, ts_of[uid])
                for uid in asked:
                    slack.user_mentions_bot(
                        TRIAGER, "alert", IDENTITY_CHANNEL, thread_ts=ts_of[uid]
                    )
                event = reaction_added(
                    TRIAGER,
                    "x",
                    IDENTITY_CHANNEL,
                    ts_of[replayed],
                    item_user="U0SECBOT",
                    event_ts=str(time.time()),
                )
                slack.inject_event(event, event_id="Ev0RELREPLAY")
                slack.inject_event(event, event_id="Ev0RELREPLAY")

                async def events_done() -> bool:
                    statuses = [es_status(es, u)[0] for u in acked]
                    answered = all(bot_replies(slack, ts_of[u], f"{u}@example.com") for u in asked)
                    return (
                        statuses == ["acknowledged"] * len(acked)
                        and answered
                        and es_status(es, replayed) == ("closed", "false_positive")
                    )

                await wait_until(events_done, timeout=30, what="reactions and commands handled")
                await asyncio.sleep(1.5)  # redeliveries (ack timeout 1 s) would land by now
                deliveries = slack.deliveries[first_delivery:]
                connections = {c for d in deliveries for c in d.connections}
                assert len(connections) >= 2, f"events all went to connections {connections}"
                audit = await audit_by_alert(SHARED_REDIS, prefix)
                for uid in acked:
                    changes = [e for e in audit.get(uid, []) if e.action == "acknowledged"]
                    assert len(changes) == 1, f"{uid}: acknowledged {len(changes)} times"
                for uid in asked:
                    replies = bot_replies(slack, ts_of[uid], f"{uid}@example.com")
                    assert len(replies) == 1, f"{uid}: {len(replies)} answers to one command"
                closes = [e for e in audit.get(replayed, []) if e.action == "closed"]
                assert len(closes) == 1, f"replayed reaction applied {len(closes)} times"
                assert len([e for e in slack.ephemeral if e.get("user") == TRIAGER]) == 0

                # Kill the leader with alerts in flight: one survivor takes over.
                book.add(
                    es,
                    [f"rep-b{i:02d}" for i in range(20)],
                    auto_close=lambda _: rng.random() < 0.3,
                )
                await asyncio.sleep(rng.uniform(0.05, 0.3))
                killed_at = time.monotonic()
                await leader.kill()
                survivors = [bot for bot in bots if bot is not leader]
                book.add(
                    es,
                    [f"rep-c{i:02d}" for i in range(20)],
                    auto_close=lambda _: rng.random() < 0.3,
                )

                async def new_leader() -> BotProcess | None:
                    seen = await roles(survivors)
                    return survivors[seen.index("leader")] if "leader" in seen else None

                successor = await wait_until(
                    new_leader, timeout=15, what="a new leader", interval=0.02
                )
                takeover = time.monotonic() - killed_at
                print(
                    f"\nreplicas: takeover after SIGKILL of the leader in {takeover:.2f}s "
                    f"(lease TTL {LEASE_TTL}s, poll interval {POLL_INTERVAL}s)"
                )
                await wait_until(
                    lambda: all_posted(slack, book.uuids),
                    timeout=30,
                    what="batches A, B, C posted",
                    explain=lambda: delivery_report(slack, book.uuids).describe(),
                )
                await asyncio.sleep(1.0)
                assert sorted(map(str, await roles(survivors))) == ["leader", "standby"]
                report = delivery_report(slack, book.uuids)
                assert report.ok, report.describe()
                problems = check_auto_close(es, book, await audit_by_alert(SHARED_REDIS, prefix))
                # the reactions above changed some "stay open" alerts on purpose
                changed = tuple(f"{u}:" for u in [*acked, replayed])
                problems = [p for p in problems if not p.startswith(changed)]
                assert not problems, "\n".join(problems)
                assert takeover <= LEASE_TTL + POLL_INTERVAL + 0.4, (
                    f"takeover took {takeover:.2f}s\n{successor.log_tail()}"
                )

                # The survivor answers events too, and both drain cleanly.
                uid = book.stay_open[15]
                slack.user_mentions_bot(TRIAGER, "alert", IDENTITY_CHANNEL, thread_ts=ts_of[uid])

                async def answered() -> bool:
                    return bool(bot_replies(slack, ts_of[uid], f"{uid}@example.com"))

                await wait_until(answered, timeout=10, what="a command answered after the kill")
                for bot in survivors:
                    code, took = await bot.terminate()
                    assert code == 0 and took < 30, f"{bot.name}: exit {code} after {took:.1f}s"
        finally:
            await delete_prefix(SHARED_REDIS, prefix)


# --- 3. outages ----------------------------------------------------------------------------------


@dataclass
class Stack:
    slack: SlackEmulator
    es: ElasticEmulator
    bot: BotProcess
    prefix: str
    redis_url: str
    book: AlertBook = field(default_factory=AlertBook)

    def add(self, tag: str, count: int, rng: random.Random) -> list[str]:
        start = len([u for u in self.book.uuids if u.startswith(tag)])
        uids = [f"{tag}{i:03d}" for i in range(start, start + count)]
        return self.book.add(self.es, uids, auto_close=lambda _: rng.random() < 0.4)

    async def settled(self, uids: list[str] | None = None, timeout: float = 30) -> None:
        """Every alert (or ``uids``) posted and every auto-close among them applied."""
        wanted = self.book.uuids if uids is None else uids

        async def done() -> bool:
            closing = [u for u in wanted if u in self.book.auto_close]
            closed = all(es_status(self.es, u)[0] == "closed" for u in closing)
            return closed and await all_posted(self.slack, wanted)

        await wait_until(
            done,
            timeout=timeout,
            what=f"{len(wanted)} alerts handled",
            explain=lambda: (
                delivery_report(self.slack, wanted).describe() + "\n" + self.bot.log_tail()
            ),
        )

    async def check_exactly_once(self, *, exempt: tuple[str, ...] = ()) -> None:
        await asyncio.sleep(1.0)  # a few more polls: nothing may be posted again
        report = delivery_report(self.slack, self.book.uuids)
        assert report.ok, report.describe()
        audit = await audit_by_alert(self.redis_url, self.prefix)
        problems = [
            p
            for p in check_auto_close(self.es, self.book, audit)
            if not p.startswith(tuple(f"{u}:" for u in exempt))
        ]
        assert not problems, "\n".join(problems)


@contextlib.asynccontextmanager
async def single_bot(
    tmp_path: Path, name: str, *, redis_url: str = SHARED_REDIS, **extra: str
) -> AsyncIterator[Stack]:
    prefix = unique_prefix(name)
    async with (
        SlackEmulator.running(ack_timeout=1.0) as slack,
        ElasticEmulator.running() as es,
    ):
        env = bot_env(slack, es, http_port=free_port(), prefix=prefix, redis_url=redis_url, **extra)
        bot = await start_bot(env, tmp_path, name)
        try:
            async with reaped(bot):
                await bot.wait_healthy()
                yield Stack(slack, es, bot, prefix, redis_url)
                code, took = await bot.terminate()
                assert code == 0, f"exit {code} after {took:.1f}s\n{bot.log_tail()}"
        finally:
            await delete_prefix(redis_url, prefix)


class HealthLog:
    """Samples /healthz in the background: what the bot reported while something was broken."""

    def __init__(self, bot: BotProcess, interval: float = 0.05) -> None:
        self.bot = bot
        self.interval = interval
        self.samples: list[tuple[float, int | None, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            answer = await self.bot.health()
            code, body = answer if answer else (None, {})
            self.samples.append((time.monotonic(), code, body))
            await asyncio.sleep(self.interval)

    def __enter__(self) -> HealthLog:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def degraded(self, check: str) -> list[dict[str, Any]]:
        """Bodies of 503 ``degraded`` answers whose ``check`` was failing."""
        return [
            body
            for _, code, body in self.samples
            if code == 503
            and body.get("status") == "degraded"
            and body.get("checks", {}).get(check, {}).get("ok") is False
        ]

    def describe(self) -> str:
        codes = Counter(code for _, code, _ in self.samples)
        return f"{len(self.samples)} /healthz samples: {dict(codes)}"


async def test_elasticsearch_outage_pauses_polling_and_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    async with single_bot(tmp_path, "es-outage") as stack:
        stack.add("es-before-", 20, rng)
        await stack.settled()
        with HealthLog(stack.bot) as health:
            stack.es.fail_for(OUTAGE_SECONDS, status=503, target="es")
            ends = time.monotonic() + OUTAGE_SECONDS
            during = stack.add("es-during-", 10, rng)
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            during += stack.add("es-during-", 10, rng)
            await asyncio.sleep(max(0.0, ends - time.monotonic() - 0.3))
            posted_during = [u for u in during if alert_post_counts(stack.slack)[u]]
            assert not posted_during, f"posted while Elasticsearch was down: {posted_during}"
            await stack.settled(timeout=60)
            await stack.bot.wait_healthy(timeout=30)
        degraded = health.degraded("siem")
        assert degraded, f"/healthz never said degraded during the outage; {health.describe()}"
        assert degraded[-1]["checks"]["siem"]["error"], degraded[-1]
        stack.add("es-after-", 10, rng)
        await stack.settled()
        await stack.check_exactly_once()
        print(
            f"\nelasticsearch outage {OUTAGE_SECONDS:.0f}s: {len(stack.book.uuids)} alerts, "
            f"lost=0, duplicated=0; {health.describe()}"
        )


async def test_slack_429_and_5xx_storm_delays_but_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED + 3)
    async with single_bot(tmp_path, "slack-storm") as stack:
        stack.add("st-before-", 10, rng)
        await stack.settled()
        with HealthLog(stack.bot) as health:
            # 429s beyond the client's 5 retries, then 5xx beyond its 3, on posting; and 5xx on
            # the bot's ✅ after an auto-close post: the post exists, a later step failed, so
            # the retry must adopt the existing message instead of posting again.
            stack.slack.rate_limit("chat.postMessage", times=7, retry_after=1)
            stack.slack.fail("chat.postMessage", times=5, status=503)
            stack.slack.fail("reactions.add", times=5, status=500)
            stack.add("st-storm-", 15, rng)
            await stack.settled(timeout=90)
            await stack.bot.wait_healthy(timeout=30)
        faults = Counter((c.method, c.status) for c in stack.slack.calls if c.status != 200)
        assert faults[("chat.postMessage", 429)] == 7 and faults[("reactions.add", 500)] == 5, (
            faults
        )
        assert health.degraded("siem"), f"no degraded /healthz in the storm; {health.describe()}"
        await stack.check_exactly_once()
        print(
            f"\nslack storm: {dict(faults)}; {len(stack.book.uuids)} alerts, lost=0, "
            f"duplicated=0; {health.describe()}"
        )


async def test_socket_mode_drop_reconnects_and_loses_no_event(tmp_path: Path) -> None:
    rng = random.Random(SEED + 4)
    async with single_bot(tmp_path, "socket-drop") as stack:
        stack.add("sd-", 10, rng)
        await stack.settled()
        ts_of = posted_ts(stack.slack)
        target = stack.book.stay_open[0]
        with HealthLog(stack.bot) as health:
            dropped = await stack.slack.drop_connections()
            assert dropped == 1
            stack.slack.user_reacts(TRIAGER, "eyes", IDENTITY_CHANNEL, ts_of[target])
            stack.add("sd-", 10, rng)  # polling does not need the socket

            async def acked() -> bool:
                return es_status(stack.es, target)[0] == "acknowledged"

            await wait_until(
                acked,
                timeout=60,
                what="the reaction sent while disconnected",
                explain=stack.bot.log_tail,
            )
            await stack.settled()
            await stack.bot.wait_healthy(timeout=30)
        audit = await audit_by_alert(stack.redis_url, stack.prefix)
        assert len([e for e in audit[target] if e.action == "acknowledged"]) == 1
        await stack.check_exactly_once(exempt=(target,))
        print(
            f"\nsocket mode drop: reconnected; degraded samples="
            f"{len(health.degraded('socket_mode'))}; {health.describe()}"
        )


REDIS_DOWN_SECONDS = 4.0


async def test_redis_restarted_empty_mid_run_recovers_by_itself(tmp_path: Path) -> None:
    """Redis dies right after an alert's Slack post (before SecBot records it), stays down,
    and comes back EMPTY (no persistence).

    What is correct while Redis is down: nobody holds the poller lease, so polling pauses and
    new alerts wait in the SIEM (none is lost, none posted twice); /healthz is 503 with
    ``redis`` failing; a triager's reaction cannot be mapped to its alert, so the triager is
    told so (ephemeral) instead of being silently ignored. After the empty restart the bot
    recovers without a restart: the poller continues from its in-memory checkpoint and the
    process remembers what it posted, so nothing is posted again; reactions work again, also on
    messages posted before the restart (their alert is found from the message metadata).
    What an empty restart does lose: the audit entries written before it (run Redis with
    persistence for the audit trail).
    """
    if not PrivateRedis.available():
        pytest.skip("redis-server is not installed")
    rng = random.Random(SEED + 5)
    redis = PrivateRedis(tmp_path)
    await redis.start()
    try:
        async with single_bot(tmp_path, "redis-restart", redis_url=redis.url) as stack:
            before = stack.add("rr-before-", 20, rng)
            await stack.settled()
            with HealthLog(stack.bot) as health:
                # Kill Redis right after the next alert's chat.postMessage: the worst moment.
                posts = top_posts(stack.slack)
                inflight = stack.add("rr-inflight-", 5, rng)
                await wait_until(
                    lambda: _true(top_posts(stack.slack) > posts),
                    timeout=10,
                    what="a post to kill Redis behind",
                    interval=0.001,
                )
                await redis.kill()
                down_at = time.monotonic()
                ts_of = posted_ts(stack.slack)
                old_open = [u for u in before if u not in stack.book.auto_close]
                stack.slack.user_reacts(TRIAGER, "eyes", IDENTITY_CHANNEL, ts_of[old_open[0]])
                during = stack.add("rr-during-", 10, rng)

                async def told() -> bool:
                    return any(e.get("user") == TRIAGER for e in stack.slack.ephemeral)

                await wait_until(
                    told,
                    timeout=10,
                    what="an ephemeral reply to the reaction made while Redis was down",
                    explain=stack.bot.log_tail,
                )
                await asyncio.sleep(max(0.0, down_at + REDIS_DOWN_SECONDS - time.monotonic()))
                counts = alert_post_counts(stack.slack)
                assert not [u for u in during if counts[u]], "posted while Redis was down"
                assert es_status(stack.es, old_open[0])[0] == "open"
                await redis.start()  # same port, empty
                after = stack.add("rr-after-", 10, rng)
                await stack.settled(timeout=60)
                await stack.bot.wait_healthy(timeout=30)
            assert health.degraded("redis"), f"no degraded /healthz; {health.describe()}"
            ts_of = posted_ts(stack.slack)
            # Reactions work again: on a message posted after the restart, and on one posted
            # before it (the Redis mapping is gone; the message metadata is not).
            new_open = [u for u in during + after if u not in stack.book.auto_close]
            wanted = {new_open[0]: "eyes", old_open[1]: "eyes", old_open[0]: "x"}
            targets = list(wanted)
            for uid, emoji in wanted.items():
                stack.slack.user_reacts(TRIAGER, emoji, IDENTITY_CHANNEL, ts_of[uid])

            async def acked() -> bool:
                return [es_status(stack.es, u)[0] for u in targets] == [
                    "acknowledged",
                    "acknowledged",
                    "closed",
                ]

            await wait_until(
                acked, timeout=15, what="reactions after the restart", explain=stack.bot.log_tail
            )
            await asyncio.sleep(1.0)
            report = delivery_report(stack.slack, stack.book.uuids)
            assert report.ok, report.describe()
            # The SIEM side for every alert; the audit only for what happened after the restart.
            fresh = set(during + after)
            audit = await audit_by_alert(stack.redis_url, stack.prefix)
            problems = [
                p
                for p in check_auto_close(stack.es, stack.book, audit)
                if not p.startswith(tuple(f"{u}:" for u in targets))
                and ("audit" not in p or p.split(":")[0] in fresh)
            ]
            assert not problems, "\n".join(problems)
            print(
                f"\nredis restarted empty: down {REDIS_DOWN_SECONDS:.0f}s, "
                f"{len(stack.book.uuids)} alerts (in flight at the kill: {len(inflight)}), "
                f"lost=0, duplicated=0; {health.describe()}"
            )
    finally:
        await redis.kill()


async def _true(value: bool) -> bool:
    return value


# --- 4. graceful shutdown ------------------------------------------------------------------------


async def test_sigterm_during_a_backlog_finishes_the_alert_in_flight(tmp_path: Path) -> None:
    """SIGTERM while a backlog drains: the alert in flight (its Kibana close held for 3 s)
    finishes — closed, audited once, marked posted — a reaction sent during the drain is acked
    and applied, the process exits 0 within 30 s, and a restart posts the rest exactly once."""
    prefix = unique_prefix("sigterm")
    book = AlertBook()
    hang = 3.0
    async with (
        SlackEmulator.running(ack_timeout=1.0) as slack,
        ElasticEmulator.running() as es,
    ):
        env = bot_env(slack, es, http_port=free_port(), prefix=prefix)
        try:
            first = await start_bot(env, tmp_path, "sigterm-1")
            async with reaped(first):
                await first.wait_healthy()
                book.add(es, ["term-open"], auto_close=lambda _: False)
                await wait_until(lambda: all_posted(slack, book.uuids), timeout=10, what="warm-up")
                term_open_ts = posted_ts(slack)["term-open"]
                # A backlog in a known order; the first auto-close alert (the 5th) will be in
                # flight when SIGTERM lands: its Kibana close hangs.
                es.hang_next(1, hang, target="kibana")
                base = datetime.now(UTC)
                closing = {f"term-{i:03d}" for i in [4, *range(31, 60)]}
                for i in range(60):
                    book.add(
                        es,
                        [f"term-{i:03d}"],
                        auto_close=closing.__contains__,
                        at=base + timedelta(milliseconds=i),
                    )
                inflight = "term-004"
                await wait_until(
                    lambda: _true(kibana_status_calls(es) >= 1),
                    timeout=15,
                    what="the in-flight alert's Kibana close",
                    interval=0.01,
                    explain=first.log_tail,
                )
                sent = time.monotonic()
                first.proc.send_signal(signal.SIGTERM)
                envelope = slack.user_reacts(TRIAGER, "eyes", IDENTITY_CHANNEL, term_open_ts)
                code, took = await first.terminate(timeout=30)
                took = time.monotonic() - sent
            assert code == 0, first.log_tail()
            assert took < 30
            assert took >= hang - 1.0, f"exited after {took:.1f}s: did not wait for {inflight}"
            assert es_status(es, inflight) == ("closed", AUTO_CLOSE_REASON), first.log_tail()
            store = RedisStore.from_url(SHARED_REDIS, prefix)
            try:
                assert await store.is_posted(inflight), "the in-flight alert was not finished"
            finally:
                await store.close()
            assert slack.delivery(envelope).acked.is_set(), "reaction during the drain not acked"
            assert es_status(es, "term-open")[0] == "acknowledged"
            counts = alert_post_counts(slack)
            waiting = [u for u in book.uuids if not counts[u]]
            assert waiting, "the backlog was already drained: nothing was in flight"
            assert not [u for u, n in counts.items() if n > 1]

            second = await start_bot(env, tmp_path, "sigterm-2")
            async with reaped(second):
                await second.wait_healthy()

                async def drained() -> bool:
                    closing = [u for u in book.auto_close]
                    closed = all(es_status(es, u)[0] == "closed" for u in closing)
                    return closed and await all_posted(slack, book.uuids)

                await wait_until(
                    drained, timeout=30, what="the rest of the backlog", explain=second.log_tail
                )
                await asyncio.sleep(1.0)
                code2, took2 = await second.terminate()
            assert code2 == 0 and took2 < 30
            report = delivery_report(slack, book.uuids)
            assert report.ok, report.describe()
            audit = await audit_by_alert(SHARED_REDIS, prefix)
            problems = [
                p for p in check_auto_close(es, book, audit) if not p.startswith("term-open:")
            ]
            assert not problems, "\n".join(problems)
            print(
                f"\nsigterm: exit 0 after {took:.1f}s with {inflight} in flight "
                f"(Kibana held {hang:.0f}s); {len(waiting)} alerts left for the restart; "
                f"{len(book.uuids)} alerts, lost=0, duplicated=0"
            )
        finally:
            await delete_prefix(SHARED_REDIS, prefix)
