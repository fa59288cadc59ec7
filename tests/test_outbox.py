"""The durable outbox against real Redis and the destination stand-ins over HTTP: retries with
backoff (and ``Retry-After``), a destination that is down delaying only itself, idempotent
enqueue, updates waiting for their open, permanent failures told to the sink, and a
``kill -9`` of a worker process in the middle of its jobs losing nothing and paging once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from secbot.destinations.base import EscalationRequest, Link, StatusUpdate
from secbot.destinations.jira import label_for
from secbot.destinations.jobs import JobOutcome
from secbot.destinations.outbox import Outbox, OutboxWorker
from secbot.destinations.redis_outbox import RedisOutboxStore
from secbot.resilience.retry import RetryPolicy
from secbot.runtime.destinations import build_destinations, destination_client
from secbot.runtime.settings import load_settings
from secbot_emulators.jira import JiraStandIn
from secbot_emulators.pagerduty_events import DEFAULT_ROUTING_KEY, PagerDutyEvents

REDIS = "redis://127.0.0.1:6379/0"
REPO = Path(__file__).resolve().parents[1]
FAST = RetryPolicy(attempts=1000, base=0.05, cap=0.2, budget=3600, max_retry_after=1e9)


def escalation(uid: str, severity: str = "critical") -> EscalationRequest:
    return EscalationRequest(alert_uuid=uid, rule_id="vip", title="VIP sign-in",
                             summary=f"VIP sign-in {uid}", severity=severity, kind="page",
                             links=(Link("Slack", "https://slack.example/p1"),))


async def eventually(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


@dataclass
class Rig:
    pd: PagerDutyEvents
    jira: JiraStandIn
    outbox: Outbox
    worker: OutboxWorker
    redis: aioredis.Redis
    prefix: str
    env: dict[str, str]
    outcomes: list[JobOutcome] = field(default_factory=list)


async def _cleanup(client: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)


@contextlib.asynccontextmanager
async def rig(*, start: bool = True, **worker_options: Any) -> AsyncIterator[Rig]:
    prefix = f"secbot-test-outbox:{uuid.uuid4().hex}:"
    async with PagerDutyEvents().serving() as pd, JiraStandIn().serving() as jira:
        env = {"SECBOT_REDIS_URL": REDIS, "SECBOT_REDIS_PREFIX": prefix,
               "SECBOT_PAGERDUTY_EVENTS_URL": pd.url,
               "SECBOT_PAGERDUTY_ROUTING_KEY": DEFAULT_ROUTING_KEY,
               "SECBOT_JIRA_URL": jira.url, "SECBOT_JIRA_EMAIL": "secbot@example.com",
               "SECBOT_JIRA_API_TOKEN": "jira-token-123", "SECBOT_JIRA_PROJECT": "SEC"}
        options: dict[str, Any] = {k.removeprefix("SECBOT_").lower(): v for k, v in env.items()}
        settings = load_settings(**options)
        client = aioredis.Redis.from_url(REDIS, decode_responses=True)
        async with destination_client(settings) as http:
            destinations = build_destinations(settings, http)
            outbox = Outbox(RedisOutboxStore(client, prefix), frozenset(destinations))
            outcomes: list[JobOutcome] = []

            async def sink(outcome: JobOutcome) -> None:
                outcomes.append(outcome)

            knobs = {"lease": 5.0, "poll": 0.05, "policy": FAST, "wait_for_open": 0.1,
                       **worker_options}
            worker = OutboxWorker(outbox, destinations, sink, **knobs)
            task = asyncio.create_task(worker.run()) if start else None
            try:
                yield Rig(pd, jira, outbox, worker, client, prefix, env, outcomes)
            finally:
                worker.stop()
                if task is not None:
                    await asyncio.wait_for(task, 10)
                await _cleanup(client, prefix)
                await client.aclose()


async def test_enqueue_is_idempotent_and_pages_once() -> None:
    async with rig() as r:
        assert await r.outbox.open("pagerduty", escalation("a1"))
        assert not await r.outbox.open("pagerduty", escalation("a1"))  # a redelivery
        await eventually(lambda: r.pd.state("a1") == "triggered", what="the page")
        await eventually(lambda: r.outcomes, what="the outcome")
        assert not await r.outbox.open("pagerduty", escalation("a1"))  # after it was sent
        await asyncio.sleep(0.3)
        assert r.pd.pages == 1 and len(r.pd.events) == 1
        assert r.outcomes[0].ok and r.outcomes[0].receipt is not None
        assert r.outcomes[0].receipt.reference == "a1"
        assert set(r.outcomes[0].receipts) == {"pagerduty"}


async def test_retries_with_backoff_until_it_works() -> None:
    async with rig() as r:
        r.pd.fail_next(503, count=3)
        started = time.monotonic()
        await r.outbox.open("pagerduty", escalation("b1"))
        await eventually(lambda: r.pd.state("b1") == "triggered", what="the page")
        elapsed = time.monotonic() - started
    posts = [p for p in r.pd.requests if p == ("POST", "/v2/enqueue")]
    assert len(posts) == 4 and r.pd.pages == 1
    # three waits of the equal-jitter backoff: >= 0.025 + 0.05 + 0.1
    assert elapsed >= 0.17


async def test_retry_after_is_waited_for() -> None:
    async with rig() as r:
        r.pd.fail_next(429, retry_after=1)
        started = time.monotonic()
        await r.outbox.open("pagerduty", escalation("c1"))
        await eventually(lambda: r.pd.state("c1") == "triggered", what="the page")
        assert time.monotonic() - started >= 1.0


async def test_a_destination_that_is_down_delays_only_itself() -> None:
    async with rig() as r:
        r.pd.down(503)
        for n in range(5):
            await r.outbox.open("pagerduty", escalation(f"d{n}"))
            await r.outbox.open("jira", escalation(f"d{n}"))
        await eventually(lambda: len(r.jira.issues) == 5, timeout=10, what="5 Jira issues")

        async def jira_done() -> bool:
            return (await r.outbox.store.state("jira")).sent == 5

        await eventually(jira_done, what="the 5 Jira jobs done (issue and comment)")
        assert r.pd.pages == 0
        states = {s.name: s for s in await r.outbox.states()}
        assert states["pagerduty"].failing and states["pagerduty"].queued == 5
        assert "HTTP 503" in (states["pagerduty"].last_error or "")
        assert states["pagerduty"].oldest_age > 0
        assert not states["jira"].failing and states["jira"].queued == 0
        r.pd.up()
        await eventually(lambda: r.pd.pages == 5, what="5 pages once PagerDuty is back")

        async def settled() -> bool:
            after = await r.outbox.store.state("pagerduty")
            return not after.failing and after.queued == 0 and after.sent == 5

        await eventually(settled, what="PagerDuty's state settled")


async def test_an_update_waits_for_its_open() -> None:
    async with rig() as r:
        r.pd.down(503)
        await r.outbox.open("pagerduty", escalation("e1"))
        assert await r.outbox.update(StatusUpdate("e1", "closed", None, "U1")) == ["pagerduty"]
        await asyncio.sleep(0.3)
        r.pd.up()
        await eventually(lambda: r.pd.state("e1") == "resolved", what="resolved")
    actions = [e["event_action"] for e in r.pd.events]
    assert actions == ["trigger", "resolve"]


async def test_updates_go_in_the_order_they_happened() -> None:
    async with rig() as r:
        await r.outbox.open("pagerduty", escalation("o1"))
        await eventually(lambda: r.pd.state("o1") == "triggered", what="the page")
        r.pd.fail_next(503)  # the acknowledge fails once; the close must not overtake it
        await r.outbox.update(StatusUpdate("o1", "acknowledged", None, "U1"))
        await r.outbox.update(StatusUpdate("o1", "closed", None, "U1"))
        await eventually(lambda: r.pd.state("o1") == "resolved", what="resolved")
    assert [e["event_action"] for e in r.pd.events] == ["trigger", "acknowledge", "resolve"]


async def test_update_of_an_alert_never_escalated_sends_nothing() -> None:
    async with rig() as r:
        assert await r.outbox.update(StatusUpdate("f1", "closed", None, "U1")) == []


async def test_a_permanent_failure_is_reported_and_its_updates_dropped() -> None:
    async with rig() as r:
        r.pd.fail_next(400)
        await r.outbox.open("pagerduty", escalation("g1"))
        await r.outbox.update(StatusUpdate("g1", "closed", None, "U1"))
        await eventually(lambda: r.outcomes, what="the failure")

        async def drained() -> bool:
            return (await r.outbox.store.state("pagerduty")).queued == 0

        await eventually(drained, what="the update dropped")
        state = await r.outbox.store.state("pagerduty")
    failure = r.outcomes[0]
    assert not failure.ok and "HTTP 400" in (failure.error or "")
    assert len(r.outcomes) == 1 and r.pd.pages == 0 and state.queued == 0
    assert state.failed == 1 and not state.failing


async def test_retryable_failures_give_up_after_the_time_limit() -> None:
    async with rig(give_up_after=0.5) as r:
        r.pd.down(503)
        await r.outbox.open("pagerduty", escalation("h1"))
        await eventually(lambda: r.outcomes, what="the give-up", timeout=10)
    assert "gave up" in (r.outcomes[0].error or "")


async def test_jira_ticket_then_transition_on_close() -> None:
    async with rig() as r:
        await r.outbox.open("jira", escalation("j1"))
        await r.outbox.update(StatusUpdate("j1", "closed", "benign_positive", "U1"))
        await eventually(lambda: [i for i in r.jira.by_label(label_for("j1"))
                                  if i.status == "Done"], what="the issue Done")
        assert len(r.jira.issues) == 1
        await eventually(lambda: len(r.outcomes) == 2)
        assert [o.job.action for o in r.outcomes] == ["open", "update"]
        assert r.outcomes[0].receipt is not None and r.outcomes[0].receipt.text == "Jira SEC-1"


# --- kill -9 -----------------------------------------------------------------------------------


async def _start(env: dict[str, str], outcomes: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "tests" / "outbox_process.py"),
        env={**os.environ, **env, "OUTBOX_OUTCOMES": str(outcomes), "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready", line
    return proc


async def test_kill_minus_9_mid_jobs_loses_nothing_and_pages_once(tmp_path: Path) -> None:
    alerts = [f"k{n}" for n in range(12)]
    outcomes = tmp_path / "outcomes.ndjson"
    async with rig(start=False) as r:
        env = {**r.env, "SECBOT_OUTBOX_LEASE": "2"}
        for uid in alerts:
            await r.outbox.open("pagerduty", escalation(uid))
            await r.outbox.open("jira", escalation(uid))
        first = await _start(env, outcomes)
        seen: list[str] = []

        def kill_on_fourth(path: str) -> None:
            seen.append(path)
            if len(seen) == 4 and first.returncode is None:
                os.kill(first.pid, signal.SIGKILL)  # PagerDuty took it; the worker never hears

        r.pd.after = kill_on_fourth
        r.pd.delay = 0.05
        await asyncio.wait_for(first.wait(), 20)
        assert first.returncode == -signal.SIGKILL
        r.pd.after = None
        assert r.pd.pages < len(alerts)  # it really died mid-way
        second = await _start(env, outcomes)
        try:
            await eventually(lambda: r.pd.pages == len(alerts)
                             and len(r.jira.issues) == len(alerts), timeout=30,
                             what="every alert paged and ticketed")

            async def drained() -> bool:
                return all(not s.queued for s in await r.outbox.states())

            await eventually(drained, timeout=15, what="both queues empty")
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), 20)
        assert sorted(r.pd.incidents) == sorted(alerts)
        assert r.pd.pages == len(alerts)  # once each, though some triggers were sent twice:
        assert len(r.pd.events) > len(alerts)  # the killed call was made again after its lease
        assert all(len(r.jira.by_label(label_for(u))) == 1 for u in alerts)
        assert all(len(i.comments) == 1 for i in r.jira.issues.values())
        states = {s.name: s for s in await r.outbox.states()}
        assert states["pagerduty"].queued == 0 and states["jira"].queued == 0
    done = {json.loads(line)["key"] for line in outcomes.read_text().splitlines()}
    assert done == {f"{d}|{u}|open" for d in ("pagerduty", "jira") for u in alerts}


def test_outbox_policy_backs_off_exponentially_to_the_cap() -> None:
    worker = OutboxWorker.__new__(OutboxWorker)
    worker.policy = RetryPolicy(attempts=1000, base=1.0, cap=300.0, budget=1e9,
                                max_retry_after=float("inf"))
    from secbot.destinations.jobs import OutboxJob

    def ceiling(attempts: int) -> float:
        job = OutboxJob("pagerduty", "x", "open", 0.0, attempts=attempts)
        return max(worker.delay(job, None) for _ in range(50))

    assert ceiling(1) <= 1.0 and 2.0 < ceiling(3) <= 4.0 and ceiling(30) <= 300.0
    job = OutboxJob("pagerduty", "x", "open", 0.0, attempts=1)
    assert worker.delay(job, 120.0) == 120.0  # a long Retry-After is waited for, not refused
