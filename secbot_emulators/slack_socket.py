"""Socket Mode over WebSocket for the Slack emulator (``protocols/slack_socket_mode.md``).

Behaviour, each point from the protocol notes:

- a WebSocket needs a fresh ticket from ``apps.connections.open`` (single use, consumed when
  the handshake succeeds), so a client that reconnects without calling it again fails here
  as it would against Slack;
- ``hello`` is the first frame; at most ``max_connections`` (10) sockets, an extra one gets
  ``disconnect``/``too_many_websockets`` and is closed;
- each envelope goes to one open, non-draining socket chosen at random; with none open it
  waits for one (delivery is at-least-once, never dropped);
- an envelope not acked within ``ack_timeout`` is redelivered with ``retry_attempt`` + 1 and
  ``retry_reason: "timeout"``, at most ``max_retries`` times. Each attempt has a new
  ``envelope_id`` (the ``event_id`` stays), so clients must deduplicate on ``event_id``;
  a late ack of an earlier attempt still counts;
- WebSocket PING frames are answered with the same payload (the aiohttp client's
  ``sdk-ping-pong:<t>`` staleness check depends on it); the server pings too;
- ``disconnect`` (``refresh_requested`` …) lets the client open its replacement before the
  old socket is closed; :meth:`SocketModeHub.drop_connections` aborts TCP without a frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from secbot_emulators.slack_events import events_api_envelope

JsonDict = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass
class Connection:
    """One open Socket Mode WebSocket."""

    id: int
    ws: web.WebSocketResponse
    request: web.Request
    opened_at: float
    draining: bool = False  # sent a disconnect: gets no new envelopes
    pings: list[bytes] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def host(self) -> str:
        return f"applink-emulator-{self.id}"

    @property
    def live(self) -> bool:
        return not self.draining and not self.ws.closed and not self.closed.is_set()


@dataclass
class Delivery:
    """One event and its delivery attempts (each attempt is one envelope)."""

    payload: JsonDict
    first_envelope_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    envelopes: list[JsonDict] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    ack: JsonDict | None = None
    failed: bool = False
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # acked or gave up
    # "interactive" (block_actions, view_submission): Slack sends those once, no redelivery
    envelope_type: str = "events_api"
    retries: int | None = None  # None: the hub's max_retries

    @property
    def event_id(self) -> str:
        return str(self.payload.get("event_id", ""))

    @property
    def attempts(self) -> int:
        return len(self.envelopes)

    @property
    def envelope_ids(self) -> list[str]:
        return [str(e["envelope_id"]) for e in self.envelopes]

    def next_envelope(self) -> JsonDict:
        attempt = self.attempts
        if self.envelope_type != "events_api":
            envelope: JsonDict = {"envelope_id": self.first_envelope_id, "payload": self.payload,
                                  "type": self.envelope_type,
                                  "accepts_response_payload": False}
            self.envelopes.append(envelope)
            return envelope
        envelope = events_api_envelope(
            self.payload, retry_attempt=attempt, retry_reason="timeout" if attempt else "",
            envelope_id=self.first_envelope_id if attempt == 0 else None)
        self.envelopes.append(envelope)
        return envelope


@dataclass
class Ack:
    """A frame the client sent with an ``envelope_id``."""

    envelope_id: str
    frame: JsonDict
    connection: int
    at: float


class SocketModeHub:
    """WebSocket endpoint plus delivery/ack bookkeeping. Mount :meth:`handle` at ``/link/``."""

    def __init__(self, app_id: str, *, ack_timeout: float = 3.0, max_retries: int = 3,
                 max_connections: int = 10, server_ping_interval: float | None = 10.0,
                 require_ticket: bool = True, connection_lifetime: float | None = None,
                 rng: random.Random | None = None) -> None:
        self.app_id = app_id
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self.max_connections = max_connections
        self.server_ping_interval = server_ping_interval
        self.require_ticket = require_ticket
        self.connection_lifetime = connection_lifetime  # seconds before refresh_requested
        self.answer_pings = True  # False: pings go unanswered, the client must call it stale
        self.connections: dict[int, Connection] = {}
        self.history: list[Connection] = []  # every connection ever accepted
        self.deliveries: list[Delivery] = []
        self.acks: list[Ack] = []
        self.received: list[JsonDict] = []  # every JSON text frame from clients
        self._by_envelope: dict[str, Delivery] = {}
        self._tickets: set[str] = set()
        self._rng = rng or random.Random()
        self._next_id = 1
        self._available = asyncio.Event()
        self.on_change: Callable[[], None] = lambda: None  # e.g. bump a version
        self._tasks: set[asyncio.Task[None]] = set()

    # --- tickets & connections -------------------------------------------------------------
    def issue_ticket(self) -> str:
        """A single-use ticket for the ``apps.connections.open`` URL."""
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return ticket

    def live_connections(self) -> list[Connection]:
        return [c for c in self.connections.values() if c.live]

    @property
    def pings(self) -> list[bytes]:
        """Payloads of every PING frame received, across connections."""
        return [p for c in self.history for p in c.pings]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _update_available(self) -> None:
        if self.live_connections():
            self._available.set()
        else:
            self._available.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The WebSocket endpoint (``/link/?ticket=…``)."""
        ticket = request.query.get("ticket", "")
        if self.require_ticket and ticket not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid or used ticket: call apps.connections.open")
        # autoping off: PINGs are answered (or not) and recorded below
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self._tickets.discard(ticket)
        conn = Connection(self._next_id, ws, request, time.monotonic())
        self._next_id += 1
        if len(self.connections) >= self.max_connections:  # draining sockets count too
            await self._refuse(conn)
            return ws
        self.connections[conn.id] = conn
        self.history.append(conn)
        pinger = self._spawn(self._server_pings(conn)) if self.server_ping_interval else None
        if self.connection_lifetime is not None:  # ends by itself when the socket closes
            self._spawn(self._expire(conn, self.connection_lifetime))
        try:
            await ws.send_json(self._hello(conn))
            self._update_available()
            await self._read_loop(conn)
        finally:
            conn.closed.set()
            if pinger is not None:
                pinger.cancel()
            self.connections.pop(conn.id, None)
            self._update_available()
        return ws

    def _hello(self, conn: Connection) -> JsonDict:
        return {"type": "hello", "num_connections": len(self.connections),
                "debug_info": {"host": conn.host, "build_number": 1,
                               "approximate_connection_time":
                                   int(self.connection_lifetime or 18060)},
                "connection_info": {"app_id": self.app_id}}

    async def _refuse(self, conn: Connection) -> None:
        await conn.ws.send_json({"type": "disconnect", "reason": "too_many_websockets",
                                 "num_connections": len(self.connections),
                                 "debug_info": {"host": conn.host},
                                 "connection_info": {"app_id": self.app_id}})
        await conn.ws.close()

    async def _read_loop(self, conn: Connection) -> None:
        async for msg in conn.ws:
            if msg.type == WSMsgType.TEXT:
                await self._on_text(conn, msg.data)
            elif msg.type == WSMsgType.PING:
                conn.pings.append(bytes(msg.data))
                if self.answer_pings:
                    await conn.ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.pongs.append(bytes(msg.data))
            elif msg.type == WSMsgType.ERROR:
                break

    async def _on_text(self, conn: Connection, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            log.warning("slack emulator: non-JSON frame from client: %r", data[:200])
            return
        if not isinstance(frame, dict):
            return
        self.received.append(frame)
        if frame.get("type") == "ping":  # text-level ping (RTM style): answer in kind
            reply = {**frame, "type": "pong"}
            if "id" in frame:
                reply["reply_to"] = frame["id"]
            await conn.ws.send_json(reply)
        envelope_id = frame.get("envelope_id")
        if isinstance(envelope_id, str):
            self.acks.append(Ack(envelope_id, frame, conn.id, time.monotonic()))
            delivery = self._by_envelope.get(envelope_id)
            if delivery is not None and not delivery.acked.is_set():
                delivery.ack = frame
                delivery.acked.set()
                self.on_change()

    async def _server_pings(self, conn: Connection) -> None:
        assert self.server_ping_interval is not None
        while not conn.ws.closed:
            await asyncio.sleep(self.server_ping_interval)
            with suppress(ConnectionError, RuntimeError):
                await conn.ws.ping(f"Ping from {conn.host}".encode())

    # --- deliveries ------------------------------------------------------------------------
    def deliver(self, payload: JsonDict, *, envelope_type: str = "events_api",
                retries: int | None = None) -> Delivery:
        """Queue an ``event_callback`` payload (or an interactive one) for delivery; returns
        its tracking record."""
        delivery = Delivery(payload, envelope_type=envelope_type, retries=retries)
        self.deliveries.append(delivery)
        self._by_envelope[delivery.first_envelope_id] = delivery
        self._spawn(self._run_delivery(delivery))
        return delivery

    def delivery(self, envelope_id: str) -> Delivery:
        """The delivery an envelope id (of any attempt) belongs to; KeyError if unknown."""
        return self._by_envelope[envelope_id]

    async def _run_delivery(self, delivery: Delivery) -> None:
        try:
            while True:
                conn = await self._pick_connection()
                envelope = delivery.next_envelope()
                self._by_envelope[str(envelope["envelope_id"])] = delivery
                try:
                    await conn.ws.send_str(json.dumps(envelope))
                    delivery.connections.append(conn.id)
                except (ConnectionError, RuntimeError):
                    pass  # socket died under us: counts as an unacked attempt, like Slack
                self.on_change()
                with suppress(TimeoutError):
                    await asyncio.wait_for(delivery.acked.wait(), self.ack_timeout)
                if delivery.acked.is_set():
                    return
                limit = self.max_retries if delivery.retries is None else delivery.retries
                if delivery.attempts > limit:
                    delivery.failed = True
                    return
        finally:
            delivery.settled.set()
            self.on_change()

    async def _pick_connection(self) -> Connection:
        while True:
            live = self.live_connections()
            if live:
                return self._rng.choice(live)
            self._available.clear()
            await self._available.wait()

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> JsonDict:
        """The ack frame for this delivery (any attempt); TimeoutError if none in time."""
        delivery = self.delivery(envelope_id)
        await asyncio.wait_for(delivery.acked.wait(), timeout)
        assert delivery.ack is not None
        return delivery.ack

    async def wait_for_connections(self, count: int = 1, timeout: float = 5.0) -> None:
        """Until at least ``count`` live sockets are open."""
        async def poll() -> None:
            while len(self.live_connections()) < count:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(poll(), timeout)

    # --- connection faults -----------------------------------------------------------------
    @staticmethod
    async def _wait_closed(targets: list[Connection], timeout: float) -> None:
        waiters = [asyncio.ensure_future(c.closed.wait()) for c in targets]
        if waiters:
            _, pending = await asyncio.wait(waiters, timeout=timeout)
            for waiter in pending:
                waiter.cancel()

    async def _disconnect(self, targets: list[Connection], reason: str, grace: float) -> None:
        for conn in targets:
            conn.draining = True
            with suppress(ConnectionError, RuntimeError):
                await conn.ws.send_json({"type": "disconnect", "reason": reason,
                                         "debug_info": {"host": conn.host}})
        self._update_available()
        # real clients open their replacement first, then close the old socket themselves
        await self._wait_closed(targets, grace)
        for conn in targets:
            if not conn.closed.is_set():
                await conn.ws.close()

    async def disconnect_all(self, reason: str = "refresh_requested", *, grace: float = 1.0
                             ) -> int:
        """Send ``disconnect`` to every socket; close those the client has not closed in
        ``grace`` seconds. Returns how many sockets were told."""
        targets = [c for c in self.connections.values() if not c.ws.closed]
        await self._disconnect(targets, reason, grace)
        return len(targets)

    async def _expire(self, conn: Connection, lifetime: float) -> None:
        """Slack recycles sockets regularly ("Connections refresh regularly")."""
        with suppress(TimeoutError):
            await asyncio.wait_for(conn.closed.wait(), lifetime)
        if not conn.closed.is_set():
            await self._disconnect([conn], "refresh_requested", 1.0)

    async def drop_connections(self) -> int:
        """Abort every socket's TCP connection with no close frame (a network failure)."""
        targets = list(self.connections.values())
        for conn in targets:
            conn.draining = True
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        self._update_available()
        await self._wait_closed(targets, 2.0)
        return len(targets)

    async def close(self) -> None:
        """Stop deliveries and close every socket (server shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.connections.values()):
            with suppress(ConnectionError, RuntimeError):
                await conn.ws.close(code=1001, message=b"server shutdown")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
