"""Slack listeners when the state store is down: the person is told, nothing is half-done."""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from secbot.chat.app import SlackHandlers
from secbot.store.base import StoreUnavailable
from secbot.store.memory import MemoryStore
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
