"""Slack Web API method implementations for the emulator (transport-free).

Each method takes merged request :class:`Params` and returns the success body, or raises
:class:`~secbot_emulators.slack_state.SlackError` with Slack's error code. Response shapes
follow the official examples in ``protocols/slack_openapi_examples.json`` and
``protocols/slack_web_api.md``. Deliberate strictness, so a bot bug fails here first:

- ``conversations.history`` / ``replies`` return message ``metadata`` only with
  ``include_all_metadata`` (DESIGN.md §10's crash recovery must ask for it);
- ``chat.postMessage`` validates Block Kit limits (``invalid_blocks``) and rejects an unknown
  ``thread_ts`` with ``thread_not_found``;
- the bot can edit only its own messages (``cant_update_message``) and post only where it is
  a member (``not_in_channel``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from secbot_emulators import slack_events
from secbot_emulators.slack_blocks import MAX_MESSAGE_TEXT, validate_blocks
from secbot_emulators.slack_state import JsonDict, Message, SlackError, Workspace, ts_key

TokenKind = Literal["bot", "app"]
EventSink = Callable[[JsonDict], object]  # schedules an Events API delivery
_EMOJI_NAME = re.compile(r"^[a-z0-9_+'-]+(::skin-tone-[2-6])?$")


@dataclass
class Params:
    """Merged query-string, form and JSON parameters of one request."""

    data: dict[str, Any]
    host: str = "127.0.0.1"

    def opt(self, name: str) -> str | None:
        value = self.data.get(name)
        return None if value is None else str(value)

    def req(self, name: str, error: str) -> str:
        value = self.opt(name)
        if not value:
            raise SlackError(error)
        return value

    def flag(self, name: str) -> bool:
        return str(self.data.get(name, "")).lower() in ("1", "true")

    def number(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.data.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(str(raw))
        except ValueError as exc:
            raise SlackError("invalid_limit") from exc
        return max(low, min(high, value)) if value > 0 else default

    def structured(self, name: str, error: str) -> Any:
        """A JSON-typed argument: native in JSON bodies, a JSON string in forms."""
        value = self.data.get(name)
        if isinstance(value, str):
            if not value:
                return None
            try:
                return json.loads(value)
            except ValueError as exc:
                raise SlackError(error) from exc
        return value


def encode_cursor(ts: str) -> str:
    """Slack-style opaque cursor: base64 of ``next_ts:<ts digits>``."""
    return base64.b64encode(f"next_ts:{ts.replace('.', '')}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SlackError("invalid_cursor") from exc
    prefix, _, digits = raw.partition(":")
    if prefix != "next_ts" or not digits.isdigit() or len(digits) <= 6:
        raise SlackError("invalid_cursor")
    return int(digits[:-6]), int(digits[-6:])


def _in_range(ts: str, params: Params) -> bool:
    """``oldest``/``latest`` bounds, exclusive unless ``inclusive``."""
    key, inclusive = ts_key(ts), params.flag("inclusive")
    for name, before in (("oldest", False), ("latest", True)):
        bound = params.opt(name)
        if not bound:
            continue
        try:
            limit = ts_key(bound)
        except ValueError as exc:
            raise SlackError("invalid_ts_" + name) from exc
        if (key > limit if before else key < limit) or (key == limit and not inclusive):
            return False
    return True


def _page(messages: list[Message], params: Params, default_limit: int, *,
          newest_first: bool) -> JsonDict:
    """Cursor pagination over an ordered message list."""
    limit = params.number("limit", default_limit, 1, 999)
    cursor = params.opt("cursor")
    if cursor:
        start = decode_cursor(cursor)
        messages = [m for m in messages
                    if (ts_key(m.ts) <= start if newest_first else ts_key(m.ts) >= start)]
    page, rest = messages[:limit], messages[limit:]
    metadata = params.flag("include_all_metadata")
    return {"ok": True, "messages": [m.to_api(include_metadata=metadata) for m in page],
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": encode_cursor(rest[0].ts) if rest else ""}}


class WebMethods:
    """The supported methods: ``table[name] -> (handler, token kind)``."""

    def __init__(self, workspace: Workspace, *, emit: EventSink,
                 socket_url: Callable[[str], str], subscriptions: set[str],
                 bot_self_events: bool = True) -> None:
        self.ws = workspace
        self.emit = emit
        self.socket_url = socket_url  # host -> ws URL with a fresh ticket
        self.subscriptions = subscriptions
        self.bot_self_events = bot_self_events
        self.table: dict[str, tuple[Callable[[Params], JsonDict], TokenKind]] = {
            "auth.test": (self.auth_test, "bot"),
            "apps.connections.open": (self.apps_connections_open, "app"),
            "chat.postMessage": (self.chat_post_message, "bot"),
            "chat.update": (self.chat_update, "bot"),
            "chat.postEphemeral": (self.chat_post_ephemeral, "bot"),
            "chat.getPermalink": (self.chat_get_permalink, "bot"),
            "reactions.add": (self.reactions_add, "bot"),
            "reactions.remove": (self.reactions_remove, "bot"),
            "reactions.get": (self.reactions_get, "bot"),
            "conversations.history": (self.conversations_history, "bot"),
            "conversations.replies": (self.conversations_replies, "bot"),
            "users.info": (self.users_info, "bot"),
            "users.lookupByEmail": (self.users_lookup_by_email, "bot"),
            "usergroups.users.list": (self.usergroups_users_list, "bot"),
        }

    # --- helpers -----------------------------------------------------------------------------
    def _self_event(self, event: JsonDict) -> None:
        """Events the bot's own actions cause (bolt acks and drops them as self-events)."""
        if self.bot_self_events and event["type"] in self.subscriptions:
            self.emit(event)

    def _content(self, params: Params, *, required: bool = True) -> JsonDict:
        """text/blocks/attachments/metadata of a post or update, validated like Slack."""
        text = params.opt("text")
        blocks = params.structured("blocks", "invalid_blocks_format")
        attachments = params.structured("attachments", "invalid_attachments")
        if required and not text and not blocks and not attachments:
            raise SlackError("no_text")
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                raise SlackError("invalid_blocks", errors=errors, response_metadata={
                    "messages": [f"[ERROR] {e}" for e in errors]})
        metadata = params.structured("metadata", "invalid_metadata_format")
        if metadata is not None and not (
                isinstance(metadata, dict) and isinstance(metadata.get("event_type"), str)
                and isinstance(metadata.get("event_payload", {}), dict)):
            raise SlackError("invalid_metadata_format")
        return {"text": text, "blocks": blocks, "attachments": attachments,
                "metadata": metadata}

    def _bot_message_api(self, message: Message) -> JsonDict:
        out = message.to_api()
        out["bot_profile"] = {"id": self.ws.bot.bot_id, "app_id": self.ws.bot.app_id,
                              "name": "SecBot", "deleted": False, "team_id": self.ws.team_id}
        return out

    def _member_channel(self, params: Params, *, by_name: bool = False) -> str:
        ref = params.req("channel", "channel_not_found")
        channel = self.ws.channel_by_id_or_name(ref) if by_name else self.ws.channel(ref)
        if not channel.has_member(self.ws.bot.user_id):
            raise SlackError("not_in_channel")
        return channel.id

    # --- auth & socket -------------------------------------------------------------------------
    def auth_test(self, params: Params) -> JsonDict:
        bot = self.ws.bot
        return {"ok": True, "url": self.ws.url, "team": self.ws.team_name, "user": bot.name,
                "team_id": self.ws.team_id, "user_id": bot.user_id, "bot_id": bot.bot_id,
                "is_enterprise_install": False}

    def apps_connections_open(self, params: Params) -> JsonDict:
        return {"ok": True, "url": self.socket_url(params.host)}

    # --- chat ----------------------------------------------------------------------------------
    def chat_post_message(self, params: Params) -> JsonDict:
        channel = self._member_channel(params, by_name=True)
        content = self._content(params)
        text: str = content.pop("text") or ""
        warnings = ["message_truncated"] if len(text) > MAX_MESSAGE_TEXT else []
        bot = self.ws.bot
        message = self.ws.post(channel, bot.user_id, text[:MAX_MESSAGE_TEXT],
                               thread_ts=params.opt("thread_ts") or None,
                               broadcast=params.flag("reply_broadcast"), bot_id=bot.bot_id,
                               app_id=bot.app_id, **content)
        self._self_event(slack_events.message(
            bot.user_id, message.text, channel, message.ts, message.thread_ts,
            team=self.ws.team_id, parent_user_id=message.parent_user_id, bot_id=bot.bot_id,
            app_id=bot.app_id, blocks=message.blocks, metadata=message.metadata,
            subtype=message.subtype))
        body: JsonDict = {"ok": True, "channel": channel, "ts": message.ts,
                          "message": self._bot_message_api(message)}
        if warnings:
            body["warning"] = warnings[0]
            body["response_metadata"] = {"warnings": warnings}
        return body

    def chat_update(self, params: Params) -> JsonDict:
        channel = self._member_channel(params)
        message = self.ws.message(channel, params.req("ts", "message_not_found"))
        if message.bot_id != self.ws.bot.bot_id:
            raise SlackError("cant_update_message")
        content = self._content(params)
        if content["text"] is not None:
            message.text = content["text"][:MAX_MESSAGE_TEXT]
        for key in ("blocks", "attachments", "metadata"):
            if content[key] is not None:
                setattr(message, key, content[key])
        message.edited = {"user": self.ws.bot.user_id, "ts": self.ws.clock.next()}
        self.ws.touch()
        return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text,
                "message": self._bot_message_api(message)}

    def chat_post_ephemeral(self, params: Params) -> JsonDict:
        channel = self._member_channel(params)
        user = self.ws.user(params.req("user", "user_not_found"))
        if not self.ws.channels[channel].has_member(user.id):
            raise SlackError("user_not_in_channel")
        content = self._content(params)
        message_ts = self.ws.clock.next()
        self.ws.ephemeral.append({"channel": channel, "user": user.id,
                                  "thread_ts": params.opt("thread_ts"),
                                  "message_ts": message_ts, **content})
        self.ws.touch()
        return {"ok": True, "message_ts": message_ts}

    def chat_get_permalink(self, params: Params) -> JsonDict:
        channel = params.req("channel", "channel_not_found")
        link = self.ws.permalink(channel, params.req("message_ts", "message_not_found"))
        return {"ok": True, "channel": channel, "permalink": link}

    # --- reactions -----------------------------------------------------------------------------
    def _reaction_target(self, params: Params) -> tuple[str, str, str]:
        channel, ts = params.opt("channel"), params.opt("timestamp")
        if not channel or not ts:
            raise SlackError("no_item_specified")
        name = params.opt("name") or ""
        if not _EMOJI_NAME.match(name):
            raise SlackError("invalid_name")
        return channel, ts, name

    def reactions_add(self, params: Params) -> JsonDict:
        channel, ts, name = self._reaction_target(params)
        message = self.ws.add_reaction(channel, ts, name, self.ws.bot.user_id)
        self._self_event(slack_events.reaction_added(
            self.ws.bot.user_id, name, channel, ts, item_user=message.user,
            event_ts=self.ws.clock.next()))
        return {"ok": True}

    def reactions_remove(self, params: Params) -> JsonDict:
        channel, ts, name = self._reaction_target(params)
        message = self.ws.remove_reaction(channel, ts, name, self.ws.bot.user_id)
        self._self_event(slack_events.reaction_removed(
            self.ws.bot.user_id, name, channel, ts, item_user=message.user,
            event_ts=self.ws.clock.next()))
        return {"ok": True}

    def reactions_get(self, params: Params) -> JsonDict:
        channel, ts = params.opt("channel"), params.opt("timestamp")
        if not channel or not ts:
            raise SlackError("no_item_specified")
        message = self.ws.message(channel, ts)
        body = message.to_api()
        body["permalink"] = self.ws.permalink(channel, ts)
        return {"ok": True, "type": "message", "channel": channel, "message": body}

    # --- conversations -------------------------------------------------------------------------
    def conversations_history(self, params: Params) -> JsonDict:
        channel = self._member_channel(params)
        messages = [m for m in reversed(self.ws.timeline(channel)) if _in_range(m.ts, params)]
        body = _page(messages, params, 100, newest_first=True)
        body.update(pin_count=0, channel_actions_ts=None, channel_actions_count=0)
        return body

    def conversations_replies(self, params: Params) -> JsonDict:
        channel = self._member_channel(params)
        thread = self.ws.thread(channel, params.req("ts", "thread_not_found"))
        parent, replies = thread[0], [m for m in thread[1:] if _in_range(m.ts, params)]
        return _page([parent, *replies], params, 1000, newest_first=False)

    # --- directory -----------------------------------------------------------------------------
    def users_info(self, params: Params) -> JsonDict:
        user = self.ws.user(params.opt("user")).to_api(self.ws.team_id)
        if params.flag("include_locale"):
            user["locale"] = "en-US"
        return {"ok": True, "user": user}

    def users_lookup_by_email(self, params: Params) -> JsonDict:
        return {"ok": True,
                "user": self.ws.user_by_email(params.opt("email")).to_api(self.ws.team_id)}

    def usergroups_users_list(self, params: Params) -> JsonDict:
        group = self.ws.usergroups.get(params.opt("usergroup") or "")
        if group is None or (group.disabled and not params.flag("include_disabled")):
            raise SlackError("no_such_subteam")
        return {"ok": True, "users": list(group.users)}
