"""Response actions with two-person approval (DESIGN.md §8, §13) through the real app: a
rule's ``respond:`` or ``@SecBot isolate`` proposes, an approver who is not the requester
approves with a button over Socket Mode, the Kibana (Elastic Defend) and Okta stand-ins
receive exactly one call, Undo releases; the night window approves by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from reliability_harness import bot_env, free_port, reaped, start_bot, wait_until
from stack_support import (
    INDEX,
    TRIAGER,
    VIEWER,
    Stack,
    audit,
    eventually,
    posted,
    running_stack,
    world,
)

from secbot.ask.state import RedisInteractions
from secbot.respond.calls import CallFailed, ResponseApis, Target
from secbot.respond.proposal import KIND, RUNNING_QUEUE, Proposal
from secbot.respond.window import AutoApproveWindow, WindowError
from secbot.rules.loader import load_rules
from secbot.rules.ruleset import RuleSet
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.gcp_iam import IamStandIn
from secbot_emulators.okta import OktaStandIn
from secbot_emulators.slack import SlackEmulator

CHANNEL = "C0ENDPOINT"
CAROL = "U0CAROL"  # a second approver
AGENT = "a1b2c3d4-0000-4000-8000-00000000beef"

RULES = {
    "edr_isolate": """
id: edr_isolate
name: Malware on an endpoint
match: {rule_name: Malware Detection Alert}
fields: [host.name, agent.id]
route: {channel: C0ENDPOINT}
respond:
  - {action: isolate_host, host: host.name}
""",
    "okta_suspend": """
id: okta_suspend
name: Okta session hijack
match: {rule_name: Okta Session Hijack}
fields: [user.email]
route: {channel: C0ENDPOINT}
respond:
  - action: suspend_user
    user: user.email
    when: 'IncludedFields["user.email"] != "ceo@example.com"'

""",
}


def ruleset(tmp_path: Path) -> RuleSet:
    for name, text in RULES.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return load_rules(tmp_path)


def malware(uid: str, host: str = "web-01", agent: str | None = AGENT) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": "2026-11-01T10:00:00.000Z", "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open", "kibana.alert.severity": "high",
        "kibana.alert.rule.name": "Malware Detection Alert", "host": {"name": host},
    }
    if agent:
        doc["agent"] = {"id": agent, "type": "endpoint"}
    return doc


def hijack(uid: str, email: str) -> dict[str, Any]:
    """An Okta session hijack of ``email``: the okta_suspend rule proposes suspending them."""
    return {"@timestamp": "2026-11-01T10:00:00.000Z", "kibana.alert.uuid": uid,
            "kibana.alert.workflow_status": "open",
            "kibana.alert.rule.name": "Okta Session Hijack", "user": {"email": email}}


def seed(slack: SlackEmulator, es: ElasticEmulator) -> None:
    slack.add_user(CAROL, "carol", "Carol Approver", email="carol@example.com")
    es.endpoint.add_endpoint(AGENT, "web-01")


def okta_stack(tmp_path: Path, okta: OktaStandIn) -> contextlib.AbstractAsyncContextManager[Stack]:
    """The service with the Okta stand-in as its Okta and Carol as the approver."""
    return running_stack(ruleset(tmp_path), before_start=seed, approvers=[CAROL],
                         okta_url=okta.url, okta_token=okta.token)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(ruleset(tmp_path), before_start=seed,
                             approvers=[TRIAGER, CAROL]) as running:
        yield running


async def approval(stack: Stack, top_ts: str, *, buttons: bool = True) -> Any:
    async def shown() -> Any:
        for reply in stack.slack.replies(CHANNEL, top_ts):
            text = json.dumps(reply.blocks or [])
            if "Response action" in text and (not buttons or "secbot_approve" in text):
                return reply
        return None

    return await eventually(shown)


def thread(stack: Stack, ts: str) -> str:
    return stack.thread_text(CHANNEL, ts)


async def test_isolation_needs_an_approver_runs_once_and_is_undone(stack: Stack) -> None:
    stack.elastic.index_documents(INDEX, [malware("r-1")])
    [top] = await posted(stack, CHANNEL)
    msg = await approval(stack, top.ts)
    # bob is no approver: refused, nothing runs.
    stack.slack.interactive.click(VIEWER, CHANNEL, msg.ts, "secbot_approve")
    await eventually(lambda: _a(any(e.get("user") == VIEWER and "SECBOT_APPROVERS" in
                                    str(e.get("text")) for e in stack.slack.ephemeral)))
    assert stack.elastic.endpoint.actions == []
    # two approvers click at the same moment: one isolation.
    stack.slack.interactive.click(TRIAGER, CHANNEL, msg.ts, "secbot_approve")
    stack.slack.interactive.click(CAROL, CHANNEL, msg.ts, "secbot_approve")
    await eventually(lambda: _a("done" in thread(stack, top.ts)))
    await asyncio.sleep(0.5)
    [action] = stack.elastic.endpoint.actions
    assert action.command == "isolate" and action.endpoint_ids == [AGENT]
    assert "r-1" in action.comment and "approved by" in action.comment
    assert AGENT in stack.elastic.endpoint.isolated
    tags = stack.es_doc("r-1").get("kibana.alert.workflow_tags", [])
    assert "contained" in tags
    # Undo releases the host.
    done = stack.slack.message(CHANNEL, msg.ts)
    assert "secbot_undo" in json.dumps(done.blocks)
    stack.slack.interactive.click(CAROL, CHANNEL, msg.ts, "secbot_undo")
    await eventually(lambda: _a("Undone by <@U0CAROL>" in thread(stack, top.ts)))
    assert [a.command for a in stack.elastic.endpoint.actions] == ["isolate", "unisolate"]
    assert AGENT not in stack.elastic.endpoint.isolated
    actions = [str(e.action) for e in await audit(stack, "r-1")]
    for step in ("proposed", "refused", "approved", "responded", "undone"):
        assert step in actions, step
    assert actions.count("responded") == 1


async def test_a_command_needs_a_second_person(stack: Stack) -> None:
    stack.elastic.index_documents(INDEX, [malware("r-2", agent=None)])  # the rule can't propose
    [top] = await posted(stack, CHANNEL)
    await eventually(lambda: _a("cannot propose isolate host" in thread(stack, top.ts)))
    stack.elastic.index_documents(INDEX, [malware("r-3")])
    tops = await posted(stack, CHANNEL, 2)
    top = tops[-1]
    first = await approval(stack, top.ts)  # the rule's own proposal: deny it
    stack.slack.interactive.click(CAROL, CHANNEL, first.ts, "secbot_deny")
    await eventually(lambda: _a("denied" in thread(stack, top.ts)))
    stack.slack.user_mentions_bot(VIEWER, "isolate web-01", CHANNEL, thread_ts=top.ts)
    await eventually(lambda: _a(any(e.get("user") == VIEWER and "SECBOT_TRIAGERS" in
                                    str(e.get("text")) for e in stack.slack.ephemeral)))
    stack.slack.user_mentions_bot(TRIAGER, "isolate web-99", CHANNEL, thread_ts=top.ts)
    await eventually(lambda: _a(any("not `web-99`" in str(e.get("text"))
                                    for e in stack.slack.ephemeral)))
    stack.slack.user_mentions_bot(TRIAGER, "isolate web-01", CHANNEL, thread_ts=top.ts)

    async def second() -> Any:
        found = [r for r in stack.slack.replies(CHANNEL, top.ts)
                 if "requested by <@U0TRIAGER>" in json.dumps(r.blocks or [])]
        return found[0] if found else None

    msg = await eventually(second)
    stack.slack.interactive.click(TRIAGER, CHANNEL, msg.ts, "secbot_approve")
    await eventually(lambda: _a(any("second person" in str(e.get("text"))
                                    for e in stack.slack.ephemeral)))
    assert stack.elastic.endpoint.actions == []
    stack.slack.interactive.click(CAROL, CHANNEL, msg.ts, "secbot_approve")
    await eventually(lambda: _a(len(stack.elastic.endpoint.actions) == 1))


async def test_a_failing_response_api_is_said_and_not_marked_contained(stack: Stack) -> None:
    stack.elastic.endpoint.fail_next(500, count=10)
    stack.elastic.index_documents(INDEX, [malware("r-4")])
    [top] = await posted(stack, CHANNEL)
    msg = await approval(stack, top.ts)
    stack.slack.interactive.click(CAROL, CHANNEL, msg.ts, "secbot_approve")
    await eventually(lambda: _a("not marked contained" in thread(stack, top.ts)))
    assert "contained" not in stack.es_doc("r-4").get("kibana.alert.workflow_tags", [])
    # Approve comes back (after the thread reply) for another try.
    await eventually(lambda: _a("secbot_approve" in json.dumps(
        stack.slack.message(CHANNEL, msg.ts).blocks)))
    assert "response_failed" in [e.action for e in await audit(stack, "r-4")]


def _hours(offset: int) -> str:
    """A two-hour window starting ``offset`` hours from this hour (now is inside it for 0:
    the proposal, seconds later, cannot fall out of it at an hour boundary)."""
    hour = datetime.now(UTC).hour
    return f"{(hour + offset) % 24:02d}-{(hour + offset + 2) % 24:02d} UTC"


async def test_the_night_window_approves_by_itself_only_inside_it(tmp_path: Path) -> None:
    async with running_stack(ruleset(tmp_path), before_start=seed, approvers=[CAROL],
                             auto_approve_hours=_hours(0)) as stack:
        stack.elastic.index_documents(INDEX, [malware("r-5")])
        [top] = await posted(stack, CHANNEL)
        await eventually(lambda: _a(len(stack.elastic.endpoint.actions) == 1))
        msg = await approval(stack, top.ts, buttons=False)
        assert "SECBOT_AUTO_APPROVE_HOURS" in json.dumps(
            [r.blocks for r in stack.slack.replies(CHANNEL, top.ts)])
        assert msg is not None
        assert any(e.action == "approved" and e.extra.get("auto") == "true"
                   for e in await audit(stack, "r-5"))
    async with running_stack(ruleset(tmp_path), before_start=seed, approvers=[CAROL],
                             auto_approve_hours=_hours(3)) as stack:
        stack.elastic.index_documents(INDEX, [malware("r-6")])
        [top] = await posted(stack, CHANNEL)
        await approval(stack, top.ts)  # buttons: waiting for a person
        await asyncio.sleep(0.5)
        assert stack.elastic.endpoint.actions == []


def test_the_window_reads_its_zone_and_wraps_midnight() -> None:
    oslo = AutoApproveWindow.parse("22-07 Europe/Oslo")
    assert oslo.contains(datetime(2026, 7, 1, 21, 30, tzinfo=UTC))  # 23:30 in Oslo (CEST)
    assert oslo.contains(datetime(2026, 1, 1, 5, 0, tzinfo=UTC))  # 06:00 in Oslo (CET)
    assert not oslo.contains(datetime(2026, 1, 1, 6, 0, tzinfo=UTC))  # 07:00: over
    assert not oslo.contains(datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    assert AutoApproveWindow.parse("09-17 UTC").contains(datetime(2026, 1, 1, 9, tzinfo=UTC))
    with pytest.raises(WindowError):
        AutoApproveWindow.parse("late at night")


async def test_dry_run_says_what_it_would_do(tmp_path: Path) -> None:
    async with running_stack(ruleset(tmp_path), before_start=seed, approvers=[CAROL],
                             respond_dry_run=True) as stack:
        stack.elastic.index_documents(INDEX, [malware("r-7")])
        [top] = await posted(stack, CHANNEL)
        msg = await approval(stack, top.ts)
        stack.slack.interactive.click(CAROL, CHANNEL, msg.ts, "secbot_approve")
        await eventually(lambda: _a("dry run" in thread(stack, top.ts)))
        shown = json.dumps(stack.slack.message(CHANNEL, msg.ts).blocks)
        assert "would POST" in shown and "/api/endpoint/action/isolate" in shown
        assert stack.elastic.endpoint.actions == []


async def test_suspending_a_user_through_okta_and_undoing_it(tmp_path: Path) -> None:
    async with OktaStandIn.running() as okta:
        person = okta.add_user("mallory@example.com", "Mallory", "Example")
        async with okta_stack(tmp_path, okta) as stack:
            stack.elastic.index_documents(INDEX, [hijack("r-8", "mallory@example.com")])
            [top] = await posted(stack, CHANNEL)
            msg = await approval(stack, top.ts)
            stack.slack.interactive.click(CAROL, CHANNEL, msg.ts, "secbot_approve")
            await eventually(lambda: _a(person.status == "SUSPENDED"))
            assert ("GET", "/api/v1/users/mallory@example.com") in okta.requests
            await eventually(lambda: _a("secbot_undo" in json.dumps(
                stack.slack.message(CHANNEL, msg.ts).blocks)))
            stack.slack.interactive.click(CAROL, CHANNEL, msg.ts, "secbot_undo")
            await eventually(lambda: _a(person.status == "ACTIVE"))




async def test_response_api_errors_come_back_in_the_services_words() -> None:
    async with OktaStandIn.running() as okta, ElasticEmulator.running() as es:
        person = okta.add_user("eve@example.com", status="SUSPENDED")
        apis = ResponseApis(kibana_url=es.kibana_url, okta_url=okta.url, okta_token=okta.token)
        with pytest.raises(CallFailed, match="HTTP 400: Api validation failed: suspend"):
            await apis.run("suspend_user", Target(person.login, person.login), "c")
        wrong = ResponseApis(okta_url=okta.url, okta_token="not-it")
        with pytest.raises(CallFailed, match="HTTP 401: Invalid token provided"):
            await wrong.run("unsuspend_user", Target(person.login, person.login), "c")
        with pytest.raises(CallFailed, match="HTTP 404"):
            await apis.run("suspend_user", Target("x", "nobody@example.com"), "c")
        await apis.run("unsuspend_user", Target(person.login, person.login), "c")
        assert person.status == "ACTIVE"
        with pytest.raises(CallFailed, match="endpoint_ids"):
            await apis.run("isolate_host", Target("h", ""), "c")
        done = await apis.run("isolate_host", Target("h", AGENT), "c")
        assert done.ref == es.endpoint.actions[-1].id
        with pytest.raises(CallFailed, match="SECBOT_KIBANA_URL"):
            await ResponseApis().run("isolate_host", Target("h", AGENT), "c")




async def test_disabling_a_service_account_key_and_enabling_it_again() -> None:
    key = "projects/prod-payments/serviceAccounts/ci@prod-payments.iam.gserviceaccount.com/keys/k1"
    async with IamStandIn.running() as iam:
        iam.add_key(key)
        apis = ResponseApis(gcp_iam_url=iam.url)
        await apis.run("disable_sa_key", Target(key, key), "c")
        assert iam.keys[key] is True
        await apis.run("enable_sa_key", Target(key, key), "c")
        assert iam.keys[key] is False
        assert iam.requests == [("POST", f"/v1/{key}:disable"), ("POST", f"/v1/{key}:enable")]
        with pytest.raises(CallFailed, match="HTTP 404: Service account key"):
            await apis.run("disable_sa_key", Target("k", key + "x"), "c")


# --- a replica stopped mid-run (kill -9): the proposal is left "running" -----------------------


async def crashed_mid_run(stack: Stack, pid: str, *, resumed: int = 0,
                          queued: bool = True) -> None:
    """What a replica killed while calling the API leaves in Redis: the proposal ``running``
    (approved by Carol, its decision claimed) with a lease that has ended, in the due queue
    (``queued=False``: a record from before leases, only in the record)."""
    client = aioredis.from_url(stack.settings.redis_url, decode_responses=True)
    state = RedisInteractions(client, stack.settings.redis_prefix)
    try:
        async def proposed() -> Proposal | None:
            p = Proposal.from_json(await state.get(KIND, pid))
            return p if p is not None and p.state == "proposed" else None

        p = await eventually(proposed)
        deadline = time.time() - 1
        p = replace(p, state="running", approver=CAROL, resumed=resumed,
                    deadline=deadline if queued else 0.0)
        await state.put(KIND, pid, p.to_json(), 3600)
        await state.claim(f"{pid}:decided", CAROL, 3600)
        if queued:
            await state.schedule(RUNNING_QUEUE, pid, deadline)
    finally:
        await client.aclose()


async def test_a_run_left_by_a_stopped_replica_is_run_again_once_by_the_sweep(
        stack: Stack) -> None:
    stack.elastic.index_documents(INDEX, [malware("r-10")])
    [top] = await posted(stack, CHANNEL)
    msg = await approval(stack, top.ts)
    stack.elastic.endpoint.isolated.add(AGENT)  # the dead replica's call had gone through
    await crashed_mid_run(stack, "r-10:0")
    await eventually(lambda: _a("isolate host `web-01`" in thread(stack, top.ts)
                                and "done" in thread(stack, top.ts)))
    said = thread(stack, top.ts)
    assert "SecBot stopped while running isolate host" in said
    assert "approved by <@U0CAROL>" in said
    await eventually(lambda: _a("secbot_undo" in json.dumps(
        stack.slack.message(CHANNEL, msg.ts).blocks)))
    await asyncio.sleep(2.5)  # another sweep: nothing left to take over
    [again] = stack.elastic.endpoint.actions  # re-isolating is harmless: one new action
    assert again.command == "isolate" and AGENT in stack.elastic.endpoint.isolated
    assert "contained" in stack.es_doc("r-10").get("kibana.alert.workflow_tags", [])
    entries = await audit(stack, "r-10")
    assert [e.extra.get("outcome") for e in entries
            if e.action == "response_failed"] == ["interrupted"]
    [done] = [e for e in entries if e.action == "responded"]
    assert done.extra["resumed"] == "1" and done.extra["ref"] == again.id
    assert said.count("SecBot stopped while running") == 1


async def test_found_running_again_the_outcome_is_unknown_and_approve_comes_back(
        stack: Stack) -> None:
    stack.elastic.index_documents(INDEX, [malware("r-11")])
    [top] = await posted(stack, CHANNEL)
    msg = await approval(stack, top.ts)
    await crashed_mid_run(stack, "r-11:0", resumed=1)  # the re-run's replica stopped too
    await eventually(lambda: _a("outcome unknown" in thread(stack, top.ts)))
    assert "Kibana" in thread(stack, top.ts) and "not marked contained" in thread(stack, top.ts)
    assert stack.elastic.endpoint.actions == []  # SecBot does not guess a third time
    await eventually(lambda: _a("secbot_approve" in json.dumps(
        stack.slack.message(CHANNEL, msg.ts).blocks)))
    assert "Outcome unknown" in json.dumps(stack.slack.message(CHANNEL, msg.ts).blocks)
    assert any(e.action == "response_failed" and e.extra.get("outcome") == "unknown"
               for e in await audit(stack, "r-11"))
    stack.slack.interactive.click(TRIAGER, CHANNEL, msg.ts, "secbot_approve")  # a person decides
    await eventually(lambda: _a(len(stack.elastic.endpoint.actions) == 1))
    await eventually(lambda: _a(":white_check_mark:" in thread(stack, top.ts)))


async def test_approve_on_a_run_left_running_takes_it_over(stack: Stack) -> None:
    stack.elastic.index_documents(INDEX, [malware("r-12")])
    [top] = await posted(stack, CHANNEL)
    msg = await approval(stack, top.ts)
    await crashed_mid_run(stack, "r-12:0", queued=False)  # no lease: the sweep cannot see it
    await asyncio.sleep(2.5)
    assert stack.elastic.endpoint.actions == []
    stack.slack.interactive.click(TRIAGER, CHANNEL, msg.ts, "secbot_approve")
    await eventually(lambda: _a(":white_check_mark:" in thread(stack, top.ts)))
    assert "approved again" in thread(stack, top.ts)
    assert len(stack.elastic.endpoint.actions) == 1
    [done] = [e for e in await audit(stack, "r-12") if e.action == "responded"]
    assert done.actor == TRIAGER and done.extra["resumed"] == "1"


async def test_a_suspend_left_running_is_done_when_okta_says_suspended_already(
        tmp_path: Path) -> None:
    async with OktaStandIn.running() as okta:
        person = okta.add_user("trudy@example.com", "Trudy", "Example")
        async with okta_stack(tmp_path, okta) as stack:
            stack.elastic.index_documents(INDEX, [hijack("r-13", "trudy@example.com")])
            [top] = await posted(stack, CHANNEL)
            msg = await approval(stack, top.ts)
            person.status = "SUSPENDED"  # the dead replica's suspend had gone through
            await crashed_mid_run(stack, "r-13:0")
            await eventually(lambda: _a("SUSPENDED already" in json.dumps(
                stack.slack.message(CHANNEL, msg.ts).blocks)))
            assert not any("lifecycle" in path for _, path in okta.requests)  # no 400 E0000001
            await eventually(lambda: _a(":white_check_mark:" in thread(stack, top.ts)))
            stack.slack.interactive.click(CAROL, CHANNEL, msg.ts, "secbot_undo")
            await eventually(lambda: _a(person.status == "ACTIVE"))


async def test_a_kill_minus_9_while_okta_suspends_is_finished_by_the_next_replica(
        tmp_path: Path) -> None:
    ruleset(tmp_path)  # the rule files, for `secbot run`
    async with world("respond-kill", [CHANNEL]) as (slack, es, prefix), \
            OktaStandIn.running() as okta:
        slack.add_user(CAROL, "carol", "Carol Approver", email="carol@example.com")
        person = okta.add_user("walter@example.com", "Walter", "Example")
        env = bot_env(slack, es, http_port=free_port(), prefix=prefix,
                      SECBOT_RULES_DIR=str(tmp_path), SECBOT_APPROVERS=CAROL,
                      SECBOT_OKTA_URL=okta.url, SECBOT_OKTA_TOKEN=okta.token)
        first = await start_bot(env, tmp_path, "first")
        async with reaped(first):
            await first.wait_healthy()
            es.index_documents(INDEX, [hijack("r-14", "walter@example.com")])

            async def shown() -> Any:
                for top in slack.messages(CHANNEL):
                    for reply in slack.replies(CHANNEL, top.ts):
                        if "secbot_approve" in json.dumps(reply.blocks or []):
                            return top, reply
                return None

            top, msg = await wait_until(shown, timeout=30, what="the approval message",
                                        explain=first.log_tail)
            okta.lifecycle_delay = 10.0  # Okta suspends, then answers 10 s later
            slack.interactive.click(CAROL, CHANNEL, msg.ts, "secbot_approve")
            await wait_until(lambda: _a(person.status == "SUSPENDED"), timeout=30,
                             what="the suspend", explain=first.log_tail)
            await first.kill()  # kill -9 while the call is in flight
        okta.lifecycle_delay = 0.0
        said = "\n".join(m.text for m in slack.replies(CHANNEL, top.ts))
        assert "Running" in json.dumps(slack.message(CHANNEL, msg.ts).blocks)
        assert ":white_check_mark:" not in said
        await _lease_ends_now(env, "r-14:0")  # rather than wait its 170 s
        second = await start_bot({**env, "SECBOT_HTTP_PORT": str(free_port())}, tmp_path,
                                 "second")
        async with reaped(second):
            async def finished() -> bool:
                text = "\n".join(m.text for m in slack.replies(CHANNEL, top.ts))
                return "SecBot stopped while running" in text and ":white_check_mark:" in text

            await wait_until(finished, timeout=30, what="the take-over",
                             explain=second.log_tail)
            shown_now = json.dumps(slack.message(CHANNEL, msg.ts).blocks)
            assert "SUSPENDED already" in shown_now and "secbot_undo" in shown_now
            lifecycle = [path for _, path in okta.requests if "lifecycle" in path]
            assert len(lifecycle) == 1  # the dead replica's; no second suspend (400 E0000001)
            store = RedisStore.from_url(env["SECBOT_REDIS_URL"], prefix)
            try:
                entries = await store.read_audit("r-14")
            finally:
                await store.close()
            steps = [(e.action, e.extra.get("outcome") or e.extra.get("resumed"))
                     for e in entries if e.action in ("response_failed", "responded")]
            assert steps == [("response_failed", "interrupted"), ("responded", "1")]


async def _lease_ends_now(env: dict[str, str], pid: str) -> None:
    """Move a running proposal's lease end (record and due queue) to now: the test's clock."""
    client = aioredis.from_url(env["SECBOT_REDIS_URL"], decode_responses=True)
    state = RedisInteractions(client, env["SECBOT_REDIS_PREFIX"])
    try:
        p = Proposal.from_json(await state.get(KIND, pid))
        assert p is not None and p.state == "running" and p.deadline > time.time() + 60
        p = replace(p, deadline=time.time() - 1)
        await state.put(KIND, pid, p.to_json(), 3600)
        await state.schedule(RUNNING_QUEUE, pid, p.deadline)
    finally:
        await client.aclose()


async def _a(value: bool) -> bool:
    return value
