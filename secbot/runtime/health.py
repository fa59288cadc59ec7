"""Readiness and metrics over HTTP: ``GET /healthz`` and ``GET /metrics`` (DESIGN.md §10).

``/healthz`` answers 200 ``{"status": "ok", ...}`` once Socket Mode is connected and the first
poll succeeded, and 503 ``{"status": "degraded", "checks": {...}}`` otherwise.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from secbot.destinations.jobs import DestinationState
from secbot.runtime.metrics import Metrics


@dataclass
class HealthState:
    """Facts the service updates as it runs; ``checks`` turns them into the readiness answer."""

    socket_connected: Callable[[], Awaitable[bool]] | None = None
    store_ping: Callable[[], Awaitable[bool]] | None = None
    last_poll_ok: float | None = None
    last_poll_error: str | None = None
    poll_stale_after: float = 60.0
    started: float = field(default_factory=time.monotonic)
    role: str = "starting"  # leader (polls) | standby (another replica polls)
    #: Entries of the intake stream not yet handed off (set when the intake runs).
    intake_backlog: Callable[[], Awaitable[int]] | None = None
    #: Per destination: queued, failing, last error, oldest job age (when any is configured).
    destinations: Callable[[], Awaitable[list[DestinationState]]] | None = None

    def poll_succeeded(self) -> None:
        self.last_poll_ok = time.monotonic()
        self.last_poll_error = None

    def poll_failed(self, reason: str) -> None:
        self.last_poll_error = reason

    async def checks(self) -> dict[str, Any]:
        socket = await self.socket_connected() if self.socket_connected else False
        store = await self.store_ping() if self.store_ping else False
        age = None if self.last_poll_ok is None else time.monotonic() - self.last_poll_ok
        siem_ok = age is not None and age <= self.poll_stale_after and not self.last_poll_error
        if self.role == "standby":
            siem_ok = True  # the leader polls; a standby is ready to take over
        checks: dict[str, Any] = {
            "role": {"ok": self.role != "starting", "value": self.role},
            "socket_mode": {"ok": socket},
            "redis": {"ok": store},
            "siem": {
                "ok": siem_ok,
                "last_poll_age_seconds": None if age is None else round(age, 1),
                "error": self.last_poll_error,
            },
        }
        if self.intake_backlog is not None:
            checks["intake"] = await self._intake()
        if self.destinations is not None:
            checks["destinations"] = await self._destinations()
        return checks

    async def _destinations(self) -> dict[str, Any]:
        """Informational like the intake: a destination that is down delays only its own
        jobs (the outbox keeps them), and restarting SecBot would not bring it back."""
        assert self.destinations is not None
        try:
            states = await self.destinations()
        except Exception as exc:
            return {"ok": True, "error": type(exc).__name__}
        return {"ok": True, **{s.name: {"queued": s.queued, "failing": s.failing,
                                       "last_error": s.last_error,
                                       "oldest_age_seconds": round(s.oldest_age, 1)}
                               for s in states}}

    async def _intake(self) -> dict[str, Any]:
        """The consumer's pending count. Informational: a backlog drains by itself (and an
        unreachable Redis already fails the ``redis`` check)."""
        assert self.intake_backlog is not None
        try:
            return {"ok": True, "pending": await self.intake_backlog()}
        except Exception as exc:  # a probe reports, it does not raise
            return {"ok": True, "pending": None, "error": type(exc).__name__}


def health_app(state: HealthState, metrics: Metrics) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        checks = await state.checks()
        ok = all(check["ok"] for check in checks.values())
        body = {"status": "ok" if ok else "degraded", "checks": checks}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        if state.destinations is not None:
            with contextlib.suppress(Exception):  # a scrape shows the rest without them
                metrics.observe_destinations(await state.destinations())
        return web.Response(
            body=metrics.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def start_health_server(
    state: HealthState, metrics: Metrics, host: str, port: int
) -> web.AppRunner:
    runner = web.AppRunner(health_app(state, metrics), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
