"""The intake listener: ``POST /v1/alerts/<source>`` (DESIGN.md §11, docs/intake-openapi.yaml).

Checks, in order, each answered without detail an attacker could use:

1. ``404`` unknown source (the names are configuration, not secrets);
2. ``401 {"error": "unauthorized"}`` missing or wrong Bearer token of that source
   (``hmac.compare_digest``: the time does not depend on how much of the token matched);
3. ``413`` body over ``max_bytes``, by ``Content-Length`` *and* by the bytes actually read
   (a chunked or lying body is cut off at the limit, never buffered whole);
4. ``400 {"error", "index", "field"}`` for the first bad alert (or a body of no known shape);
5. ``429`` with ``Retry-After`` when the source is over its rate (token bucket, in alerts);
6. ``202 {"accepted": N}`` once every alert is in the Redis stream (one MULTI/EXEC);
   ``503`` with ``Retry-After`` if Redis did not take them (nothing half-stored).

Neither bodies nor tokens are ever logged: log lines carry the source, counts and status.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from secbot.domain.errors import SecBotError
from secbot.intake import jira_webhook
from secbot.intake.bodies import BodyError, parse_alerts
from secbot.intake.jira_webhook import JiraHook
from secbot.intake.queue import IntakeQueue, QueueUnavailable
from secbot.intake.sources import AlertRejected, IntakeSource

log = structlog.stdlib.get_logger("secbot.intake.listener")

#: How many seconds of the rate a source may send at once (the bucket's size).
BURST_SECONDS = 2.0


class TokenBucket:
    """``rate`` alerts/s with bursts of ``rate * BURST_SECONDS``.

    A request of N alerts passes while the bucket is not empty and then takes all N (the
    level may go below zero): a large batch is never refused forever, yet the average rate
    holds, because the next requests wait until the debt is paid back.
    """

    def __init__(self, rate: float, burst_seconds: float = BURST_SECONDS) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * burst_seconds)
        self.level = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def retry_after(self) -> int | None:
        """Seconds to wait before sending, or None when a request may pass now."""
        self._refill()
        if self.level > 0:
            return None
        return max(1, math.ceil((1 - self.level) / self.rate))

    def take(self, count: int) -> None:
        self.level -= count


@dataclass
class IntakeConfig:
    """What the listener needs, built by the composition root."""

    sources: Mapping[str, IntakeSource]
    tokens: Mapping[str, str]  # source -> token (plain: only compared, never logged)
    queue: IntakeQueue
    max_bytes: int = 1_048_576
    rate: float = 500.0
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    #: Called with (source, HTTP status, alerts accepted) after every answer (metrics). The
    #: source of a 404 is ``"(unknown)"``: a label must not take whatever a client sends.
    observe: Callable[[str, int, int], None] | None = None
    #: ``POST /v1/jira/webhook`` (issue resolved → alert closed), when a secret is configured.
    jira: JiraHook | None = None

    def bucket(self, source: str) -> TokenBucket:
        found = self.buckets.get(source)
        if found is None:
            found = self.buckets[source] = TokenBucket(self.rate)
        return found


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


UNAUTHORIZED = {"error": "unauthorized"}


def _authorized(request: web.Request, expected: str | None) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # Compared even when the scheme is wrong or no token is configured: the answer time
    # says nothing about which of them it was.
    ok = hmac.compare_digest(given.strip().encode(), (expected or "\0").encode())
    return ok and expected is not None and scheme.lower() == "bearer"


class TooLarge(SecBotError):
    """The body is over ``SECBOT_INTAKE_MAX_BYTES`` (declared or as read): a 413."""


async def _read_limited(request: web.Request, limit: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _documents(
    source: IntakeSource, items: list[Any], received: datetime
) -> list[dict[str, Any]] | web.Response:
    docs = []
    for index, item in enumerate(items):
        try:
            docs.append(source.document(item, received))
        except AlertRejected as exc:
            return _error(400, f"alert {index}: {exc}", index=index, field=exc.field)
    return docs


def _too_large(limit: int) -> web.Response:
    return _error(413, f"body larger than {limit} bytes")


def intake_app(config: IntakeConfig) -> web.Application:
    """The aiohttp application of the listener (its own port, next to /healthz)."""

    async def receive(request: web.Request) -> web.Response:
        name = request.match_info["source"]
        response, accepted = await _answer(request, name)
        if config.observe is not None:
            config.observe(name if name in config.sources else "(unknown)", response.status,
                           accepted)
        return response

    async def _answer(request: web.Request, name: str) -> tuple[web.Response, int]:
        """The answer and how many alerts it accepted."""
        source = config.sources.get(name)
        if source is None:
            return _error(404, "unknown source"), 0
        if not _authorized(request, config.tokens.get(name)):
            log.info("intake_refused", source=name, status=401)
            return web.json_response(UNAUTHORIZED, status=401), 0
        try:
            body = await _read_limited(request, config.max_bytes)
        except TooLarge:
            log.info("intake_refused", source=name, status=413)
            return _too_large(config.max_bytes), 0
        return await _accept(config, source, request.content_type, body)

    async def wrong_method(_: web.Request) -> web.Response:
        return web.json_response({"error": "use POST"}, status=405, headers={"Allow": "POST"})

    async def jira(request: web.Request) -> web.Response:
        assert config.jira is not None
        try:
            body = await _read_limited(request, config.max_bytes)
        except TooLarge:
            return _too_large(config.max_bytes)
        return await jira_webhook.handle(request, config.jira, body)

    app = web.Application(client_max_size=config.max_bytes + 1)
    if config.jira is not None:
        app.router.add_post(jira_webhook.PATH, jira)
    app.router.add_post("/v1/alerts/{source}", receive)
    app.router.add_route("*", "/v1/alerts/{source}", wrong_method)
    return app


async def _accept(
    config: IntakeConfig, source: IntakeSource, content_type: str, body: bytes
) -> tuple[web.Response, int]:
    """The answer to a well-formed, authorised request and how many alerts it accepted."""
    try:
        items = parse_alerts(body, content_type)
    except BodyError as exc:
        log.info("intake_refused", source=source.name, status=400)
        return _error(400, str(exc), index=None, field=None), 0
    docs = _documents(source, items, datetime.now(UTC))
    if isinstance(docs, web.Response):
        log.info("intake_refused", source=source.name, status=400)
        return docs, 0
    bucket = config.bucket(source.name)
    wait = bucket.retry_after()
    if wait is not None:
        log.info("intake_refused", source=source.name, status=429, alerts=len(docs))
        return web.json_response({"error": "rate limited", "retry_after": wait}, status=429,
                                 headers={"Retry-After": str(wait)}), 0
    try:
        await config.queue.append(source.name, docs)
    except QueueUnavailable:
        log.warning("intake_store_failed", source=source.name, alerts=len(docs))
        return web.json_response({"error": "store unavailable, retry"}, status=503,
                                 headers={"Retry-After": "1"}), 0
    bucket.take(len(docs))
    return web.json_response({"accepted": len(docs)}, status=202), len(docs)


async def start_intake_server(config: IntakeConfig, host: str, port: int) -> web.AppRunner:
    """Listen on ``host:port``; the caller cleans the runner up on shutdown."""
    runner = web.AppRunner(intake_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


__all__ = ["IntakeConfig", "TokenBucket", "intake_app", "start_intake_server"]
