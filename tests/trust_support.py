"""Shared by tests/test_shadow.py and tests/test_review.py: SecBot services on shared
stand-ins and one Redis prefix (so a restart, or a second replica, sees the same state),
rule files written per test, reactions and ``secbot rules trust --json`` as a person runs it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from stack_support import Stack, eventually, serve, stack_settings
from stack_support import world as stack_world
from typer.testing import CliRunner

from secbot.cli import app
from secbot.rules.loader import load_rules
from secbot.rules.ruleset import RuleSet
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator
from secbot_emulators.slack_events import reaction_added

BOT = "U0SECBOT"
CHANNELS = ("C0SHADOW", "C0ENFORCE", "C0EXPIRED", "C0AUTO", "C0OTHER", "C0REVIEW")


def write_rules(directory: Path, *texts: str) -> RuleSet:
    directory.mkdir(parents=True, exist_ok=True)
    for text in texts:
        rule_id = text.split("id:", 1)[1].split()[0]
        (directory / f"{rule_id}.yaml").write_text(text)
    return load_rules(directory)


def alert(uid: str, rule_name: str, email: str = "ann@example.com") -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-01T10:00:00.000Z", "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open", "kibana.alert.severity": "low",
        "kibana.alert.rule.name": rule_name, "user": {"email": email},
    }


def world(name: str) -> contextlib.AbstractAsyncContextManager[
        tuple[SlackEmulator, ElasticEmulator, str]]:
    """The stand-ins with the trust tests' channels, and a fresh Redis prefix."""
    return stack_world(name, CHANNELS)


@contextlib.asynccontextmanager
async def service(slack: SlackEmulator, es: ElasticEmulator, ruleset: RuleSet, prefix: str,
                  connections: int = 1, **overrides: Any) -> AsyncIterator[Stack]:
    """One SecBot process (``connections``: Socket Mode connections expected by then)."""
    settings = stack_settings(slack, es, prefix, **{"intake_port": 0, **overrides})
    async with serve(slack, es, settings, ruleset, connections=connections) as stack:
        yield stack


async def message_of(stack: Stack, channel: str, uid: str) -> Any:
    """The top-level message SecBot posted for alert ``uid``."""

    async def find() -> Any:
        for message in stack.top_messages(channel):
            payload = (message.metadata or {}).get("event_payload") or {}
            if payload.get("alert_uuid") == uid:
                return message
        return None

    return await eventually(find)


def react(stack: Stack, user: str, emoji: str, channel: str, ts: str) -> None:
    stack.slack.inject_event(reaction_added(user, emoji, channel, ts, item_user=BOT))


def shown(message: Any) -> str:
    return str(message.text) + json.dumps(message.blocks or [])


async def trust_json(rules_dir: Path, prefix: str, promote_after: int = 50) -> dict[str, Any]:
    """``secbot rules trust DIR --json``, as a person runs it, by rule id."""
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["rules", "trust", str(rules_dir), "--json"],
        env={"SECBOT_REDIS_PREFIX": prefix, "SECBOT_TRUST_PROMOTE_AFTER": str(promote_after),
             "SECBOT_LISTS_DIR": str(rules_dir / "no-lists")})
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    return {row["rule"]: row for row in document["rules"]}


async def settled(stack: Stack, check: Any, timeout: float = 20.0) -> Any:
    async def probe() -> Any:
        return check()

    return await eventually(probe, timeout)
