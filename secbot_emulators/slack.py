"""Slack emulator: Web API + Socket Mode on one local port, for tests and ``secbot demo``.

The real slack_sdk / slack-bolt clients talk to it through base URLs only::

    async with SlackEmulator.running(ack_timeout=0.5) as emu:
        client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
        app = AsyncApp(client=client)
        handler = AsyncSocketModeHandler(app, emu.app_token)   # apps.connections.open → emu
        await handler.connect_async()
        ts = (await client.chat_postMessage(channel="C0SECALERTS", text="hi"))["ts"]
        envelope_id = emu.user_reacts("U0TRIAGER", "white_check_mark", "C0SECALERTS", ts)
        await emu.wait_for_ack(envelope_id)

From a shell: ``python -m secbot_emulators.slack --port 8089`` (prints URLs and tokens).

Paths: ``/api/<method>`` (Web API, :mod:`~secbot_emulators.slack_webapi`), ``/link/``
(Socket Mode, :mod:`~secbot_emulators.slack_socket`), ``/_emulator/…`` (JSON for the demo
page, :mod:`~secbot_emulators.slack_demo_api`), ``/`` (that page, unless ``routes`` has one:
:mod:`~secbot_emulators.slack_page`). Seed data: users ``U0TRIAGER`` (alice,
alice@example.com), ``U0VIEWER`` (bob), bot ``U0SECBOT``/``B0SECBOT``/app ``A0SECBOT``;
channels ``C0SECALERTS C0PRODSEC C0SECCRIT C0IDENTITY C0ENDPOINT C0THREATINTEL C0DEFAULT``;
user group ``S0TRIAGE`` = {U0TRIAGER}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

from aiohttp import web

from secbot_emulators import slack_events
from secbot_emulators.slack_blocks import notifications
from secbot_emulators.slack_demo_api import DemoApi, cors_middleware
from secbot_emulators.slack_events import (
    app_mention,
    message,
    reaction_added,
    reaction_removed,
)
from secbot_emulators.slack_files import SlackFiles
from secbot_emulators.slack_interactive import Interactive
from secbot_emulators.slack_methods import WebMethods
from secbot_emulators.slack_page import page_routes
from secbot_emulators.slack_socket import Delivery, SocketModeHub
from secbot_emulators.slack_state import (
    Channel,
    JsonDict,
    Message,
    SlackError,
    User,
    UserGroup,
    Workspace,
    seed_workspace,
)
from secbot_emulators.slack_webapi import ApiCall, Fault, WebApi

__all__ = [
    "DEFAULT_APP_TOKEN", "DEFAULT_BOT_TOKEN", "DEFAULT_SUBSCRIPTIONS", "ApiCall", "Delivery",
    "Message", "SlackEmulator", "SlackError", "app_mention", "message", "notifications",
    "reaction_added", "reaction_removed",
]

DEFAULT_BOT_TOKEN = "xoxb-0000000000-emulator-secbot"
DEFAULT_APP_TOKEN = "xapp-1-A0SECBOT-0000000000-emulator"
# The event types SecBot's app manifest subscribes to. Add "message" to also get
# message.channels events (users' posts and, as self-events, the bot's own).
DEFAULT_SUBSCRIPTIONS = frozenset({"app_mention", "reaction_added", "reaction_removed"})
_BOT_NAME = re.compile(r"@secbot\b", re.IGNORECASE)


class SlackEmulator:
    """A Slack workspace with one installed app (SecBot), served over HTTP + WebSocket.

    Options: ``ack_timeout``/``max_retries`` (Socket Mode redelivery: 3 s / 3 like Slack),
    ``subscriptions`` (event types the app receives as side-effects), ``bot_self_events``
    (the bot's own reactions/posts come back as events, as on Slack; bolt ignores them),
    ``seed`` (the fixed demo directory), ``server_ping_interval``, ``max_connections``,
    ``require_ticket`` (WebSocket URL must come from ``apps.connections.open``),
    ``connection_lifetime`` (seconds before a socket gets ``refresh_requested``, as Slack
    recycles connections; default: never), ``random_seed`` (which socket gets an envelope),
    ``routes`` (extra aiohttp routes served on the same port, e.g. the demo page at ``/``).
    """

    def __init__(self, *, bot_token: str = DEFAULT_BOT_TOKEN,
                 app_token: str = DEFAULT_APP_TOKEN, ack_timeout: float = 3.0,
                 max_retries: int = 3, max_connections: int = 10,
                 server_ping_interval: float | None = 10.0,
                 subscriptions: Iterable[str] = DEFAULT_SUBSCRIPTIONS,
                 bot_self_events: bool = True, seed: bool = True, require_ticket: bool = True,
                 connection_lifetime: float | None = None,
                 clock: Callable[[], float] = time.time, random_seed: int | None = None,
                 routes: Iterable[web.AbstractRouteDef] = ()) -> None:
        if not bot_token.startswith("xoxb-") or not app_token.startswith("xapp-"):
            raise ValueError("bot token must start with xoxb-, app token with xapp-")
        self.bot_token = bot_token
        self.app_token = app_token
        self.workspace = Workspace(clock=clock)
        if seed:
            seed_workspace(self.workspace)
        self.subscriptions: set[str] = set(subscriptions)
        self.socket = SocketModeHub(
            self.workspace.bot.app_id, ack_timeout=ack_timeout, max_retries=max_retries,
            max_connections=max_connections, server_ping_interval=server_ping_interval,
            require_ticket=require_ticket, connection_lifetime=connection_lifetime,
            rng=random.Random(random_seed))
        self.socket.on_change = self.workspace.touch
        self.methods = WebMethods(self.workspace, emit=self.inject_event,
                                  socket_url=self._socket_url,
                                  subscriptions=self.subscriptions,
                                  bot_self_events=bot_self_events)
        self.interactive = Interactive(self)  # DMs, buttons, modals (slack_interactive.py)
        self.methods.table.update(self.interactive.methods())
        self.files = SlackFiles(self)  # files_upload_v2's three steps (slack_files.py)
        self.methods.table.update(self.files.methods())
        self.web = WebApi(self.methods, bot_token=bot_token, app_token=app_token)
        self.demo = DemoApi(self)
        self.base_url = ""  # http://host:port once started
        self.last_envelope_id: str | None = None
        self.extra_routes = list(routes)  # e.g. the demo page at "/" (same origin as the API)
        #: label → URL of other pages the demo page links in its header (the PagerDuty and
        #: Jira stand-ins' pages); shown by ``/_emulator/status``.
        self.links: dict[str, str] = {}
        self._runner: web.AppRunner | None = None

    # --- addresses -----------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """Web API base URL for ``AsyncWebClient(base_url=…)`` (ends with ``/api/``)."""
        return f"{self.base_url}/api/"

    @property
    def ws_url(self) -> str:
        """Socket Mode endpoint (a connection also needs ``?ticket=`` from
        ``apps.connections.open``)."""
        return self.base_url.replace("http://", "ws://", 1) + "/link/"

    def _socket_url(self, host: str) -> str:
        ticket = self.socket.issue_ticket()
        return f"ws://{host}/link/?ticket={ticket}&app_id={self.workspace.bot.app_id}"

    # --- Web API records and faults ------------------------------------------------------------
    @property
    def calls(self) -> list[ApiCall]:
        """Every Web API request, oldest first (``method``, merged ``params``, ``at`` …)."""
        return self.web.calls

    def calls_to(self, method: str) -> list[ApiCall]:
        """Recorded calls of one method, e.g. ``calls_to("chat.postMessage")``."""
        return self.web.calls_to(method)

    def rate_limit(self, method: str = "*", *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` (``"*"``: any) with HTTP 429,
        ``Retry-After: <retry_after>`` and ``{"ok": false, "error": "ratelimited"}``."""
        if retry_after < 0 or int(retry_after) != retry_after:
            raise ValueError("Retry-After is a whole number of seconds")
        self.web.add_fault(Fault(method, times, 429, int(retry_after)))

    def fail(self, method: str = "*", *, times: int = 1, status: int = 503) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP ``status`` (5xx outage)."""
        self.web.add_fault(Fault(method, times, status))

    def clear_faults(self) -> None:
        self.web.faults.clear()

    # --- events --------------------------------------------------------------------------------
    def inject_event(self, event: JsonDict, *, event_id: str | None = None) -> str:
        """Deliver ``event`` in an ``events_api`` envelope; returns the first envelope id.

        Needs a running event loop. Delivery waits for an open socket, then is retried on
        missing acks (see :mod:`~secbot_emulators.slack_socket`).
        """
        bot = self.workspace.bot
        payload = slack_events.event_callback(event, team_id=self.workspace.team_id,
                                              app_id=bot.app_id, bot_user_id=bot.user_id,
                                              event_id=event_id)
        envelope_id = self.socket.deliver(payload).first_envelope_id
        self.last_envelope_id = envelope_id
        return envelope_id

    @property
    def deliveries(self) -> list[Delivery]:
        return self.socket.deliveries

    def deliveries_of(self, event_type: str) -> list[Delivery]:
        """Deliveries whose inner event has this ``type`` (e.g. the bot's own reactions)."""
        return [d for d in self.socket.deliveries
                if d.payload.get("event", {}).get("type") == event_type]

    def delivery(self, envelope_id: str) -> Delivery:
        return self.socket.delivery(envelope_id)

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> JsonDict:
        """The client's ack frame for this event (any attempt); TimeoutError otherwise."""
        return await self.socket.wait_for_ack(envelope_id, timeout)

    async def wait_for_settled(self, envelope_id: str, timeout: float = 10.0) -> Delivery:
        """Until the event is acked or its retries are exhausted (``failed``)."""
        delivery = self.socket.delivery(envelope_id)
        await asyncio.wait_for(delivery.settled.wait(), timeout)
        return delivery

    async def wait_for_connections(self, count: int = 1, timeout: float = 5.0) -> None:
        await self.socket.wait_for_connections(count, timeout)

    async def disconnect_all(self, reason: str = "refresh_requested", *, grace: float = 1.0
                             ) -> int:
        """Send ``{"type": "disconnect", "reason": …}`` to every socket, then close them."""
        return await self.socket.disconnect_all(reason, grace=grace)

    async def drop_connections(self) -> int:
        """Abort every socket without a close frame; clients must reconnect themselves."""
        return await self.socket.drop_connections()

    # --- people acting in the workspace ----------------------------------------------------------
    def user_reacts(self, user: str, reaction: str, channel: str, ts: str) -> str:
        """``user`` adds a reaction: stored (reactions.get shows it) and ``reaction_added``
        delivered. Returns the envelope id. SlackError if already reacted."""
        target = self.workspace.add_reaction(channel, ts, reaction, self.workspace.user(user).id)
        return self.inject_event(reaction_added(user, reaction, channel, ts,
                                                item_user=target.user,
                                                event_ts=self.workspace.clock.next()))

    def user_unreacts(self, user: str, reaction: str, channel: str, ts: str) -> str:
        """``user`` removes a reaction: state updated, ``reaction_removed`` delivered."""
        target = self.workspace.remove_reaction(channel, ts, reaction, user)
        return self.inject_event(reaction_removed(user, reaction, channel, ts,
                                                  item_user=target.user,
                                                  event_ts=self.workspace.clock.next()))

    def user_posts(self, user: str, text: str, channel: str, thread_ts: str | None = None
                   ) -> str:
        """``user`` types a message; returns its ts. Delivers ``app_mention`` if it mentions
        the bot and ``message`` if subscribed (``last_envelope_id``: the last of those)."""
        self.workspace.user(user)
        posted = self.workspace.post(channel, user, text, thread_ts=thread_ts,
                                     blocks=slack_events.rich_text_blocks(text))
        team = self.workspace.team_id
        if f"<@{self.workspace.bot.user_id}>" in text:
            self.inject_event(app_mention(user, text, channel, posted.ts, posted.thread_ts,
                                          team=team))
        if "message" in self.subscriptions:
            self.inject_event(message(user, text, channel, posted.ts, posted.thread_ts,
                                      team=team, parent_user_id=posted.parent_user_id))
        return posted.ts

    def user_mentions_bot(self, user: str, text: str, channel: str,
                          thread_ts: str | None = None) -> str:
        """``user`` writes ``@SecBot <text>`` (in a thread if ``thread_ts``); returns the
        message ts. ``last_envelope_id`` is the ``app_mention`` envelope."""
        mention = f"<@{self.workspace.bot.user_id}>"
        if mention not in text:
            text, count = _BOT_NAME.subn(mention, text, count=1)
            if not count:
                text = f"{mention} {text}"
        ts = self.user_posts(user, text, channel, thread_ts)
        mentions = self.deliveries_of("app_mention")
        self.last_envelope_id = mentions[-1].first_envelope_id
        return ts

    # --- workspace -------------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, real_name: str | None = None, *,
                 email: str | None = None, is_admin: bool = False) -> User:
        return self.workspace.add_user(user_id, name, real_name, email=email, is_admin=is_admin)

    def add_channel(self, channel_id: str, name: str, *, topic: str = "",
                    members: Iterable[str] | None = None) -> Channel:
        return self.workspace.add_channel(channel_id, name, topic=topic, members=members)

    def add_usergroup(self, group_id: str, handle: str, users: Iterable[str]) -> UserGroup:
        return self.workspace.add_usergroup(group_id, handle, users)

    def messages(self, channel: str) -> list[Message]:
        """The channel's timeline (top-level and broadcast messages), oldest first."""
        return self.workspace.timeline(channel)

    def message(self, channel: str, ts: str) -> Message:
        return self.workspace.message(channel, ts)

    def replies(self, channel: str, ts: str) -> list[Message]:
        """Thread replies under ``ts`` (without the parent), oldest first."""
        return self.workspace.thread(channel, ts)[1:]

    @property
    def ephemeral(self) -> list[JsonDict]:
        """chat.postEphemeral messages: ``channel, user, text, blocks, thread_ts, message_ts``."""
        return self.workspace.ephemeral

    # --- server --------------------------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application: Web API, Socket Mode, demo JSON API, extra routes."""
        app = web.Application(middlewares=[cors_middleware])
        handler = self.web.handle
        app.add_routes([web.get("/api/{method}", handler), web.post("/api/{method}", handler),
                        web.get("/link/", self.socket.handle),
                        web.get("/link", self.socket.handle), *self.demo.routes(),
                        *self.interactive.routes(), *self.files.routes(),
                        *self.extra_routes])
        if "/" not in {getattr(r, "path", None) for r in self.extra_routes}:
            app.add_routes(page_routes())  # the demo page (secbot_emulators/slack_page.py)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on ``host:port`` (0: any free port); sets ``base_url``."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0][1]
        self.base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{bound}"

    async def stop(self) -> None:
        await self.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @classmethod
    @asynccontextmanager
    async def running(cls, port: int = 0, *, host: str = "127.0.0.1", **options: Any
                      ) -> AsyncIterator[SlackEmulator]:
        """A started emulator (ephemeral port by default), stopped on exit."""
        emulator = cls(**options)
        await emulator.start(host, port)
        try:
            yield emulator
        finally:
            await emulator.stop()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m secbot_emulators.slack",
                                     description="Slack Web API + Socket Mode emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0: any free port")
    parser.add_argument("--bot-token", default=DEFAULT_BOT_TOKEN)
    parser.add_argument("--app-token", default=DEFAULT_APP_TOKEN)
    parser.add_argument("--ack-timeout", type=float, default=3.0,
                        help="seconds before an unacked envelope is redelivered")
    parser.add_argument("--subscribe", action="append", default=[],
                        help="extra event type to deliver as a side-effect (e.g. message)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    emulator = SlackEmulator(bot_token=args.bot_token, app_token=args.app_token,
                             ack_timeout=args.ack_timeout,
                             subscriptions=DEFAULT_SUBSCRIPTIONS | set(args.subscribe))
    await emulator.start(args.host, args.port)
    print(json.dumps({"api_url": emulator.api_url, "ws_url": emulator.ws_url,
                      "demo_api": f"{emulator.base_url}/_emulator/",
                      "bot_token": emulator.bot_token, "app_token": emulator.app_token}),
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: serve until interrupted."""
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
