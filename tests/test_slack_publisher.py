"""SlackPublisher against the Slack emulator with the real AsyncWebClient."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.alert import Alert
from secbot.pipeline.decision import Decision, alert_record
from secbot.publish.slack import SlackPublisher
from secbot.store.base import MessageRef
from secbot.store.memory import MemoryStore
from secbot.store.records import AlertRecords
from secbot_emulators.slack import SlackEmulator
from secbot_emulators.slack_state import SlackError

CHANNEL = "C0SECALERTS"


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator.running() as emulator:
        yield emulator


def client(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(
        token=slack.bot_token,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=5)],
    )


def alert(uid: str, **fields: Any) -> Alert:
    return Alert.from_hit(
        {
            "kibana.alert.uuid": uid,
            "@timestamp": "2026-11-01T10:00:00Z",
            "kibana.alert.rule.name": "Rule",
            **fields,
        }
    )


def decision(uid: str, **changes: Any) -> Decision:
    base = Decision(
        alert_uuid=uid,
        rule_id="r1",
        channel=CHANNEL,
        post=True,
        auto_close=False,
        close_reason=None,
        explanation="rule has no auto_close",
        severity="high",
        fields={"user.email": "a@example.com"},
        message={
            "text": f"alert {uid}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"alert {uid}"}}],
        },
    )
    return replace(base, **changes)


async def decided(store: MemoryStore, uid: str, **changes: Any) -> Decision:
    """A decision whose record is saved first, as the pipeline does before publishing."""
    made = decision(uid, **changes)
    await AlertRecords(store).save_decided(alert_record(alert(uid), made))
    return made


def top(slack: SlackEmulator) -> list[Any]:
    return [m for m in slack.messages(CHANNEL) if not m.thread_ts or m.thread_ts == m.ts]


async def test_post_is_tagged_and_remembered(slack: SlackEmulator) -> None:
    store = MemoryStore()
    await SlackPublisher(client(slack), store).publish(alert("a1"), decision("a1"))
    [message] = top(slack)
    assert message.metadata == {"event_type": "secbot_alert", "event_payload": {"alert_uuid": "a1"}}
    assert await store.alert_for_message(CHANNEL, message.ts) == "a1"
    sent = slack.calls_to("chat.postMessage")[0].params
    assert "link_names" not in sent


async def test_crash_between_post_and_record_does_not_post_twice(slack: SlackEmulator) -> None:
    store = MemoryStore()
    publisher = SlackPublisher(client(slack), store)
    await publisher.publish(alert("a2"), decision("a2"))
    # Simulate the crash: the store lost the link, but the attempt marker survived.
    fresh = MemoryStore()
    await fresh.claim_dedup("post-attempt:a2", "earlier-attempt", 3600)
    await SlackPublisher(client(slack), fresh).publish(alert("a2"), decision("a2"))
    assert len(top(slack)) == 1
    ref = await fresh.message_for_alert("a2")
    assert ref is not None and ref.ts == top(slack)[0].ts


async def test_duplicates_form_a_group_under_the_first_alerts_own_message(
    slack: SlackEmulator,
) -> None:
    """Duplicates behave like any group: each one line in the first message's thread, a header
    part on the first message (count, first/last seen, status counts) edited by the flusher,
    one "new context" reply naming the latest; the first message keeps leading to the first
    alert, which knows its duplicates."""
    store = MemoryStore()
    publisher = SlackPublisher(client(slack), store)
    await publisher.publish(alert("d1"), await decided(store, "d1"))
    for n, uid in enumerate(["d2", "d3", "d4"], start=2):
        dup = await decided(
            store,
            uid,
            post=False,
            duplicate_of="d1",
            duplicate_count=n,
            fields={"user.email": f"{uid}@example.com"},
        )
        await publisher.publish(alert(uid), dup)
    await publisher.aclose()  # the test drives the flusher itself, deterministically
    await publisher.flusher.flush_pending()
    [first] = top(slack)
    assert group_lines(slack, first.ts) == ["d2", "d3", "d4"]  # each duplicate once
    assert first.metadata == {"event_type": "secbot_alert", "event_payload": {"alert_uuid": "d1"}}
    part = json.dumps(first.blocks)
    assert "alert d1" in part and "*4* alerts" in part and "Open 4" in part
    assert "duplicates: same dedup key" in part and "a@example.com (1)" in part
    [context] = [r for r in slack.replies(CHANNEL, first.ts)
                 if r.ts != first.ts and "New context" in r.text and not r.metadata]
    assert "3 more alerts" in context.text and "d4" in context.text
    # the first message, the context reply, the batches (one or two: the flusher runs meanwhile)
    assert len(slack.calls_to("chat.postMessage")) <= 4
    assert await store.alert_for_message(CHANNEL, first.ts) == "d1"
    record = await AlertRecords(store).load("d1")
    assert record is not None and record.group == ("d1", "d2", "d3", "d4")


async def test_duplicates_of_an_older_secbots_first_alert_stay_in_its_context_reply(
    slack: SlackEmulator,
) -> None:
    """A first alert whose duplicates an older SecBot threaded (members, no group state):
    a new duplicate joins that list and its context reply, never a group whose positions
    would skip it."""
    store = MemoryStore()
    publisher = SlackPublisher(client(slack), store)
    await publisher.publish(alert("o1"), await decided(store, "o1"))
    [first] = top(slack)
    ref = MessageRef(CHANNEL, first.ts)
    await AlertRecords(store).join_group("o1", "o2", ref)  # what the older SecBot stored
    await store.link_message("context:o1", MessageRef(CHANNEL, (await slack_reply(
        slack, first.ts, "New context: 1 more alert")).ts), 3600)
    dup = await decided(store, "o3", post=False, duplicate_of="o1", duplicate_count=3)
    await publisher.publish(alert("o3"), dup)
    await publisher.aclose()
    await publisher.flusher.flush_pending()
    assert await store.group_members("o1") == ["o2", "o3"]
    assert await store.load_group("o1") is None and group_lines(slack, first.ts) == []
    [context] = [r for r in slack.replies(CHANNEL, first.ts) if r.ts != first.ts]
    assert "2 more alerts" in context.text and "o3" in context.text


async def slack_reply(slack: SlackEmulator, thread_ts: str, text: str) -> Any:
    response = await client(slack).chat_postMessage(channel=CHANNEL, thread_ts=thread_ts,
                                                    text=text)
    return next(r for r in slack.replies(CHANNEL, thread_ts) if r.ts == response["ts"])


async def test_post_is_attached_to_the_pipelines_record(slack: SlackEmulator) -> None:
    store = MemoryStore()
    publisher = SlackPublisher(client(slack), store)
    await publisher.publish(alert("m1"), await decided(store, "m1"))
    [message] = top(slack)
    record = await AlertRecords(store).load("m1")
    assert record is not None and record.message_ref == MessageRef(CHANNEL, message.ts)
    assert record.fields == {"user.email": "a@example.com"}  # the pipeline's part is kept
    assert record.message is not None and record.message["text"] == "alert m1"


async def test_auto_closed_alert_gets_the_bots_check_mark(slack: SlackEmulator) -> None:
    await SlackPublisher(client(slack), MemoryStore()).publish(
        alert("c1"), decision("c1", auto_close=True, close_reason="expected_activity")
    )
    [message] = top(slack)
    assert list(message.reactions) == ["white_check_mark"]


async def test_rate_limit_storm_loses_nothing(slack: SlackEmulator) -> None:
    slack.rate_limit("chat.postMessage", times=3, retry_after=1)
    store = MemoryStore()
    publisher = SlackPublisher(client(slack), store)
    for uid in ("r1", "r2"):
        await publisher.publish(alert(uid), decision(uid))
    assert [json.dumps(m.metadata) for m in top(slack)] == [
        json.dumps({"event_type": "secbot_alert", "event_payload": {"alert_uuid": u}})
        for u in ("r1", "r2")
    ]


async def storm(slack: SlackEmulator, store: MemoryStore, count: int) -> SlackPublisher:
    """``count`` alerts of one rule published with a storm threshold of 3, then one flush."""
    publisher = SlackPublisher(client(slack), store, group_threshold=3, group_interval=0.01)
    for i in range(count):
        uid = f"f{i}"
        await AlertRecords(store).save_decided(alert_record(alert(uid), decision(uid)))
        await publisher.publish(alert(uid), decision(uid))
    await publisher.aclose()  # the test drives the flusher itself, deterministically
    await publisher.flusher.flush_pending()
    return publisher


def group_lines(slack: SlackEmulator, header_ts: str) -> list[str]:
    uuids: list[str] = []
    for reply in slack.replies(CHANNEL, header_ts):
        payload = (reply.metadata or {}).get("event_payload") or {}
        if payload.get("role") == "batch":
            uuids.extend(payload["alert_uuids"])
    return uuids


async def test_a_storm_folds_into_one_group_whose_thread_lists_every_alert(
    slack: SlackEmulator,
) -> None:
    store = MemoryStore()
    publisher = await storm(slack, store, 10)
    messages = top(slack)
    assert len(messages) == 4  # three normal posts, then one group header
    header = messages[-1]
    assert header.metadata is not None and header.metadata["event_type"] == "secbot_group"
    assert "*7* alerts" in str(header.blocks) and "storm" in str(header.blocks)
    assert group_lines(slack, header.ts) == [f"f{i}" for i in range(3, 10)]
    owner = await store.alert_for_message(CHANNEL, header.ts)
    assert owner is not None and owner.startswith("group:")
    assert await store.group_members(owner) == [f"f{i}" for i in range(3, 10)]
    # Published again (a redelivery): nothing new is shown anywhere.
    await publisher.publish(alert("f9"), decision("f9"))
    await publisher.flusher.flush_pending()
    assert group_lines(slack, header.ts) == [f"f{i}" for i in range(3, 10)]
    assert len(top(slack)) == 4


async def test_a_batch_slack_refuses_for_size_is_split_and_every_member_still_listed(
    slack: SlackEmulator,
) -> None:
    table = slack.web.methods.table
    handler, kind = table["chat.postMessage"]

    def refuse_big(params: Any) -> dict[str, Any]:
        meta = params.structured("metadata", "invalid_metadata_format") or {}
        if len((meta.get("event_payload") or {}).get("alert_uuids") or []) > 2 and (
                meta["event_payload"].get("role") == "batch"):
            raise SlackError("msg_too_long")
        return dict(handler(params))

    table["chat.postMessage"] = (refuse_big, kind)
    store = MemoryStore()
    await storm(slack, store, 10)
    header = top(slack)[-1]
    assert group_lines(slack, header.ts) == [f"f{i}" for i in range(3, 10)]
    assert all(len(((r.metadata or {}).get("event_payload") or {}).get("alert_uuids", [])) <= 2
               for r in slack.replies(CHANNEL, header.ts))


async def test_correction_reopens_the_status_line_and_takes_back_the_check(
    slack: SlackEmulator,
) -> None:
    store = MemoryStore()
    publisher = SlackPublisher(client(slack), store)
    closed = decision("k1", auto_close=True, close_reason="expected_activity")
    await publisher.publish(alert("k1"), closed)
    await publisher.correct(alert("k1"), closed, "auto-close failed, alert left open: 503")
    [message] = top(slack)
    assert not message.reactions
    assert "auto-close failed, alert left open: 503" in json.dumps(message.blocks)
    # No record was saved (as if Redis lost it): the decision's message was corrected. With a
    # record, the correction is remembered as the alert's status and message.
    await publisher.publish(alert("k2"), await decided(store, "k2", auto_close=True))
    await publisher.correct(alert("k2"), closed, "left open: 503")
    record = await AlertRecords(store).load("k2")
    assert record is not None and record.status == "open"
    assert "left open: 503" in json.dumps(record.message)


async def test_content_slack_refuses_is_replaced_by_a_plain_pointer_not_retried_forever(
    slack: SlackEmulator,
) -> None:
    store = MemoryStore()
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    bad = decision("bad-1", message={"text": "x", "blocks": [too_long]})
    await SlackPublisher(client(slack), store).publish(alert("bad-1"), bad)
    [message] = top(slack)
    assert "Slack refused the full message (invalid_blocks)" in message.text
    assert message.metadata == {"event_type": "secbot_alert",
                                "event_payload": {"alert_uuid": "bad-1"}}
    assert await store.message_for_alert("bad-1") is not None
