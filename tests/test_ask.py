"""Asking the person (DESIGN.md §13) through the real app: the rule's ``ask`` sends a DM with
Yes / No buttons over the Slack stand-in, clicks come back as ``block_actions`` over Socket
Mode, and the answer drives ``on_yes`` / ``on_no`` / ``on_timeout`` in the SIEM stand-in, with
real Redis keeping the question (so silence times out across a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from stack_support import (
    INDEX,
    TRIAGER,
    VIEWER,
    Stack,
    audit,
    es_status,
    eventually,
    posted,
    serve,
    stack_settings,
    world,
)

from secbot.ask.claims import AnswerClaim, claim_name
from secbot.ask.state import AskRecord, RedisInteractions
from secbot.rules.loader import load_rules
from secbot.rules.ruleset import RuleSet
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.pagerduty_events import DEFAULT_ROUTING_KEY, PagerDutyEvents
from secbot_emulators.slack import SlackEmulator, SlackError

CHANNEL = "C0IDENTITY"
BOB_DM = "D0VIEWER"  # the stand-in's DM channel with bob (U0VIEWER, bob@example.com)

RULE = """
id: travel_check
name: Sign-in from a new country
match: {rule_name: Okta Sign-In From New Country}
fields: [user.email, source.geo.country_name]
route: {channel: C0IDENTITY}
ask:
  user: user.email
  question: "Did you just sign in from {{ fields['source.geo.country_name'] }}?"
  timeout: TIMEOUT
  justification: JUSTIFY
  on_yes: {status: closed, reason: benign_positive}
  on_no: {escalate: true}
  on_timeout: {escalate: true}
"""


def rules(tmp_path: Path, *, timeout: str = "1h", justification: bool = False) -> RuleSet:
    text = RULE.replace("TIMEOUT", timeout).replace("JUSTIFY", str(justification).lower())
    (tmp_path / "travel_check.yaml").write_text(text)
    return load_rules(tmp_path)


def alert(uid: str, email: str = "bob@example.com", country: str = "Brazil") -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-01T10:00:00.000Z", "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open", "kibana.alert.severity": "medium",
        "kibana.alert.rule.name": "Okta Sign-In From New Country",
        "user": {"email": email}, "source": {"ip": "203.0.113.50",
                                             "geo": {"country_name": country}},
    }


@contextlib.asynccontextmanager
async def service(slack: SlackEmulator, es: ElasticEmulator, ruleset: RuleSet, prefix: str,
                  connections: int = 1, **extra: Any) -> AsyncIterator[Stack]:
    """One SecBot process on the given stand-ins and Redis prefix (a restart keeps both);
    ``connections``: the Socket Mode connections by then (a second replica: 2)."""
    try:
        async with serve(slack, es, stack_settings(slack, es, prefix, **extra), ruleset,
                         connections=connections) as s:
            yield s
    finally:
        await slack.drop_connections()


async def dm(stack: Stack, channel: str = BOB_DM) -> Any:
    async def sent() -> Any:
        if channel not in stack.slack.workspace.channels:
            return None
        messages = stack.slack.messages(channel)
        return messages[-1] if messages else None

    return await eventually(sent)


def thread_text(stack: Stack, ts: str) -> str:
    return stack.thread_text(CHANNEL, ts)


@pytest.fixture
async def asked(tmp_path: Path) -> AsyncIterator[Stack]:
    async with world("ask") as (slack, es, prefix), service(slack, es, rules(tmp_path),
                                                            prefix) as s:
        yield s


async def test_the_person_gets_a_dm_and_yes_closes_with_the_configured_reason(asked: Stack
                                                                               ) -> None:
    asked.elastic.index_documents(INDEX, [alert("ask-1")])
    [message] = await posted(asked, CHANNEL)
    question = await dm(asked)
    shown = json.dumps(question.blocks)
    assert "Did you just sign in from Brazil?" in shown
    assert '"secbot_ask_yes"' in shown and '"secbot_ask_no"' in shown
    assert '"value": "ask-1"' in shown
    lookups = asked.slack.calls_to("users.lookupByEmail")
    assert [c.params.get("email") for c in lookups] == ["bob@example.com"]
    await eventually(lambda: _async("Asked <@U0VIEWER> by DM" in thread_text(asked, message.ts)))

    envelope = asked.slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_yes")
    await asked.slack.wait_for_ack(envelope, timeout=3)  # acked within Slack's 3 s

    await eventually(lambda: _async(es_status(asked, "ask-1") == "closed"))
    doc = asked.elastic.document(INDEX, "ask-1") or {}
    assert doc["kibana.alert.workflow_reason"] == "benign_positive"
    await eventually(lambda: _async(
        "user_confirmed" in (asked.elastic.document(INDEX, "ask-1") or {}).get(
            "kibana.alert.workflow_tags", [])))
    await eventually(lambda: _async("answered *Yes, this was me*" in thread_text(asked,
                                                                                 message.ts)))
    # The DM lost its buttons and says what was answered.
    answered = asked.slack.message(BOB_DM, question.ts)
    assert "secbot_ask_yes" not in json.dumps(answered.blocks)
    assert "You answered" in json.dumps(answered.blocks)
    entries = await audit(asked, "ask-1")
    what = [(e.action, e.extra.get("slack_user")) for e in entries]
    assert ("answered", VIEWER) in what and ("asked", VIEWER) in what
    assert any(e.action == "closed" for e in entries)


async def test_no_escalates_and_leaves_the_alert_open_for_people(asked: Stack) -> None:
    asked.elastic.index_documents(INDEX, [alert("ask-2")])
    [message] = await posted(asked, CHANNEL)
    question = await dm(asked)
    asked.slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_no")
    await eventually(lambda: _async("escalated" in thread_text(asked, message.ts)))
    assert es_status(asked, "ask-2") != "closed"
    await eventually(lambda: _async(
        "user_denied" in (asked.elastic.document(INDEX, "ask-2") or {}).get(
            "kibana.alert.workflow_tags", [])))


async def test_another_users_click_and_a_replay_are_refused_and_audited(asked: Stack) -> None:
    asked.elastic.index_documents(INDEX, [alert("ask-3")])
    await posted(asked, CHANNEL)
    question = await dm(asked)
    # alice (a triager, even) replays bob's button payload: not hers to answer.
    asked.slack.interactive.click(TRIAGER, BOB_DM, question.ts, "secbot_ask_yes", forge=True)

    async def refused() -> bool:
        return any(e.action == "refused" and e.actor == TRIAGER
                   for e in await audit(asked, "ask-3"))

    await eventually(refused)
    assert es_status(asked, "ask-3") == "open"
    assert "secbot_ask_yes" in json.dumps(asked.slack.message(BOB_DM, question.ts).blocks)
    # bob answers; a second click (a replayed payload) changes nothing more.
    asked.slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_yes")
    await eventually(lambda: _async(es_status(asked, "ask-3") == "closed"))
    asked.slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_no", forge=True,
                                  value="ask-3")

    async def replay_refused() -> bool:
        return any(e.action == "refused" and e.actor == VIEWER
                   for e in await audit(asked, "ask-3"))

    await eventually(replay_refused)
    assert any(e.get("user") == VIEWER and "already answered" in str(e.get("text"))
               for e in asked.slack.ephemeral)
    assert sum(e.action == "answered" for e in await audit(asked, "ask-3")) == 1


async def test_an_answer_after_a_triager_closed_the_alert_is_refused(asked: Stack) -> None:
    asked.elastic.index_documents(INDEX, [alert("ask-10")])
    [message] = await posted(asked, CHANNEL)
    question = await dm(asked)
    asked.slack.user_reacts(TRIAGER, "white_check_mark", CHANNEL, message.ts)
    await eventually(lambda: _async(es_status(asked, "ask-10") == "closed"))

    async def record_closed() -> bool:  # the store knows it is closed once the edit is done
        return "Closed by <@U0TRIAGER>" in json.dumps(asked.slack.message(CHANNEL,
                                                                          message.ts).blocks)

    await eventually(record_closed)
    asked.slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_no")
    await eventually(lambda: _async(any(e.get("user") == VIEWER and "already closed" in
                                        str(e.get("text")) for e in asked.slack.ephemeral)))
    assert "escalated" not in thread_text(asked, message.ts)
    entries = await audit(asked, "ask-10")
    assert any(e.action == "refused" and "stale" in e.reason for e in entries)
    assert not any(e.action == "answered" for e in entries)


async def test_no_pages_through_the_rules_escalation(tmp_path: Path) -> None:
    """``on_no: {escalate: true}`` runs the rule's first escalate entry as if it matched: a
    PagerDuty trigger (dedup key = the alert uuid) through the destinations' outbox."""
    (tmp_path / "travel_check.yaml").write_text(RULE.replace("TIMEOUT", "1h").replace(
        "JUSTIFY", "false") + "escalate:\n  - {if: 'false', page: pagerduty}\n")
    async with PagerDutyEvents().serving() as pd, world("ask") as (slack, es, prefix), service(
            slack, es, load_rules(tmp_path), prefix, pagerduty_events_url=pd.url,
            pagerduty_routing_key=DEFAULT_ROUTING_KEY) as stack:
        stack.elastic.index_documents(INDEX, [alert("ask-11")])
        [message] = await posted(stack, CHANNEL)
        await asyncio.sleep(0.5)
        assert pd.pages == 0  # the escalate entry's if is false: nothing paged on posting
        question = await dm(stack)
        slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_no")
        await eventually(lambda: _async(pd.pages == 1))
        assert "ask-11" in pd.incidents
        await eventually(lambda: _async("escalated" in thread_text(stack, message.ts)))


async def test_silence_times_out_across_a_restart(tmp_path: Path) -> None:
    ruleset = rules(tmp_path, timeout="3s")
    async with world("ask") as (slack, es, prefix):
        async with service(slack, es, ruleset, prefix) as first:
            first.elastic.index_documents(INDEX, [alert("ask-4")])
            [message] = await posted(first, CHANNEL)
            await dm(first)
        # The process that asked is gone; the question is in Redis, not in its memory.
        await asyncio.sleep(3.2)
        async with service(slack, es, ruleset, prefix) as second:
            await eventually(lambda: _async("No answer from <@U0VIEWER> in time"
                                            in thread_text(second, message.ts)))
            await eventually(lambda: _async("escalated" in thread_text(second, message.ts)))
            entries = await audit(second, "ask-4")
            assert [e.extra.get("answer") for e in entries if e.action == "answered"] == [
                "timeout"]
            assert "No answer in time" in json.dumps(slack.messages(BOB_DM)[-1].blocks)
            await asyncio.sleep(1.5)  # more ticks: the timeout fired once
            assert thread_text(second, message.ts).count("No answer from") == 1


async def test_a_person_slack_does_not_know_is_said_in_the_thread(asked: Stack) -> None:
    asked.elastic.index_documents(INDEX, [alert("ask-5", email="nobody@example.com")])
    [message] = await posted(asked, CHANNEL)
    await eventually(lambda: _async("could not ask" in thread_text(asked, message.ts)))
    assert "no user with the alert's `user.email` (users_not_found)" in thread_text(asked,
                                                                                  message.ts)
    assert any(e.extra.get("email") == "nobody@example.com" for e in await audit(asked, "ask-5"))
    assert "stays open for a triager" in thread_text(asked, message.ts)
    # Not taken as silence: neither closed nor escalated, however often it is seen again.
    await asyncio.sleep(1.0)
    assert es_status(asked, "ask-5") == "open"
    assert "escalated" not in thread_text(asked, message.ts)
    assert thread_text(asked, message.ts).count("could not ask") == 1


async def test_the_dm_is_sent_once_even_when_the_alert_is_seen_again(asked: Stack) -> None:
    asked.elastic.index_documents(INDEX, [alert("ask-6")])
    await posted(asked, CHANNEL)
    await dm(asked)
    await asyncio.sleep(1.0)  # several polls re-read the open alert
    assert len(asked.slack.messages(BOB_DM)) == 1


async def test_slack_failing_while_asking_retries_and_still_asks_once(asked: Stack) -> None:
    asked.slack.fail("conversations.open", times=2, status=503)
    asked.elastic.index_documents(INDEX, [alert("ask-12")])
    [message] = await posted(asked, CHANNEL)
    await dm(asked)
    await eventually(lambda: _async("Asked <@U0VIEWER>" in thread_text(asked, message.ts)))
    await asyncio.sleep(0.6)
    assert len(asked.slack.messages(BOB_DM)) == 1
    assert len(asked.top_messages(CHANNEL)) == 1  # and the alert was posted once


async def test_a_justification_modal_carries_the_why_into_the_thread(tmp_path: Path) -> None:
    async with world("ask") as (slack, es, prefix), service(
            slack, es, rules(tmp_path, justification=True), prefix) as stack:
        stack.elastic.index_documents(INDEX, [alert("ask-7")])
        [message] = await posted(stack, CHANNEL)
        question = await dm(stack)
        slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_yes")

        async def modal() -> Any:
            views = slack.interactive.open_views(VIEWER)
            return views[0] if views else None

        view = await eventually(modal)
        slack.interactive.submit(VIEWER, view.id, {"justification": {"text": "On holiday <3"}})
        await eventually(lambda: _async(es_status(stack, "ask-7") == "closed"))
        await eventually(lambda: _async("On holiday &lt;3" in thread_text(stack, message.ts)))




def every_thread(stack: Stack) -> str:
    """Every thread reply in the alerts' channel (alert threads and group threads)."""
    return "\n".join(m.text for top in stack.top_messages(CHANNEL)
                     for m in stack.slack.replies(CHANNEL, top.ts) if m.ts != top.ts)


async def test_a_storm_asks_the_first_alerts_once_and_not_its_members(tmp_path: Path) -> None:
    """30 alerts of bob in a minute, storm groups above 5: the first alert DMs bob, the next
    four take its answer (no second DM), the storm's 25 lines are not asked at all (its
    thread says so once) and stay open after bob answers."""
    async with world("ask") as (slack, es, prefix), service(
            slack, es, rules(tmp_path), prefix, group_threshold=5) as stack:
        uids = [f"st-{i:02d}" for i in range(30)]
        stack.elastic.index_documents(INDEX, [alert(u) for u in uids])

        async def decided() -> dict[str, str] | None:
            reasons = {}
            for uid in uids:
                asked_ = [e.reason for e in await audit(stack, uid) if e.action == "asked"]
                if not asked_:
                    return None
                reasons[uid] = asked_[0]
            return reasons

        reasons = await eventually(decided, timeout=30)
        storm = {u for u, r in reasons.items() if r.startswith("not asked: part of a storm")}
        attached = {u for u, r in reasons.items() if r.startswith("not asked again")}
        assert len(storm) == 25 and len(attached) == 4, reasons
        await eventually(lambda: _async("Nobody was asked by DM" in every_thread(stack)))
        assert every_thread(stack).count("Nobody was asked by DM") == 1
        assert every_thread(stack).count("Not asked again") == 4
        assert len(slack.messages(BOB_DM)) == 1
        assert len(slack.calls_to("users.lookupByEmail")) <= 1
        assert len(slack.calls_to("conversations.open")) <= 1

        question = await dm(stack)
        slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_yes")
        own = set(uids) - storm
        await eventually(lambda: _async(all(es_status(stack, u) == "closed" for u in own)))
        await asyncio.sleep(1.5)  # more ticks: the storm's alerts are left to the triager
        assert all(es_status(stack, u) == "open" for u in storm)
        assert every_thread(stack).count("which covered this alert too") == 4
        for uid in attached:
            [answered] = [e for e in await audit(stack, uid) if e.action == "answered"]
            assert answered.extra.get("answer") == "yes"
            assert answered.extra.get("slack_user") == VIEWER
        for uid in storm:
            assert not any(e.action == "answered" for e in await audit(stack, uid))


async def test_two_alerts_of_one_person_get_one_dm_and_one_answer(asked: Stack) -> None:
    asked.elastic.index_documents(INDEX, [alert("ask-20")])
    [first] = await posted(asked, CHANNEL)
    question = await dm(asked)
    asked.elastic.index_documents(INDEX, [alert("ask-21", country="Peru")])
    second = (await posted(asked, CHANNEL, 2))[1]
    await eventually(lambda: _async("Not asked again" in thread_text(asked, second.ts)))
    assert "`ask-20`" in thread_text(asked, second.ts)
    assert len(asked.slack.messages(BOB_DM)) == 1

    asked.slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_no")
    # on_no escalates: both alerts, each in its own thread, each audited once.
    await eventually(lambda: _async("escalated" in thread_text(asked, first.ts)))
    await eventually(lambda: _async("escalated" in thread_text(asked, second.ts)))
    assert "answered *No, it wasn't* to the question about alert" in thread_text(asked,
                                                                                  second.ts)
    [answered] = [e for e in await audit(asked, "ask-21") if e.action == "answered"]
    assert answered.extra.get("question") == "ask-20" and answered.actor == "bob@example.com"
    await eventually(lambda: _async(
        "user_denied" in (asked.elastic.document(INDEX, "ask-21") or {}).get(
            "kibana.alert.workflow_tags", [])))
    # The answer was given: bob's next alert is a new question, not attached to an old one.
    asked.elastic.index_documents(INDEX, [alert("ask-22", country="Chile")])
    await eventually(lambda: _async(len(asked.slack.messages(BOB_DM)) == 2))


async def test_silence_on_one_question_times_out_its_attached_alerts_too(tmp_path: Path
                                                                        ) -> None:
    async with world("ask") as (slack, es, prefix), service(
            slack, es, rules(tmp_path, timeout="2s"), prefix) as stack:
        stack.elastic.index_documents(INDEX, [alert("ask-30"), alert("ask-31", country="Peru")])
        first, second = await posted(stack, CHANNEL, 2)
        for message in (first, second):
            async def escalated(ts: str = message.ts) -> bool:
                return "escalated" in thread_text(stack, ts)

            await eventually(escalated)
        assert len(slack.messages(BOB_DM)) == 1
        texts = thread_text(stack, first.ts) + thread_text(stack, second.ts)
        assert texts.count("No answer from <@U0VIEWER> in time") == 2
        for uid in ("ask-30", "ask-31"):
            answers = [e.extra.get("answer") for e in await audit(stack, uid)
                       if e.action == "answered"]
            assert answers == ["timeout"]


async def test_a_crash_between_the_dm_and_its_record_sends_no_second_dm(tmp_path: Path) -> None:
    """The record says ``asking`` and the DM is already in Slack (the process died between
    the two): the redelivered alert finds the DM by its metadata instead of asking again."""
    ruleset = rules(tmp_path)
    async with world("ask") as (slack, es, prefix):
        slack.interactive.conversations_open(_params(users=VIEWER))
        bot = slack.workspace.bot
        sent = slack.workspace.post(
            BOB_DM, bot.user_id, "SecBot asks: …", bot_id=bot.bot_id, app_id=bot.app_id,
            blocks=[{"type": "actions", "block_id": "secbot_ask", "elements": [
                {"type": "button", "action_id": "secbot_ask_yes", "value": "ask-8",
                 "text": {"type": "plain_text", "text": "Yes, this was me"}}]}],
            metadata={"event_type": "secbot_ask", "event_payload": {"alert_uuid": "ask-8"}})
        client = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix)._client
        state = RedisInteractions(client, prefix)
        await state.put("ask", "ask-8", AskRecord(
            alert_uuid="ask-8", rule_id="travel_check", email="bob@example.com",
            due=time.time() + 3600, question="Did you just sign in from Brazil?").to_json(), 600)
        await client.aclose()
        async with service(slack, es, ruleset, prefix) as stack:
            stack.elastic.index_documents(INDEX, [alert("ask-8")])
            [message] = await posted(stack, CHANNEL)
            await eventually(lambda: _async("Asked <@U0VIEWER>" in thread_text(stack,
                                                                            message.ts)))
            assert [m.ts for m in slack.messages(BOB_DM)] == [sent.ts]
            # ... and that DM's button answers the question.
            slack.interactive.click(VIEWER, BOB_DM, sent.ts, "secbot_ask_yes")
            await eventually(lambda: _async(es_status(stack, "ask-8") == "closed"))


async def _crash_mid_answer(prefix: str, uid: str, claim: str) -> None:
    """What a replica killed between claiming an answer and saving it leaves in Redis: the
    claim (its deadline passed), the record still ``asked``, the question due."""
    client = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix)._client
    state = RedisInteractions(client, prefix)
    try:
        assert await state.claim(claim_name(uid), claim, 3600)
        await state.schedule("ask", uid, time.time() - 1)
    finally:
        await client.aclose()


async def test_an_answer_claimed_by_a_replica_killed_before_saving_it_is_applied_once(
        tmp_path: Path) -> None:
    """kill -9 between the answer's claim and its record: the claim (with who answered and a
    passed deadline) is found by the sweep of the two replicas left, which apply it once."""
    ruleset = rules(tmp_path)
    async with world("ask") as (slack, es, prefix):
        async with service(slack, es, ruleset, prefix) as first:
            first.elastic.index_documents(INDEX, [alert("ask-20")])
            [message] = await posted(first, CHANNEL)
            question = await dm(first)
            await eventually(lambda: _async("Asked <@U0VIEWER>" in thread_text(first,
                                                                            message.ts)))
        now = time.time()
        await _crash_mid_answer(prefix, "ask-20", AnswerClaim(
            "yes", VIEWER, deadline=now - 1, at=now - 61).to_value())
        async with service(slack, es, ruleset, prefix) as second, \
                service(slack, es, ruleset, prefix, connections=2):
            await eventually(lambda: _async(es_status(second, "ask-20") == "closed"))
            assert (es.document(INDEX, "ask-20") or {})["kibana.alert.workflow_reason"] == (
                "benign_positive")
            await eventually(lambda: _async("recorded after SecBot restarted"
                                            in thread_text(second, message.ts)))
            await asyncio.sleep(2.5)  # more sweeps: nothing is applied twice
            text = thread_text(second, message.ts)
            assert text.count("answered *Yes, this was me*") == 1
            assert text.count("Closed by SecBot") == 1
            entries = await audit(second, "ask-20")
            answered = [e for e in entries if e.action == "answered"]
            assert [(e.extra.get("answer"), e.extra.get("slack_user")) for e in answered] == [
                ("yes", VIEWER)]
            assert "stopped before saving it" in answered[0].reason
            assert sum(e.action == "closed" for e in entries) == 1
            assert "You answered" in json.dumps(slack.message(BOB_DM, question.ts).blocks)
            # The person's click now is a replay: refused, nothing changes.
            slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_no", forge=True,
                                    value="ask-20")

            async def refused() -> bool:
                return any(e.action == "refused" for e in await audit(second, "ask-20"))

            await eventually(refused)
            assert es_status(second, "ask-20") == "closed"


async def test_a_lost_answer_that_cannot_be_read_leaves_the_question_open(tmp_path: Path
                                                                          ) -> None:
    """A claim left by a stopped replica that says nothing readable is not guessed: the thread
    says the answer was lost, the DM still answers, the alert stays open until then."""
    async with world("ask") as (slack, es, prefix), service(slack, es, rules(tmp_path),
                                                            prefix) as stack:
        stack.elastic.index_documents(INDEX, [alert("ask-21")])
        [message] = await posted(stack, CHANNEL)
        question = await dm(stack)
        await _crash_mid_answer(prefix, "ask-21", "garbled")
        await eventually(lambda: _async("cannot tell what it was" in thread_text(stack,
                                                                               message.ts)))
        await asyncio.sleep(2.5)  # more sweeps: said once, nothing decided
        assert thread_text(stack, message.ts).count("cannot tell what it was") == 1
        assert es_status(stack, "ask-21") == "open"
        entries = await audit(stack, "ask-21")
        assert [e.extra.get("answer") for e in entries if e.action == "refused"] == ["unknown"]
        assert not any(e.action == "answered" for e in entries)
        # The DM's button still answers it.
        stack.slack.interactive.click(VIEWER, BOB_DM, question.ts, "secbot_ask_yes")
        await eventually(lambda: _async(es_status(stack, "ask-21") == "closed"))


async def test_silence_claimed_by_a_replica_killed_before_saving_it_times_out_once(
        tmp_path: Path) -> None:
    ruleset = rules(tmp_path, timeout="2s")
    async with world("ask") as (slack, es, prefix):
        async with service(slack, es, ruleset, prefix) as first:
            first.elastic.index_documents(INDEX, [alert("ask-22")])
            [message] = await posted(first, CHANNEL)
            await dm(first)
        await asyncio.sleep(2.2)
        await _crash_mid_answer(prefix, "ask-22", "timeout:secbot")  # an older replica's claim
        async with service(slack, es, ruleset, prefix) as second:
            await eventually(lambda: _async("escalated" in thread_text(second, message.ts)))
            await asyncio.sleep(2.5)
            assert thread_text(second, message.ts).count("No answer from") == 1
            entries = await audit(second, "ask-22")
            assert [e.extra.get("answer") for e in entries if e.action == "answered"] == [
                "timeout"]


async def test_a_due_question_is_taken_by_exactly_one_replica() -> None:
    prefix = f"secbot-test-ask:{uuid.uuid4().hex}:"
    store = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix)
    replicas = [RedisInteractions(store._client, prefix) for _ in range(8)]
    try:
        await replicas[0].schedule("ask", "q-1", 100.0)
        taken = await asyncio.gather(*(r.take("ask", "q-1", 150.0, 60.0) for r in replicas))
        assert sorted(taken) == [False] * 7 + [True]
        assert await replicas[1].due("ask", 150.0) == []  # leased 60 s ahead
        assert await replicas[1].due("ask", 211.0) == ["q-1"]  # the taker died: due again
    finally:
        keys = [k async for k in store._client.scan_iter(match=prefix + "*")]
        if keys:
            await store._client.delete(*keys)
        await store.close()


async def test_the_slack_stand_in_opens_dms_and_refuses_stale_triggers() -> None:
    async with SlackEmulator.running() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        first = await client.conversations_open(users=VIEWER)
        again = await client.conversations_open(users=VIEWER)
        assert first["channel"]["id"] == again["channel"]["id"] == BOB_DM
        assert again["already_open"] is True
        with pytest.raises(SlackApiError) as bot_dm:
            await client.conversations_open(users=slack.workspace.bot.user_id)
        assert bot_dm.value.response["error"] == "cannot_dm_bot"
        with pytest.raises(SlackApiError) as stale:
            await client.views_open(trigger_id="123.456.nope", view={
                "type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []})
        assert stale.value.response["error"] == "invalid_trigger_id"
        posted_dm = await client.chat_postMessage(channel=BOB_DM, text="hi", blocks=[
            {"type": "actions", "elements": [{"type": "button", "action_id": "b", "value": "v",
                                              "text": {"type": "plain_text", "text": "B"}}]}])
        with pytest.raises(SlackError):
            slack.interactive.click(VIEWER, BOB_DM, str(posted_dm["ts"]), "not-shown")
        envelope = slack.interactive.click(VIEWER, BOB_DM, str(posted_dm["ts"]), "b")
        payload = slack.delivery(envelope).payload
        assert payload["type"] == "block_actions" and payload["user"]["id"] == VIEWER
        assert payload["actions"][0]["value"] == "v"
        assert payload["container"] == {"type": "message", "message_ts": posted_dm["ts"],
                                         "channel_id": BOB_DM, "is_ephemeral": False}
        assert slack.delivery(envelope).next_envelope()["type"] == "interactive"


CHROMIUM = Path(os.environ.get("SECBOT_CHROMIUM", "/usr/bin/chromium"))


async def test_the_page_shows_the_dm_and_its_buttons_answer_in_a_browser(tmp_path: Path
                                                                         ) -> None:
    """The stand-in's page (what ``secbot demo`` serves): bob's DM renders SecBot's question
    with real buttons; clicking one as bob sends ``block_actions``, the justification modal
    opens on the page, and its text reaches the alert's thread."""
    if not CHROMIUM.exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM}")
    playwright = pytest.importorskip("playwright.async_api")
    async with world("ask") as (slack, es, prefix), service(
            slack, es, rules(tmp_path, justification=True), prefix) as stack:
        stack.elastic.index_documents(INDEX, [alert("ask-9")])
        [message] = await posted(stack, CHANNEL)
        await dm(stack)
        async with playwright.async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), timeout=30_000,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            try:
                page = await browser.new_page()
                await page.goto(f"{slack.base_url}/#{BOB_DM}")
                await page.get_by_test_id("user-picker").select_option(VIEWER)
                expect = playwright.expect
                yes = page.get_by_test_id("button-secbot_ask_yes")
                await expect(yes).to_be_visible(timeout=15_000)
                await expect(page.get_by_test_id("button-secbot_ask_no")).to_have_text(
                    "No, it wasn't")
                await yes.click()
                await expect(page.get_by_test_id("modal")).to_be_visible(timeout=15_000)
                await page.get_by_test_id("modal-input").fill("Conference in Rio")
                await page.get_by_test_id("modal-submit").click()
                await eventually(lambda: _async(es_status(stack, "ask-9") == "closed"))
                await eventually(lambda: _async("Conference in Rio" in thread_text(
                    stack, message.ts)))
                await expect(yes).to_have_count(0, timeout=15_000)  # the DM lost its buttons
            finally:
                await browser.close()


def _params(**values: str) -> Any:
    from secbot_emulators.slack_methods import Params

    return Params(dict(values))


async def _async(value: bool) -> bool:
    return value
