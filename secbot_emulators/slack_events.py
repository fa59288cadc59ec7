"""Events API payload builders for the Slack emulator.

Shapes follow the official examples and the SDK fixtures collected in
``protocols/slack_events_payloads.md`` and ``samples/slack/``: the inner events
(``reaction_added`` …), the ``event_callback`` wrapper, and the Socket Mode ``events_api``
envelope. Builders are pure functions so tests can also use them to craft odd events.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

JsonDict = dict[str, Any]

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def _item(channel: str, ts: str) -> JsonDict:
    return {"type": "message", "channel": channel, "ts": ts}


def reaction_added(user: str, reaction: str, channel: str, ts: str, *,
                   item_user: str | None = None, event_ts: str | None = None) -> JsonDict:
    """A ``reaction_added`` event; ``item_user`` is omitted when unknown (webhook messages)."""
    event: JsonDict = {"type": "reaction_added", "user": user, "reaction": reaction,
                       "item": _item(channel, ts)}
    if item_user is not None:
        event["item_user"] = item_user
    event["event_ts"] = event_ts or ts
    return event


def reaction_removed(user: str, reaction: str, channel: str, ts: str, *,
                     item_user: str | None = None, event_ts: str | None = None) -> JsonDict:
    """A ``reaction_removed`` event (same shape as ``reaction_added``)."""
    event = reaction_added(user, reaction, channel, ts, item_user=item_user, event_ts=event_ts)
    event["type"] = "reaction_removed"
    return event


def rich_text_blocks(text: str) -> list[JsonDict]:
    """The ``rich_text`` block Slack clients attach to typed messages (user mentions split out)."""
    elements: list[JsonDict] = []
    position = 0
    for match in _MENTION.finditer(text):
        if match.start() > position:
            elements.append({"type": "text", "text": text[position:match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        position = match.end()
    if position < len(text):
        elements.append({"type": "text", "text": text[position:]})
    block_id = base64.b32encode(uuid.uuid4().bytes).decode()[:5]
    return [{"type": "rich_text", "block_id": block_id,
             "elements": [{"type": "rich_text_section", "elements": elements}]}]


def _typed_message(kind: str, user: str, text: str, channel: str, ts: str,
                   thread_ts: str | None, team: str) -> JsonDict:
    event: JsonDict = {"client_msg_id": str(uuid.uuid4()), "type": kind, "text": text,
                       "user": user, "ts": ts, "team": team, "blocks": rich_text_blocks(text),
                       "channel": channel, "event_ts": ts}
    if thread_ts is not None and thread_ts != ts:
        event["thread_ts"] = thread_ts
    return event


def app_mention(user: str, text: str, channel: str, ts: str, thread_ts: str | None = None, *,
                team: str = "T0SECBOT") -> JsonDict:
    """An ``app_mention`` event as a person typing ``@SecBot …`` produces it."""
    return _typed_message("app_mention", user, text, channel, ts, thread_ts, team)


def message(user: str, text: str, channel: str, ts: str, thread_ts: str | None = None, *,
            team: str = "T0SECBOT", parent_user_id: str | None = None,
            bot_id: str | None = None, app_id: str | None = None,
            blocks: list[JsonDict] | None = None, metadata: JsonDict | None = None,
            subtype: str | None = None) -> JsonDict:
    """A ``message`` event (``message.channels``); bot posts carry ``bot_id``/``app_id``."""
    if bot_id is None:
        event = _typed_message("message", user, text, channel, ts, thread_ts, team)
    else:  # bots post through the API: no client_msg_id, their own blocks
        event = {"type": "message", "text": text, "user": user, "ts": ts, "team": team,
                 "bot_id": bot_id, "app_id": app_id, "channel": channel, "event_ts": ts}
        if blocks is not None:
            event["blocks"] = blocks
        if thread_ts is not None and thread_ts != ts:
            event["thread_ts"] = thread_ts
        if metadata is not None:
            event["metadata"] = metadata
    if subtype is not None:
        event["subtype"] = subtype
    if "thread_ts" in event and parent_user_id is not None:
        event["parent_user_id"] = parent_user_id
    event["channel_type"] = "channel"
    return event


def new_event_id() -> str:
    """``Ev`` + 10 upper-case alphanumerics, like Slack's event ids."""
    return "Ev" + base64.b32encode(uuid.uuid4().bytes).decode()[:10]


def _event_context(event: JsonDict, team_id: str, app_id: str) -> str:
    """Opaque context string: ``4-`` + base64url of a small JSON (as observed from Slack)."""
    channel = event.get("channel") or (event.get("item") or {}).get("channel", "")
    raw = json.dumps({"et": event.get("type"), "tid": team_id, "aid": app_id, "cid": channel},
                     separators=(",", ":"))
    return "4-" + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def event_callback(event: JsonDict, *, team_id: str, app_id: str, bot_user_id: str,
                   event_id: str | None = None, verification_token: str = "emulator-token"
                   ) -> JsonDict:
    """The Events API ``event_callback`` wrapper (the Socket Mode envelope's ``payload``)."""
    stamp = str(event.get("event_ts") or event.get("ts") or "0")
    return {
        "token": verification_token, "team_id": team_id, "context_team_id": team_id,
        "context_enterprise_id": None, "api_app_id": app_id, "event": event,
        "type": "event_callback", "event_id": event_id or new_event_id(),
        "event_time": int(float(stamp)),
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": _event_context(event, team_id, app_id),
    }


def events_api_envelope(payload: JsonDict, *, retry_attempt: int = 0,
                        retry_reason: str = "", envelope_id: str | None = None) -> JsonDict:
    """A Socket Mode ``events_api`` envelope around an ``event_callback`` payload."""
    return {"envelope_id": envelope_id or str(uuid.uuid4()), "payload": payload,
            "type": "events_api", "accepts_response_payload": False,
            "retry_attempt": retry_attempt, "retry_reason": retry_reason}
