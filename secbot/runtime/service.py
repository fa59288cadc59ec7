"""The running service: Socket Mode app + poll loop + health server, with a graceful drain.

SIGTERM (or :meth:`SecBotService.stop`) stops taking new alerts; the alert being handled
finishes (its checkpoint and posted-marker are written), then Socket Mode is closed and
``run`` returns, so the process exits 0 well within 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from secbot.domain.alert import Alert
from secbot.domain.errors import SecBotError
from secbot.intake.consumer import IntakeConsumer, StopConsuming
from secbot.intake.handoff import TriageHandler
from secbot.intake.listener import IntakeConfig, start_intake_server
from secbot.intake.poller import AlertPoller
from secbot.pipeline.decision import Decision
from secbot.resilience.loop import cancel_and_wait
from secbot.runtime.health import HealthState, start_health_server
from secbot.runtime.lease import LeaseKeeper
from secbot.runtime.logs import get_logger
from secbot.runtime.metrics import Metrics
from secbot.siem.base import AlertArchive

log = get_logger("secbot.runtime.service")


class Draining(SecBotError):
    """Raised to the poller when a stop was requested: the checkpoint stays before this alert."""


@dataclass
class IntakeParts:
    """The push intake: its listener (own port) and the consumer of what it stored."""

    config: IntakeConfig
    port: int
    host: str = "0.0.0.0"
    consumer: IntakeConsumer | None = None  # set by the service (it owns the handler)
    archive: AlertArchive | None = None  # mapped sources' alerts are kept here first


@dataclass
class ServiceParts:
    """Everything the composition root built; the service only runs it."""

    poller: AlertPoller
    handler: TriageHandler
    socket: AsyncSocketModeHandler | None
    health: HealthState
    metrics: Metrics
    poll_interval: float
    lease: LeaseKeeper | None = None
    # A container health endpoint listens on all interfaces.
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    intake: IntakeParts | None = None
    # Loops every replica runs beside the poller (due questions of secbot/ask/); cancelled
    # at shutdown, after the poller has drained.
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()


class SecBotService:
    def __init__(self, parts: ServiceParts) -> None:
        self.parts = parts
        self._stopping = asyncio.Event()
        self._http: web.AppRunner | None = None
        self._intake_http: web.AppRunner | None = None
        self._intake_task: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []

    def stop(self) -> None:
        self._stopping.set()

    async def _handle(self, alert: Alert) -> Decision | None:
        if self._stopping.is_set():
            raise Draining
        self.parts.metrics.alerts_polled.inc()
        return await self._hand_off(alert)

    async def _handle_pushed(self, alert: Alert) -> Decision | None:
        if self._stopping.is_set():
            raise StopConsuming  # stays pending in the stream; another process takes it
        return await self._hand_off(alert)

    async def _hand_off(self, alert: Alert) -> Decision | None:
        decision = await self.parts.handler(alert)
        if decision is not None:
            rule = decision.rule_id or "(unmatched)"
            if decision.post:
                self.parts.metrics.alerts_posted.labels(rule).inc()
            else:
                self.parts.metrics.alerts_threaded.labels(rule).inc()
            if decision.auto_close:
                self.parts.metrics.alerts_auto_closed.labels(rule).inc()
        return decision

    async def poll_once(self) -> None:
        try:
            count = await self.parts.poller.poll_once(self._handle)
        except Draining:
            return
        except Exception as exc:  # every failure is retried next poll; nothing is skipped
            kind = type(exc).__name__
            self.parts.metrics.poll_errors.labels(kind).inc()
            self.parts.health.poll_failed(f"{kind}: {exc}")
            log.warning("poll_failed", error=str(exc), kind=kind)
            return
        self.parts.health.poll_succeeded()
        if count:
            log.info("polled", alerts=count)

    async def run(self) -> None:
        """Run until :meth:`stop`; returns after draining."""
        parts = self.parts
        if parts.http_port:
            self._http = await start_health_server(
                parts.health, parts.metrics, parts.http_host, parts.http_port
            )
        if parts.socket is not None:
            await parts.socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("socket_mode_connected")
        await self._start_intake()
        self._background = [asyncio.create_task(job()) for job in parts.background]
        if parts.lease is not None:
            await parts.lease.refresh()
            parts.lease.start()
        try:
            while not self._stopping.is_set():
                if parts.lease is not None and not parts.lease.held:
                    # A standby also tries every cycle, not only every ttl/3 in the keeper:
                    # a dead leader is replaced within lease TTL + one poll interval.
                    await parts.lease.refresh()
                if parts.lease is None or parts.lease.held:
                    parts.health.role = "leader"
                    await self.poll_once()
                else:
                    parts.health.role = "standby"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=parts.poll_interval)
        finally:
            await self._shutdown()

    async def _start_intake(self) -> None:
        intake = self.parts.intake
        if intake is None:
            return
        if intake.consumer is None:
            intake.consumer = IntakeConsumer(intake.config.queue, self._handle_pushed,
                                             archive=intake.archive)
        await intake.config.queue.ensure_group()
        self.parts.health.intake_backlog = intake.config.queue.backlog
        self._intake_task = asyncio.create_task(intake.consumer.run())
        self._intake_http = await start_intake_server(intake.config, intake.host, intake.port)
        log.info("intake_listening", port=intake.port, sources=sorted(intake.config.sources))

    async def _stop_intake(self) -> None:
        # Stop taking requests first, then let the alert being handed off finish.
        if self._intake_http is not None:
            await self._intake_http.cleanup()
        intake = self.parts.intake
        if intake is not None and intake.consumer is not None:
            intake.consumer.stop()
        if self._intake_task is not None:
            try:
                await asyncio.wait_for(self._intake_task, timeout=20.0)
            except (TimeoutError, Exception) as exc:  # pending entries are taken over later
                log.warning("intake_stop_incomplete", kind=type(exc).__name__)

    async def _shutdown(self) -> None:
        log.info("draining")
        await self._stop_intake()
        await cancel_and_wait(self._background, what="background loops")
        if self.parts.lease is not None:
            await self.parts.lease.stop()  # lets another replica take over at once
        if self.parts.socket is not None:
            with contextlib.suppress(Exception):
                await self.parts.socket.close_async()  # type: ignore[no-untyped-call]
        if self._http is not None:
            await self._http.cleanup()
        log.info("stopped")


def socket_connected(handler: AsyncSocketModeHandler) -> Any:
    """A health probe for the Socket Mode connection."""

    async def probe() -> bool:
        client = handler.client
        try:
            return bool(await client.is_connected())
        except Exception:
            return False

    return probe
