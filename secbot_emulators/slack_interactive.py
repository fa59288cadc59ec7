"""Interactivity for the Slack emulator: DMs, buttons, modals.

Web API methods (bot token):

- ``conversations.open`` with ``users=U…`` — the bot's DM with that person (channel ``D…``,
  members: the person and the bot), the same channel every time (``already_open``);
  ``user_not_found`` for an unknown user, ``cannot_dm_bot`` for a bot user.
- ``views.open`` with ``trigger_id`` and ``view`` — a modal for the person whose click made
  the trigger; a trigger is good once, for 3 seconds (``expired_trigger_id``,
  ``invalid_trigger_id``); the view must be a ``modal`` with a ``title`` (``invalid_arguments``).

Test hooks (also ``POST /_emulator/click`` and ``/_emulator/submit`` for the demo page):

- :meth:`Interactive.click` — a person clicks a button shown in a message: a ``block_actions``
  payload (shape of docs.slack.dev "block_actions payload": ``user``, ``container``,
  ``channel``, ``message``, ``actions[0]`` with ``action_id``, ``block_id``, ``value``,
  ``action_ts``, a fresh ``trigger_id``) in a Socket Mode ``interactive`` envelope. Slack
  does not redeliver interactive payloads; neither does this. Only buttons the message
  shows can be clicked (``forge=True`` lets a test send a payload for any message, value and
  user, as an attacker replaying a payload would).
- :meth:`Interactive.submit` — the person submits an open modal: ``view_submission`` with
  ``view.state.values[block_id][action_id].value``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from secbot_emulators.slack_state import JsonDict, Message, SlackError

if TYPE_CHECKING:
    from secbot_emulators.slack import SlackEmulator
    from secbot_emulators.slack_methods import Params, TokenKind

TRIGGER_LIFETIME = 3.0  # seconds (Slack: "expires in 3 seconds")


@dataclass
class OpenView:
    """A modal open for one person."""

    id: str
    user: str
    view: JsonDict
    hash: str = field(default_factory=lambda: f"{int(time.time())}.{uuid.uuid4().hex[:8]}")
    submitted: bool = False


def _buttons(blocks: Any) -> Iterator[tuple[str, JsonDict]]:
    """(block_id, element) for every button of ``actions`` blocks and section accessories."""
    for block in blocks or []:
        if not isinstance(block, dict):
            continue
        elements = block.get("elements") if block.get("type") == "actions" else [
            block.get("accessory")]
        for element in elements or []:
            if isinstance(element, dict) and element.get("type") == "button":
                yield str(block.get("block_id") or ""), element


class Interactive:
    """DMs, buttons and modals of one emulated workspace."""

    def __init__(self, emulator: SlackEmulator, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.emu = emulator
        self.clock = clock
        self.views: dict[str, OpenView] = {}
        self._triggers: dict[str, tuple[str, float]] = {}  # trigger_id -> (user, issued)

    # --- Web API -------------------------------------------------------------------------------
    def methods(self) -> dict[str, tuple[Callable[[Params], JsonDict], TokenKind]]:
        return {"conversations.open": (self.conversations_open, "bot"),
                "views.open": (self.views_open, "bot")}

    def dm_channel(self, user_id: str) -> str:
        return "D" + user_id.removeprefix("U").removeprefix("W")

    def conversations_open(self, params: Params) -> JsonDict:
        ws = self.emu.workspace
        users = [u for u in (params.opt("users") or "").split(",") if u]
        if params.opt("channel") and not users:
            channel = ws.channel(params.opt("channel"))
            return {"ok": True, "no_op": True, "already_open": True,
                    "channel": {"id": channel.id}}
        if len(users) != 1:
            raise SlackError("users_list_not_supplied" if not users else "not_implemented")
        person = ws.user(users[0])
        if person.is_bot:
            raise SlackError("cannot_dm_bot")
        channel_id = self.dm_channel(person.id)
        existed = channel_id in ws.channels
        if not existed:
            ws.add_channel(channel_id, f"dm-{person.name}", members={person.id, ws.bot.user_id})
            ws.channels[channel_id].is_private = True
        body: JsonDict = {"id": channel_id}
        if params.flag("return_im"):
            body.update(created=int(time.time()), is_im=True, is_org_shared=False,
                        user=person.id, is_user_deleted=False, priority=0)
        return {"ok": True, "no_op": existed, "already_open": existed, "channel": body}

    def views_open(self, params: Params) -> JsonDict:
        trigger = params.req("trigger_id", "invalid_trigger_id")
        if trigger not in self._triggers:
            raise SlackError("invalid_trigger_id")
        user, issued = self._triggers.pop(trigger)
        if self.clock() - issued > TRIGGER_LIFETIME:
            raise SlackError("expired_trigger_id")
        view = params.structured("view", "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            raise SlackError("invalid_arguments")
        opened = OpenView("V" + uuid.uuid4().hex[:10].upper(), user, dict(view))
        self.views[opened.id] = opened
        self.emu.workspace.touch()
        return {"ok": True, "view": self._view_api(opened)}

    def _view_api(self, opened: OpenView, values: JsonDict | None = None) -> JsonDict:
        bot = self.emu.workspace.bot
        return {
            "id": opened.id, "team_id": self.emu.workspace.team_id, "type": "modal",
            "blocks": opened.view.get("blocks") or [],
            "private_metadata": opened.view.get("private_metadata") or "",
            "callback_id": opened.view.get("callback_id") or "",
            "state": {"values": values or {}}, "hash": opened.hash,
            "title": opened.view.get("title"), "close": opened.view.get("close"),
            "submit": opened.view.get("submit"), "clear_on_close": False,
            "notify_on_close": False, "previous_view_id": None, "root_view_id": opened.id,
            "app_id": bot.app_id, "external_id": "", "app_installed_team_id":
                self.emu.workspace.team_id, "bot_id": bot.bot_id,
        }

    # --- people clicking -----------------------------------------------------------------------
    def _user_api(self, user_id: str) -> JsonDict:
        ws = self.emu.workspace
        person = ws.user(user_id)
        return {"id": person.id, "username": person.name, "name": person.name,
                "team_id": ws.team_id}

    def _trigger(self, user_id: str) -> str:
        trigger = f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"
        self._triggers[trigger] = (user_id, self.clock())
        return trigger

    def _deliver(self, payload: JsonDict) -> str:
        delivery = self.emu.socket.deliver(payload, envelope_type="interactive", retries=0)
        self.emu.last_envelope_id = delivery.first_envelope_id
        return delivery.first_envelope_id

    def click(self, user: str, channel: str, ts: str, action_id: str, *,
              value: str | None = None, forge: bool = False) -> str:
        """``user`` clicks the button ``action_id`` on message ``ts``; returns the envelope
        id. SlackError ``button_not_found`` when the message shows no such button."""
        ws = self.emu.workspace
        message = ws.message(channel, ts)
        found = next((b for b in _buttons(message.blocks) if b[1].get("action_id") == action_id),
                     None)
        if found is None and not forge:
            raise SlackError("button_not_found")
        block_id, element = found or ("forged", {"type": "button", "action_id": action_id,
                                                 "text": {"type": "plain_text", "text": "?"}})
        action = {"action_id": action_id, "block_id": block_id, "text": element.get("text"),
                  "value": value if value is not None else element.get("value"),
                  "type": "button", "action_ts": ws.clock.next()}
        if element.get("style"):
            action["style"] = element["style"]
        return self._deliver(self._block_actions(user, message, action))

    def _block_actions(self, user: str, message: Message, action: JsonDict) -> JsonDict:
        ws = self.emu.workspace
        channel = ws.channels[message.channel]
        return {
            "type": "block_actions", "user": self._user_api(user), "api_app_id": ws.bot.app_id,
            "token": "emulator-token",
            "container": {"type": "message", "message_ts": message.ts,
                          "channel_id": channel.id, "is_ephemeral": False},
            "trigger_id": self._trigger(user), "team": {"id": ws.team_id, "domain": ws.domain},
            "enterprise": None, "is_enterprise_install": False,
            "channel": {"id": channel.id, "name": channel.name},
            "message": message.to_api(), "state": {"values": {}},
            "response_url": f"https://hooks.slack.com/actions/{ws.team_id}/{uuid.uuid4().int}",
            "actions": [action],
        }

    def submit(self, user: str, view_id: str, values: dict[str, dict[str, str]]) -> str:
        """``user`` submits the open modal ``view_id`` with ``{block_id: {action_id: text}}``."""
        opened = self.views.get(view_id)
        if opened is None or opened.submitted:
            raise SlackError("view_not_found")
        if opened.user != user:
            raise SlackError("not_allowed")  # a modal is only ever shown to its person
        opened.submitted = True
        state = {block: {action: {"type": "plain_text_input", "value": text}
                         for action, text in inputs.items()}
                 for block, inputs in values.items()}
        ws = self.emu.workspace
        ws.touch()
        return self._deliver({
            "type": "view_submission", "team": {"id": ws.team_id, "domain": ws.domain},
            "user": self._user_api(user), "api_app_id": ws.bot.app_id,
            "token": "emulator-token", "trigger_id": self._trigger(user),
            "view": self._view_api(opened, state), "response_urls": [],
            "is_enterprise_install": False, "enterprise": None,
        })

    def open_views(self, user: str | None = None) -> list[OpenView]:
        return [v for v in self.views.values()
                if not v.submitted and (user is None or v.user == user)]

    # --- demo page routes ----------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.post("/_emulator/click", self._click_route),
                web.post("/_emulator/submit", self._submit_route),
                web.get("/_emulator/views", self._views_route)]

    async def _click_route(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            envelope = self.click(str(body["user"]), str(body["channel"]), str(body["ts"]),
                                  str(body["action_id"]))
        except (KeyError, SlackError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, "envelope_id": envelope})

    async def _submit_route(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            envelope = self.submit(str(body["user"]), str(body["view_id"]),
                                   dict(body.get("values") or {}))
        except (KeyError, SlackError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, "envelope_id": envelope})

    async def _views_route(self, request: web.Request) -> web.Response:
        user = request.query.get("user")
        return web.json_response({"ok": True, "views": [
            {"id": v.id, "user": v.user, "view": v.view} for v in self.open_views(user)]})
