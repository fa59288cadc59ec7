"""JSON API under ``/_emulator/`` for the ``secbot demo`` web page (not part of Slack).

The page shows a channel as Slack would and lets a visitor act as a workspace member.
Every response is JSON with ``ok``; errors are HTTP 400/404 with ``{"ok": false, "error"}``
using Slack's error codes. CORS is open so a page served from another port can call it.

==========================================  =================================================
``GET  /_emulator/``                        this endpoint list
``GET  /_emulator/status``                  socket connections, deliveries, state ``version``,
                                            ``links`` (other demo pages, for the header)
``GET  /_emulator/users``                   ``users: [{id, name, real_name, is_bot}]``
``GET  /_emulator/channels``                ``channels: [{id, name, topic, message_count}]``
``GET  /_emulator/messages?channel=C…``     ``messages`` oldest first (Slack message objects
                                            plus ``user_name``, ``permalink`` and ``replies``:
                                            the thread, each with ``reactions``), the
                                            channel's ``ephemeral`` messages, ``version``
``POST /_emulator/react``                   ``{user, reaction, channel, ts, remove?}`` →
                                            ``{ok, envelope_id}`` (state + reaction event)
``POST /_emulator/mention``                 ``{user, text, channel, thread_ts?}`` →
                                            ``{ok, ts, envelope_id}`` (message + app_mention)
``POST /_emulator/message``                 ``{user, text, channel, thread_ts?}`` → ``{ok, ts}``
``GET  /_emulator/calls?method=…``          recorded Web API calls, oldest first
==========================================  =================================================

Poll ``status`` (or ``messages``) and re-render when ``version`` changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from secbot_emulators.slack_state import JsonDict, Message, SlackError

if TYPE_CHECKING:
    from secbot_emulators.slack import SlackEmulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CORS = {"Access-Control-Allow-Origin": "*",
         "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
         "Access-Control-Allow-Headers": "Content-Type"}
_NOT_FOUND = {"channel_not_found", "message_not_found", "thread_not_found", "user_not_found"}


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Open CORS and Slack-style JSON errors for ``/_emulator/`` paths only."""
    if not request.path.startswith("/_emulator"):
        return await handler(request)
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=_CORS)
    try:
        response = await handler(request)
    except SlackError as exc:
        status = 404 if exc.error in _NOT_FOUND else 400
        response = web.json_response({"ok": False, "error": exc.error}, status=status)
    response.headers.update(_CORS)
    return response


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise SlackError("invalid_json") from exc
    if not isinstance(body, dict):
        raise SlackError("invalid_json")
    return body


def _req(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise SlackError(f"missing_{name}")
    return value


def _opt(body: dict[str, Any], name: str) -> str | None:
    return None if body.get(name) in (None, "") else _req(body, name)


class DemoApi:
    """Routes bound to one emulator."""

    def __init__(self, emulator: SlackEmulator) -> None:
        self.emu = emulator

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/_emulator/", self.index), web.get("/_emulator/status", self.status),
                web.get("/_emulator/users", self.users),
                web.get("/_emulator/channels", self.channels),
                web.get("/_emulator/messages", self.messages),
                web.get("/_emulator/calls", self.calls),
                web.post("/_emulator/react", self.react),
                web.post("/_emulator/mention", self.mention),
                web.post("/_emulator/message", self.message),
                web.options("/_emulator/{tail:.*}", self.index)]

    async def index(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "doc": __doc__})

    async def status(self, request: web.Request) -> web.Response:
        socket = self.emu.socket
        return web.json_response({
            "ok": True, "version": self.emu.workspace.version,
            "connections": len(socket.live_connections()),
            "deliveries": {"total": len(socket.deliveries),
                           "acked": sum(d.acked.is_set() for d in socket.deliveries),
                           "failed": sum(d.failed for d in socket.deliveries)},
            "api_calls": len(self.emu.calls),
            "links": [{"label": k, "url": v} for k, v in self.emu.links.items()]})

    async def users(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "users": [
            {"id": u.id, "name": u.name, "real_name": u.real_name, "is_bot": u.is_bot}
            for u in self.emu.workspace.users.values()]})

    async def channels(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "channels": [
            {"id": c.id, "name": c.name, "topic": c.topic, "message_count": len(c.messages)}
            for c in self.emu.workspace.channels.values()]})

    def _render(self, message: Message) -> JsonDict:
        workspace = self.emu.workspace
        out = message.to_api()
        user = workspace.users.get(message.user)
        out["user_name"] = user.real_name if user is not None else message.user
        out["permalink"] = workspace.permalink(message.channel, message.ts)
        return out

    async def messages(self, request: web.Request) -> web.Response:
        workspace = self.emu.workspace
        channel = workspace.channel(request.query.get("channel"))
        rendered = []
        for message in workspace.timeline(channel.id):
            item = self._render(message)
            if not message.is_reply:
                item["replies"] = [self._render(workspace.channels[channel.id].messages[ts])
                                   for ts in message.replies]
            rendered.append(item)
        ephemeral = [e for e in workspace.ephemeral if e["channel"] == channel.id]
        return web.json_response({"ok": True, "version": workspace.version,
                                  "channel": {"id": channel.id, "name": channel.name},
                                  "messages": rendered, "ephemeral": ephemeral})

    async def calls(self, request: web.Request) -> web.Response:
        method = request.query.get("method")
        calls = self.emu.calls if method is None else self.emu.calls_to(method)
        return web.json_response({"ok": True, "calls": [
            {"method": c.method, "params": c.params, "at": c.at, "status": c.status,
             "error": c.error} for c in calls]})

    async def react(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user, reaction = _req(body, "user"), _req(body, "reaction")
        channel, ts = _req(body, "channel"), _req(body, "ts")
        act = self.emu.user_unreacts if body.get("remove") else self.emu.user_reacts
        envelope_id = act(user, reaction.strip(":"), channel, ts)
        return web.json_response({"ok": True, "envelope_id": envelope_id})

    async def mention(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user, text, channel = _req(body, "user"), _req(body, "text"), _req(body, "channel")
        ts = self.emu.user_mentions_bot(user, text, channel,
                                        _opt(body, "thread_ts"))
        return web.json_response({"ok": True, "ts": ts,
                                  "envelope_id": self.emu.last_envelope_id})

    async def message(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user, text, channel = _req(body, "user"), _req(body, "text"), _req(body, "channel")
        ts = self.emu.user_posts(user, text, channel, _opt(body, "thread_ts"))
        return web.json_response({"ok": True, "ts": ts})
