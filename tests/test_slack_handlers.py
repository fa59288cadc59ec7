"""Slack listeners when the state store is down: the person is told, and what was half-done
is finished by the redelivered event."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from secbot.chat.app import SlackHandlers
from secbot.domain.record import AlertRecord
from secbot.domain.status import AuditAction
from secbot.siem.embedded import EmbeddedSiem
from secbot.store.base import AuditEntry, MessageRef, StoreUnavailable
from secbot.store.memory import MemoryStore
from secbot.store.records import AlertRecords
from secbot.triage.people import Directory, Triagers
from secbot.triage.reactions import ReactionTriage
from secbot.triage.saga import SideEffects
from secbot.triage.status_change import StatusChanger
from secbot_emulators.slack import SlackEmulator


class DownStore(MemoryStore):
    async def claim_post(self, uuid: str, ttl: int) -> bool:
        raise StoreUnavailable("Error 111 connecting to 127.0.0.1:6379")


class Unused:
    async def handle(self, event: Any) -> None:
        raise AssertionError("must not be reached while the store is down")

    async def run(self, text: str, ctx: Any) -> None:
        raise AssertionError("must not be reached while the store is down")


async def test_reaction_and_command_during_a_store_outage_get_an_ephemeral_answer() -> None:
    async with SlackEmulator.running() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        handlers = SlackHandlers(client, DownStore(), Unused(), Unused())  # type: ignore[arg-type]
        event = {
            "type": "reaction_added",
            "user": "U0TRIAGER",
            "reaction": "x",
            "item": {"type": "message", "channel": "C0SECALERTS", "ts": "1.0"},
        }
        await handlers.on_reaction_added(event, {"event_id": "Ev1"})
        mention = {
            "type": "app_mention",
            "user": "U0TRIAGER",
            "text": "<@U0SECBOT> alert",
            "channel": "C0SECALERTS",
            "ts": "2.0",
            "thread_ts": "1.0",
        }
        await handlers.on_app_mention(mention, {"event_id": "Ev2"})
        notes = [e for e in slack.ephemeral if e.get("user") == "U0TRIAGER"]
    assert len(notes) == 2
    assert all("cannot reach its state store" in n["text"] for n in notes)


class AuditDown(MemoryStore):
    """The audit stream refuses writes while ``down`` (Redis failing over mid-change)."""

    down = True

    async def append_audit(self, entry: AuditEntry, *, once_key: str | None = None) -> str | None:
        if self.down:
            raise StoreUnavailable("Error 111 connecting to 127.0.0.1:6379")
        return await super().append_audit(entry, once_key=once_key)


async def test_audit_failing_after_the_siem_changed_is_told_and_the_redelivery_finishes() -> None:
    async with SlackEmulator.running() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        siem, store = EmbeddedSiem(), AuditDown()
        await siem.insert([{"kibana.alert.uuid": "h1", "@timestamp": "2026-11-01T10:00:00Z",
                            "kibana.alert.workflow_status": "open",
                            "kibana.alert.rule.name": "Rule"}])
        message = {"text": "alert h1", "blocks": [{"type": "section", "text": {
            "type": "mrkdwn", "text": "alert h1"}}]}
        posted = await client.chat_postMessage(channel="C0SECALERTS", **message)
        ref = MessageRef("C0SECALERTS", str(posted["ts"]))
        records = AlertRecords(store)
        await records.save_decided(AlertRecord(uuid="h1", id="h1", index="i", rule_id="r1",
                                               rule_name="Rule", severity="high", timestamp=""))
        await store.link_message("h1", ref, 60)
        await records.attach_message("h1", ref, message)
        changer = StatusChanger(client, siem, store, Triagers(client, ["U0TRIAGER"]),
                                Directory(client),
                                side_effects=SideEffects(attempts=2, timeout=2, pause=0.01))
        handlers = SlackHandlers(client, store, ReactionTriage(changer, store),
                                 Unused())  # type: ignore[arg-type]
        event = {"type": "reaction_added", "user": "U0TRIAGER", "reaction": "x",
                 "item": {"type": "message", "channel": ref.channel, "ts": ref.ts}}
        await handlers.on_reaction_added(event, {"event_id": "Ev9"})
        [note] = [e["text"] for e in slack.ephemeral if e.get("user") == "U0TRIAGER"]
        assert "could not write the audit entry" in note
        closed = await siem.get("h1")
        assert closed is not None and closed.workflow_status == "closed"

        store.down = False
        await handlers.on_reaction_added(event, {"event_id": "Ev9"})  # Slack redelivers
        [entry] = await store.read_audit("h1")
        assert (entry.action, entry.reason, entry.actor) == (
            AuditAction.CLOSED, "false_positive", "alice@example.com")
        assert "Closed by <@U0TRIAGER>" in json.dumps(slack.message(ref.channel, ref.ts).blocks)
        await handlers.on_reaction_added(event, {"event_id": "Ev10"})  # a third ✅: a no-op
        assert len(await store.read_audit("h1")) == 1
