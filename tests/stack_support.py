"""The real service (bolt + Socket Mode + poller + pipeline) against the Slack emulator, the
Elastic emulator and real Redis, for tests that must go through the whole app.

Same wiring as ``secbot run`` (``build_service``); ``settings`` overrides go to
``load_settings``. The Redis keys of the run are removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reliability_harness import SHARED_REDIS, delete_prefix
from shipped import shipped_rules

from secbot.rules.ruleset import RuleSet
from secbot.runtime.service import SecBotService
from secbot.runtime.settings import Settings, load_settings
from secbot.runtime.wiring import build_service
from secbot.store.base import AuditEntry
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

REPO = Path(__file__).resolve().parents[1]
INDEX = ".alerts-security.alerts-default"
TRIAGER, VIEWER = "U0TRIAGER", "U0VIEWER"  # the Slack emulator's alice (in S0TRIAGE) and bob


@dataclass
class Stack:
    slack: SlackEmulator
    elastic: ElasticEmulator
    service: SecBotService
    settings: Settings

    def top_messages(self, channel: str) -> list[Any]:
        return [m for m in self.slack.messages(channel) if not m.thread_ts or m.thread_ts == m.ts]

    def es_doc(self, uid: str) -> dict[str, Any]:
        return dict(self.elastic.document(INDEX, uid) or {})

    def thread_text(self, channel: str, ts: str) -> str:
        """Every message of the thread of ``ts`` (the top one included), one a line."""
        return "\n".join(m.text for m in self.slack.replies(channel, ts))


def es_status(stack: Stack, uid: str) -> str:
    """The alert's ``workflow_status`` in the Elastic stand-in now ("None" when absent)."""
    return str(stack.es_doc(uid).get("kibana.alert.workflow_status"))


async def audit(stack: Stack, uid: str) -> list[AuditEntry]:
    """The audit trail of alert ``uid`` in the stack's Redis, oldest first."""
    store = RedisStore.from_url(stack.settings.redis_url, stack.settings.redis_prefix)
    try:
        return await store.read_audit(uid)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def world(name: str, channels: Iterable[str] = ()
                ) -> AsyncIterator[tuple[SlackEmulator, ElasticEmulator, str]]:
    """Slack and Elastic stand-ins and a fresh Redis prefix, for tests that start SecBot
    themselves (a restart, or a second replica, on the same state); the prefix's keys are
    removed on exit."""
    prefix = f"secbot-test-{name}:{uuid.uuid4().hex}:"
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        for channel in channels:
            slack.add_channel(channel, channel.lower().removeprefix("c0"))
        try:
            yield slack, es, prefix
        finally:
            await delete_prefix(SHARED_REDIS, prefix)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def posted(stack: Stack, channel: str, count: int = 1) -> list[Any]:
    async def check() -> list[Any] | None:
        top = stack.top_messages(channel)
        return top if len(top) >= count else None

    return list(await eventually(check))


def stack_settings(slack: SlackEmulator, es: ElasticEmulator, prefix: str,
                   **overrides: Any) -> Settings:
    """Settings of a service on these stand-ins and Redis prefix; ``overrides`` win."""
    return load_settings(**{
        "slack_bot_token": slack.bot_token, "slack_app_token": slack.app_token,
        "slack_api_url": slack.api_url, "siem": "elastic", "elasticsearch_url": es.url,
        "kibana_url": es.kibana_url, "default_channel": "C0DEFAULT", "triagers": ["S0TRIAGE"],
        "poll_interval": 0.2, "http_port": 0, "redis_prefix": prefix, "slack_pace": 0,
        **overrides})


@contextlib.asynccontextmanager
async def serve(slack: SlackEmulator, es: ElasticEmulator, settings: Settings, rules: RuleSet,
                *, connections: int = 1, **build: Any) -> AsyncIterator[Stack]:
    """The service ``build_service`` wires (``build``: its keyword options), running until
    exit, then stopped and its resources closed; ``connections``: the Socket Mode
    connections the stand-in must have seen by the time it is handed out."""
    service, resources = await build_service(settings, rules, **build)
    task = asyncio.create_task(service.run())
    try:
        await slack.wait_for_connections(connections, timeout=10)
        yield Stack(slack, es, service, settings)
    finally:
        service.stop()
        await asyncio.wait_for(task, 10)
        await resources.aclose()


@contextlib.asynccontextmanager
async def running_stack(
    rules: RuleSet | None = None,
    *,
    before_start: Callable[[SlackEmulator, ElasticEmulator], Mapping[str, Any] | None]
    | None = None,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """A started service. ``before_start`` may seed or break the emulators first, and may
    return settings that depend on them (their URLs); those win over ``overrides``."""
    prefix = f"secbot-stack:{uuid.uuid4().hex}:"
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        late = before_start(slack, es) if before_start is not None else None
        settings = stack_settings(slack, es, prefix, rules_dir=REPO / "rules",
                                  **{**overrides, **(late or {})})
        try:
            async with serve(slack, es, settings, rules or shipped_rules()) as stack:
                yield stack
        finally:
            await delete_prefix(settings.redis_url, prefix)
