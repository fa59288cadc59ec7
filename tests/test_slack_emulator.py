"""Slack emulator Web API fidelity, proven with the real slack_sdk clients (not hand-made HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from secbot_emulators.slack import SlackEmulator, notifications

CHANNEL = "C0SECALERTS"
METADATA = {"event_type": "secbot_alert", "event_payload": {"alert_uuid": "a-1"}}


@pytest.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator.running(ack_timeout=0.5, server_ping_interval=None) as emulator:
        yield emulator


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)


async def error_of(call: Any) -> str:
    """The Slack error code a client call raised."""
    with pytest.raises(SlackApiError) as info:
        await call
    assert info.value.response.status_code == 200  # Slack errors are HTTP 200
    return str(info.value.response["error"])


async def test_auth_test_and_urls(emu: SlackEmulator, client: AsyncWebClient) -> None:
    assert emu.api_url.endswith("/api/") and emu.ws_url.startswith("ws://")
    response = await client.auth_test()
    assert response["user_id"] == "U0SECBOT" and response["bot_id"] == "B0SECBOT"
    assert response["team_id"] == "T0SECBOT"
    assert "chat:write" in response.headers["x-oauth-scopes"]  # bolt reads this header


async def test_post_update_thread_and_permalink(emu: SlackEmulator, client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*alert*"}}]
    posted = await client.chat_postMessage(
        channel=CHANNEL, text="alert", blocks=blocks, metadata=METADATA
    )
    ts = posted["ts"]
    assert posted["channel"] == CHANNEL and posted["message"]["bot_id"] == "B0SECBOT"
    assert posted["message"]["blocks"] == blocks
    call = emu.calls_to("chat.postMessage")[0]
    assert call.content_type == "application/json" and call.params["metadata"] == METADATA

    updated = await client.chat_update(
        channel=CHANNEL, ts=ts, text="closed", blocks=[{"type": "divider"}]
    )
    assert updated["ts"] == ts and updated["message"]["text"] == "closed"
    assert emu.message(CHANNEL, ts).edited is not None

    reply = await client.chat_postMessage(channel=CHANNEL, thread_ts=ts, text="context")
    broadcast = await client.chat_postMessage(
        channel=CHANNEL, thread_ts=ts, text="loud", reply_broadcast=True
    )
    replies = await client.conversations_replies(channel=CHANNEL, ts=ts)
    assert [m["ts"] for m in replies["messages"]] == [ts, reply["ts"], broadcast["ts"]]
    assert replies["messages"][0]["reply_count"] == 2
    assert replies["messages"][1]["parent_user_id"] == "U0SECBOT"
    history = await client.conversations_history(channel=CHANNEL)
    assert [m["ts"] for m in history["messages"]] == [broadcast["ts"], ts]  # newest first
    assert history["messages"][0]["subtype"] == "thread_broadcast"

    link = await client.chat_getPermalink(channel=CHANNEL, message_ts=reply["ts"])
    assert link["permalink"].endswith(
        f"/archives/{CHANNEL}/p{reply['ts'].replace('.', '')}?thread_ts={ts}&cid={CHANNEL}"
    )


async def test_history_metadata_pagination_and_range(client: AsyncWebClient) -> None:
    stamps = []
    for i in range(5):
        meta = {"event_type": "secbot_alert", "event_payload": {"alert_uuid": f"u{i}"}}
        stamps.append(
            (await client.chat_postMessage(channel=CHANNEL, text=f"m{i}", metadata=meta))["ts"]
        )
    plain = await client.conversations_history(channel=CHANNEL, limit=10)
    assert all("metadata" not in m for m in plain["messages"])  # strict: flag required

    seen: list[str] = []
    pages = 0
    first = await client.conversations_history(channel=CHANNEL, limit=2, include_all_metadata=True)
    assert first["has_more"] is True and first["response_metadata"]["next_cursor"]
    async for page in first:  # slack_sdk follows response_metadata.next_cursor
        pages += 1
        seen += [m["metadata"]["event_payload"]["alert_uuid"] for m in page["messages"]]
    assert pages == 3 and seen == ["u4", "u3", "u2", "u1", "u0"]

    window = await client.conversations_history(channel=CHANNEL, oldest=stamps[1], latest=stamps[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]  # bounds exclusive
    inclusive = await client.conversations_history(
        channel=CHANNEL, oldest=stamps[1], latest=stamps[3], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["m3", "m2", "m1"]
    assert (
        await error_of(client.conversations_history(channel=CHANNEL, cursor="garbage"))
        == "invalid_cursor"
    )


async def test_reactions(emu: SlackEmulator, client: AsyncWebClient) -> None:
    ts = (await client.chat_postMessage(channel=CHANNEL, text="x"))["ts"]
    await client.reactions_add(channel=CHANNEL, name="white_check_mark", timestamp=ts)
    assert (
        await error_of(client.reactions_add(channel=CHANNEL, name="white_check_mark", timestamp=ts))
        == "already_reacted"
    )
    emu.user_reacts("U0TRIAGER", "white_check_mark", CHANNEL, ts)
    got = await client.reactions_get(channel=CHANNEL, timestamp=ts)
    assert got["type"] == "message" and got["channel"] == CHANNEL
    assert got["message"]["reactions"] == [
        {"name": "white_check_mark", "users": ["U0SECBOT", "U0TRIAGER"], "count": 2}
    ]
    await client.reactions_remove(channel=CHANNEL, name="white_check_mark", timestamp=ts)
    assert (
        await error_of(
            client.reactions_remove(channel=CHANNEL, name="white_check_mark", timestamp=ts)
        )
        == "no_reaction"
    )
    assert (
        await error_of(client.reactions_add(channel=CHANNEL, name="eyes", timestamp="1.000001"))
        == "message_not_found"
    )
    call = emu.calls_to("reactions.add")[0]
    assert call.http_method == "POST" and call.content_type == ""  # async: query string
    assert call.params == {"channel": CHANNEL, "name": "white_check_mark", "timestamp": ts}


async def test_users_and_usergroups(client: AsyncWebClient) -> None:
    alice = await client.users_lookupByEmail(email="alice@example.com")
    assert alice["user"]["id"] == "U0TRIAGER"
    assert alice["user"]["profile"]["email"] == "alice@example.com"
    info = await client.users_info(user="U0VIEWER")
    assert info["user"]["name"] == "bob" and info["user"]["is_bot"] is False
    bot = await client.users_info(user="U0SECBOT")
    assert bot["user"]["is_bot"] is True and bot["user"]["profile"]["bot_id"] == "B0SECBOT"
    assert await error_of(client.users_lookupByEmail(email="eve@example.com")) == (
        "users_not_found"
    )
    assert await error_of(client.users_info(user="U0NOBODY")) == "user_not_found"
    group = await client.usergroups_users_list(usergroup="S0TRIAGE")
    assert group["users"] == ["U0TRIAGER"]
    assert await error_of(client.usergroups_users_list(usergroup="S0NONE")) == ("no_such_subteam")


async def test_errors_look_like_slack(emu: SlackEmulator, client: AsyncWebClient) -> None:
    assert await error_of(client.chat_postMessage(channel="C0NOPE", text="x")) == (
        "channel_not_found"
    )
    with pytest.warns(UserWarning, match="text"):  # the SDK warns too, before sending
        assert await error_of(client.chat_postMessage(channel=CHANNEL)) == "no_text"
    assert (
        await error_of(client.chat_postMessage(channel=CHANNEL, text="x", thread_ts="1.000001"))
        == "thread_not_found"
    )
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=emu.api_url)
    assert await error_of(wrong.auth_test()) == "invalid_auth"
    anonymous = AsyncWebClient(base_url=emu.api_url)
    assert await error_of(anonymous.auth_test()) == "not_authed"
    app_token = AsyncWebClient(token=emu.app_token, base_url=emu.api_url)
    assert await error_of(app_token.chat_postMessage(channel=CHANNEL, text="x")) == (
        "not_allowed_token_type"
    )
    user_ts = emu.user_posts("U0TRIAGER", "hello", CHANNEL)
    assert await error_of(client.chat_update(channel=CHANNEL, ts=user_ts, text="x")) == (
        "cant_update_message"
    )
    assert emu.calls[-1].error == "cant_update_message"


async def test_block_kit_limits_are_enforced(client: AsyncWebClient) -> None:
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "a" * 3001}}]
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel=CHANNEL, text="x", blocks=too_long)
    assert info.value.response["error"] == "invalid_blocks"
    assert info.value.response["errors"] == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]
    header = [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]
    assert await error_of(client.chat_postMessage(channel=CHANNEL, text="x", blocks=header)) == (
        "invalid_blocks"
    )
    many = [{"type": "divider"}] * 51
    assert await error_of(client.chat_postMessage(channel=CHANNEL, text="x", blocks=many)) == (
        "invalid_blocks"
    )


async def test_rate_limit_is_retried_by_the_sdk_handler(emu: SlackEmulator) -> None:
    plain = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    emu.rate_limit("chat.postMessage", times=1, retry_after=1)
    with pytest.raises(SlackApiError) as info:
        await plain.chat_postMessage(channel=CHANNEL, text="x")
    assert info.value.response.status_code == 429
    assert info.value.response["error"] == "ratelimited"
    assert info.value.response.headers["Retry-After"] == "1"  # an integer, as the SDK needs

    retrying = AsyncWebClient(
        token=emu.bot_token,
        base_url=emu.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    emu.rate_limit("chat.postMessage", times=1, retry_after=0)
    response = await retrying.chat_postMessage(channel=CHANNEL, text="after retry")
    assert response["ok"]
    statuses = [c.status for c in emu.calls_to("chat.postMessage")]
    assert statuses == [429, 429, 200]
    assert [m.text for m in emu.messages(CHANNEL)] == ["after retry"]  # posted exactly once


async def test_server_error_injection(emu: SlackEmulator) -> None:
    retrying = AsyncWebClient(
        token=emu.bot_token,
        base_url=emu.api_url,
        retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1)],
    )
    emu.fail("users.info", times=1, status=503)
    response = await retrying.users_info(user="U0TRIAGER")
    assert response["user"]["id"] == "U0TRIAGER"
    assert [c.status for c in emu.calls_to("users.info")] == [503, 200]
    emu.fail("*", times=1, status=500)
    with pytest.raises(SlackApiError) as info:
        await AsyncWebClient(token=emu.bot_token, base_url=emu.api_url).auth_test()
    assert info.value.response.status_code == 500


async def test_sync_client_form_encoded(emu: SlackEmulator) -> None:
    sync = WebClient(token=emu.bot_token, base_url=emu.api_url)
    # the sync client blocks: run it off the loop that serves the emulator
    posted = await asyncio.to_thread(sync.chat_postMessage, channel=CHANNEL, text="sync")
    await asyncio.to_thread(
        sync.reactions_add, channel=CHANNEL, name="eyes", timestamp=posted["ts"]
    )
    found = await asyncio.to_thread(sync.users_lookupByEmail, email="alice@example.com")
    assert found["user"]["id"] == "U0TRIAGER"
    call = emu.calls_to("reactions.add")[0]
    assert call.http_method == "POST"
    assert call.content_type == "application/x-www-form-urlencoded"
    assert emu.message(CHANNEL, posted["ts"]).reactions == {"eyes": ["U0SECBOT"]}
    # form-encoded JSON arguments (blocks as a JSON string) are parsed too
    raw = await asyncio.to_thread(
        sync.api_call,
        "chat.update",
        params={
            "channel": CHANNEL,
            "ts": posted["ts"],
            "text": "edited",
            "blocks": '[{"type": "divider"}]',
        },
    )
    assert raw["message"]["blocks"] == [{"type": "divider"}]


async def test_ephemeral_is_not_in_history(emu: SlackEmulator, client: AsyncWebClient) -> None:
    response = await client.chat_postEphemeral(channel=CHANNEL, user="U0VIEWER", text="not allowed")
    assert response["message_ts"]
    assert emu.ephemeral[0]["user"] == "U0VIEWER" and emu.ephemeral[0]["text"] == "not allowed"
    assert (await client.conversations_history(channel=CHANNEL))["messages"] == []
    assert (
        await error_of(client.chat_postEphemeral(channel=CHANNEL, user="U0NOBODY", text="x"))
        == "user_not_found"
    )


async def test_channel_membership(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.add_channel("C0PRIVATE", "private", members=["U0TRIAGER"])
    assert await error_of(client.chat_postMessage(channel="C0PRIVATE", text="x")) == (
        "not_in_channel"
    )


async def test_apps_connections_open_needs_the_app_token(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    assert await error_of(client.apps_connections_open(app_token=emu.bot_token)) == (
        "not_allowed_token_type"
    )
    opened = await client.apps_connections_open(app_token=emu.app_token)
    assert opened["url"].startswith(emu.ws_url + "?ticket=")


async def test_post_by_channel_name_and_stored_notifications(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="#sec-alerts", text="<!channel> &lt;!here&gt;")
    assert posted["channel"] == CHANNEL
    assert emu.message(CHANNEL, posted["ts"]).notifications() == ["!channel"]
    assert await error_of(client.conversations_history(channel="#sec-alerts")) == (
        "channel_not_found"
    )  # only chat.postMessage resolves names


def test_notifications_detects_unescaped_control_sequences() -> None:
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "hi <!here>"}},
        {"type": "section", "text": {"type": "plain_text", "text": "<!channel>"}},
    ]
    assert notifications("<@U0VIEWER> &lt;!channel&gt;", blocks) == ["@U0VIEWER", "!here"]
    assert notifications("&lt;!channel&gt; &lt;http://evil|x&gt;") == []
