"""Slack emulator Socket Mode fidelity with the real bolt AsyncApp + AsyncSocketModeHandler."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from secbot_emulators.slack import SlackEmulator, reaction_removed

CHANNEL = "C0SECALERTS"
PING_INTERVAL = 0.5  # the client's ping interval; stale after 4x without a pong


@dataclass
class Bot:
    """A bolt app connected to the emulator, recording what its handlers and socket saw."""

    emu: SlackEmulator
    client: AsyncWebClient
    handler: AsyncSocketModeHandler
    events: list[dict[str, Any]] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)  # every frame the client got

    async def post(self, text: str = "alert") -> str:
        return str((await self.client.chat_postMessage(channel=CHANNEL, text=text))["ts"])


async def connect_bot(emu: SlackEmulator) -> Bot:
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    app = AsyncApp(client=client)
    handler = AsyncSocketModeHandler(app, emu.app_token, ping_interval=PING_INTERVAL)
    bot = Bot(emu, client, handler)

    @app.event("reaction_added")
    async def on_reaction(event: dict[str, Any]) -> None:
        bot.events.append(event)

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any) -> None:
        bot.events.append(event)
        await say(text="on it", thread_ts=event.get("thread_ts") or event["ts"])

    async def record(message: aiohttp.WSMessage) -> None:  # every TEXT frame, as received
        bot.frames.append(json.loads(message.data))

    handler.client.on_message_listeners.append(record)
    await handler.connect_async()  # calls apps.connections.open on the emulator
    return bot


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # the Socket Mode client would route ws://127.0.0.1 through an env proxy
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator.running(
        ack_timeout=0.5, server_ping_interval=0.2, random_seed=7
    ) as emulator:
        yield emulator


@pytest.fixture
async def bot(emu: SlackEmulator) -> AsyncIterator[Bot]:
    connected = await connect_bot(emu)
    await emu.wait_for_connections(1)
    yield connected
    await connected.handler.close_async()


def envelopes(bot: Bot, event_id: str) -> list[dict[str, Any]]:
    return [f for f in bot.frames if f.get("payload", {}).get("event_id") == event_id]


async def test_reaction_added_delivered_and_acked(bot: Bot) -> None:
    emu = bot.emu
    ts = await bot.post()
    envelope_id = emu.user_reacts("U0TRIAGER", "white_check_mark", CHANNEL, ts)
    assert await emu.wait_for_ack(envelope_id, 3) == {"envelope_id": envelope_id}
    assert bot.events == [
        {
            "type": "reaction_added",
            "user": "U0TRIAGER",
            "reaction": "white_check_mark",
            "item": {"type": "message", "channel": CHANNEL, "ts": ts},
            "item_user": "U0SECBOT",
            "event_ts": bot.events[0]["event_ts"],
        }
    ]
    frame = envelopes(bot, emu.delivery(envelope_id).event_id)[0]
    assert frame["envelope_id"] == envelope_id and frame["type"] == "events_api"
    assert (frame["accepts_response_payload"], frame["retry_attempt"], frame["retry_reason"]) == (
        False,
        0,
        "",
    )
    payload = frame["payload"]
    assert payload["type"] == "event_callback" and payload["api_app_id"] == "A0SECBOT"
    assert payload["team_id"] == "T0SECBOT" and payload["event_id"].startswith("Ev")
    assert isinstance(payload["event_time"], int)
    assert payload["authorizations"][0]["user_id"] == "U0SECBOT"
    hello = bot.frames[0]
    assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": "A0SECBOT"}
    assert hello["debug_info"]["approximate_connection_time"] == 18060


async def test_app_mention_in_thread_gets_threaded_reply(bot: Bot) -> None:
    emu = bot.emu
    parent = await bot.post()
    ts = emu.user_mentions_bot("U0TRIAGER", "@SecBot status please", CHANNEL, parent)
    assert emu.last_envelope_id is not None
    await emu.wait_for_ack(emu.last_envelope_id, 3)
    await until(lambda: len(emu.replies(CHANNEL, parent)) == 2)
    mention = bot.events[0]
    assert mention["type"] == "app_mention" and mention["ts"] == ts
    assert mention["text"] == "<@U0SECBOT> status please" and mention["thread_ts"] == parent
    assert mention["blocks"][0]["type"] == "rich_text"
    reply = emu.replies(CHANNEL, parent)[1]
    assert (reply.text, reply.user, reply.bot_id) == ("on it", "U0SECBOT", "B0SECBOT")


async def test_unacked_event_is_redelivered_with_retry_attempt(bot: Bot) -> None:
    emu = bot.emu
    # bolt has no reaction_removed listener: it answers 404 and sends no ack
    envelope_id = emu.inject_event(
        reaction_removed("U0TRIAGER", "eyes", CHANNEL, "1700000000.000100")
    )
    delivery = await emu.wait_for_settled(envelope_id, timeout=5)
    assert delivery.failed and delivery.attempts == 4  # first try + 3 retries
    seen = envelopes(bot, delivery.event_id)
    assert [f["retry_attempt"] for f in seen] == [0, 1, 2, 3]
    assert [f["retry_reason"] for f in seen] == ["", "timeout", "timeout", "timeout"]
    assert len({f["envelope_id"] for f in seen}) == 4  # same event_id, new envelope each time


async def test_bot_reaction_comes_back_as_an_ignored_self_event(bot: Bot) -> None:
    emu = bot.emu
    ts = await bot.post()
    await bot.client.reactions_add(channel=CHANNEL, name="white_check_mark", timestamp=ts)
    await until(lambda: emu.deliveries_of("reaction_added"))
    delivery = emu.deliveries_of("reaction_added")[0]
    assert delivery.payload["event"]["user"] == "U0SECBOT"
    await emu.wait_for_ack(delivery.first_envelope_id, 3)  # bolt acks self-events...
    assert bot.events == []  # ...and drops them


async def test_refresh_requested_reconnects_and_no_event_is_lost(bot: Bot) -> None:
    emu = bot.emu
    first = emu.socket.history[0]
    assert len(emu.calls_to("apps.connections.open")) == 1
    assert await emu.disconnect_all("refresh_requested") == 1
    await emu.wait_for_connections(1)
    assert first.closed.is_set() and len(emu.calls_to("apps.connections.open")) >= 2
    assert {
        "type": "disconnect",
        "reason": "refresh_requested",
        "debug_info": {"host": first.host},
    } in bot.frames
    ts = await bot.post()
    envelope_id = emu.user_reacts("U0TRIAGER", "eyes", CHANNEL, ts)
    await emu.wait_for_ack(envelope_id, 3)
    assert [e["reaction"] for e in bot.events] == ["eyes"]


async def test_event_during_network_drop_arrives_after_reconnect(bot: Bot) -> None:
    emu = bot.emu
    ts = await bot.post()
    assert await emu.drop_connections() == 1
    envelope_id = emu.user_reacts("U0TRIAGER", "x", CHANNEL, ts)  # no socket open now
    await emu.wait_for_ack(envelope_id, 8)
    assert [e["reaction"] for e in bot.events] == ["x"]
    assert len(emu.calls_to("apps.connections.open")) >= 2  # reconnects ask for a new URL


async def test_ping_pong_keeps_the_connection_alive(bot: Bot) -> None:
    emu = bot.emu
    await asyncio.sleep(4 * PING_INTERVAL + 0.6)  # past the client's staleness threshold
    sdk_pings = [p for p in emu.socket.pings if p.startswith(b"sdk-ping-pong:")]
    assert len(sdk_pings) >= 3
    assert len(emu.socket.history) == 1 and len(emu.calls_to("apps.connections.open")) == 1
    conn = emu.socket.history[0]
    assert conn.pongs and all(p == f"Ping from {conn.host}".encode() for p in conn.pongs)
    ts = await bot.post()
    await emu.wait_for_ack(emu.user_reacts("U0TRIAGER", "eyes", CHANNEL, ts), 3)


async def test_unanswered_pings_make_the_client_reconnect(bot: Bot) -> None:
    emu = bot.emu
    emu.socket.answer_pings = False
    await until(lambda: len(emu.socket.history) >= 2, timeout=8)
    emu.socket.answer_pings = True
    assert len(emu.calls_to("apps.connections.open")) >= 2
    await emu.wait_for_connections(1)
    ts = await bot.post()
    await emu.wait_for_ack(emu.user_reacts("U0TRIAGER", "eyes", CHANNEL, ts), 5)


async def test_connections_are_recycled_after_their_lifetime() -> None:
    async with SlackEmulator.running(ack_timeout=0.5, connection_lifetime=0.3) as emu:
        bot = await connect_bot(emu)
        try:
            await until(lambda: len(emu.socket.history) >= 3, timeout=5)
            assert bot.frames[0]["debug_info"]["approximate_connection_time"] == 0
            assert any(f.get("reason") == "refresh_requested" for f in bot.frames)
            await emu.wait_for_connections(1)
            ts = await bot.post()
            await emu.wait_for_ack(emu.user_reacts("U0TRIAGER", "eyes", CHANNEL, ts), 5)
            assert [e["reaction"] for e in bot.events] == ["eyes"]
        finally:
            await bot.handler.close_async()


async def test_events_are_spread_over_replicas(emu: SlackEmulator) -> None:
    replicas = [await connect_bot(emu), await connect_bot(emu)]
    try:
        await emu.wait_for_connections(2)
        ts = await replicas[0].post()
        ids = [
            emu.user_reacts(user, name, CHANNEL, ts)
            for name in ("eyes", "x", "tada")
            for user in ("U0TRIAGER", "U0VIEWER", "U0SECBOT")
        ]
        for envelope_id in ids:
            await emu.wait_for_ack(envelope_id, 3)
        human = [r.events for r in replicas]
        assert all(human) and sum(map(len, human)) == 6  # the bot's own 3 were ignored
        assert {c for d in emu.deliveries for c in d.connections} == {1, 2}
    finally:
        for replica in replicas:
            await replica.handler.close_async()


async def test_raw_protocol_hello_tickets_and_text_ping(emu: SlackEmulator) -> None:
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    url = (await client.apps_connections_open(app_token=emu.app_token))["url"]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json()
            assert hello["type"] == "hello" and hello["num_connections"] == 1
            await ws.send_json({"type": "ping", "id": 7})
            assert await ws.receive_json() == {"type": "pong", "id": 7, "reply_to": 7}
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url)  # tickets are single use
        assert info.value.status == 401


async def test_too_many_websockets() -> None:
    async with SlackEmulator.running(max_connections=1) as emu:
        client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)

        async def url() -> str:
            return str((await client.apps_connections_open(app_token=emu.app_token))["url"])

        async with aiohttp.ClientSession() as session, session.ws_connect(await url()) as first:
            assert (await first.receive_json())["type"] == "hello"
            async with session.ws_connect(await url()) as second:
                refused = await second.receive_json()
                assert refused["type"] == "disconnect"
                assert refused["reason"] == "too_many_websockets"
                assert (await second.receive()).type == aiohttp.WSMsgType.CLOSE


async def test_demo_json_api(emu: SlackEmulator) -> None:
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    ts = (await client.chat_postMessage(channel=CHANNEL, text="alert"))["ts"]
    base = f"{emu.base_url}/_emulator"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/channels") as resp:
            channels = (await resp.json())["channels"]
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert {"id": CHANNEL, "name": "sec-alerts", "topic": "", "message_count": 1} in channels
        react = {"user": "U0TRIAGER", "reaction": "eyes", "channel": CHANNEL, "ts": ts}
        async with http.post(f"{base}/react", json=react) as resp:
            assert (await resp.json())["envelope_id"]
        mention = {"user": "U0TRIAGER", "text": "@SecBot why?", "channel": CHANNEL, "thread_ts": ts}
        async with http.post(f"{base}/mention", json=mention) as resp:
            reply_ts = (await resp.json())["ts"]
        async with http.get(f"{base}/messages", params={"channel": CHANNEL}) as resp:
            body = await resp.json()
        message = body["messages"][0]
        assert message["reactions"] == [{"name": "eyes", "users": ["U0TRIAGER"], "count": 1}]
        assert message["replies"][0]["ts"] == reply_ts
        assert message["replies"][0]["text"] == "<@U0SECBOT> why?"
        assert message["replies"][0]["user_name"] == "Alice Triager"
        async with http.post(f"{base}/react", json={**react, "channel": "C0NOPE"}) as resp:
            assert resp.status == 404 and (await resp.json())["error"] == "channel_not_found"
        async with http.options(f"{base}/react") as resp:
            assert resp.status == 204
    assert [d.payload["event"]["type"] for d in emu.deliveries] == ["reaction_added", "app_mention"]


async def test_extra_routes_share_the_port() -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="demo page")

    async with (
        SlackEmulator.running(routes=[web.get("/", page)]) as emu,
        aiohttp.ClientSession() as http,
        http.get(f"{emu.base_url}/") as resp,
    ):
        assert await resp.text() == "demo page"
    async with (
        SlackEmulator.running() as emu,
        aiohttp.ClientSession() as http,
        http.get(f"{emu.base_url}/") as resp,
    ):
        assert "/_emulator/" in await resp.text()  # placeholder until a page is installed


async def test_command_line_server() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "secbot_emulators.slack",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        client = AsyncWebClient(token=info["bot_token"], base_url=info["api_url"])
        assert (await client.auth_test())["user_id"] == "U0SECBOT"
    finally:
        proc.terminate()
        await proc.wait()
