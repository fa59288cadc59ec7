"""Status changes from Slack as a saga, through the real app: bolt over the Slack stand-in's
Socket Mode, the Elastic/Kibana stand-in with faults on one Kibana route, real Redis.

What a triager must be able to rely on: once the SIEM changed, the audit entry is there and
they hear about it (edited message, or an ephemeral naming what did not follow); when the SIEM
did not change, nothing is audited, they are told, and a redelivered event finishes the job;
a message acts on exactly the alerts it shows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from reliability_harness import delete_prefix
from shipped import shipped_rules
from stack_support import INDEX, TRIAGER, Stack, audit, eventually, posted, serve, stack_settings

from secbot.domain.status import AuditAction
from secbot.resilience.retry import RetryPolicy
from secbot.runtime.siem_clients import build_elastic_siem
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator
from secbot_emulators.slack_events import reaction_added

REPO = Path(__file__).resolve().parents[1]
RULES = shipped_rules()
PROD = "C0PRODSEC"  # where the GCP rule routes prod-* projects (no auto-close possible here)
#: The SIEM client as built by the composition root, with a short timeout and few retries so a
#: hanging Kibana route costs seconds, not a minute.
FAST_SIEM = RetryPolicy(attempts=2, base=0.05, cap=0.1, budget=3.0)


@pytest.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    prefix = f"secbot-saga:{uuid.uuid4().hex}:"
    overrides: dict[str, Any] = getattr(request, "param", {})
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        settings = stack_settings(slack, es, prefix, rules_dir=REPO / "rules", **overrides)
        siem = build_elastic_siem(settings, request_timeout=1.0, retry=FAST_SIEM)
        try:
            async with serve(slack, es, settings, RULES, siem=siem) as running:
                yield running
        finally:
            await delete_prefix(settings.redis_url, prefix)
            await siem.close()


def gcp_alert(uid: str, email: str = "dev@example.com", minute: int = 0) -> dict[str, Any]:
    return {
        "@timestamp": f"2026-11-01T10:{minute:02d}:00.000Z",
        "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "high",
        "kibana.alert.rule.name": "GCP Service Account Key Creation",
        "cloud": {"project": {"id": "prod-payments"}},
        "user": {"email": email},
        "source.ip": "198.51.100.7",
    }


def status(stack: Stack, uid: str) -> str:
    return str(stack.es_doc(uid).get("kibana.alert.workflow_status"))


def shown(stack: Stack, ts: str) -> str:
    message = stack.slack.message(PROD, ts)
    return json.dumps({"text": message.text, "blocks": message.blocks})


def notes_to(stack: Stack, user: str) -> list[str]:
    return [str(e.get("text")) for e in stack.slack.ephemeral if e.get("user") == user]


@pytest.mark.parametrize(
    "fault",
    [{"status": 500}, {"status": 404}, {"status": None, "hang": 3.0}],
    ids=["tags-500", "tags-route-missing", "tags-timeout"],
)
async def test_tags_failing_after_the_status_changed_still_audits_edits_and_tells(
    stack: Stack, fault: dict[str, Any]
) -> None:
    stack.elastic.index_documents(INDEX, [gcp_alert("sg-1")])
    [message] = await posted(stack, PROD)
    stack.elastic.kibana.fail_route("tags", **fault)
    stack.slack.user_reacts(TRIAGER, "white_check_mark", PROD, message.ts)

    async def told() -> list[str]:
        return [n for n in notes_to(stack, TRIAGER) if "closed_by:" in n]

    [note] = await eventually(told, timeout=40)
    assert "could not be added" in note
    assert status(stack, "sg-1") == "closed"
    [entry] = await audit(stack, "sg-1")
    assert (entry.action, entry.actor, entry.extra["slack_user"]) == (
        AuditAction.CLOSED, "alice@example.com", TRIAGER)
    assert "Closed by <@U0TRIAGER>" in shown(stack, message.ts)


async def test_status_call_failing_audits_nothing_tells_and_a_redelivery_finishes(
    stack: Stack,
) -> None:
    stack.elastic.index_documents(INDEX, [gcp_alert("sg-2")])
    [message] = await posted(stack, PROD)
    stack.elastic.kibana.fail_route("status", status=500)
    event = reaction_added(TRIAGER, "white_check_mark", PROD, message.ts,
                           item_user="U0SECBOT", event_ts="1700000000.000002")
    stack.slack.inject_event(event, event_id="Ev0SAGA")

    async def told() -> list[str]:
        return [n for n in notes_to(stack, TRIAGER) if "did not complete" in n]

    [note] = await eventually(told, timeout=30)
    assert "React again" in note
    assert status(stack, "sg-2") == "open"
    assert not [e for e in await audit(stack, "sg-2") if e.action is AuditAction.CLOSED]
    assert "Closed by" not in shown(stack, message.ts)

    stack.elastic.kibana.route_faults.clear()
    stack.slack.inject_event(event, event_id="Ev0SAGA")  # Slack redelivers the same event

    async def finished() -> bool:
        return status(stack, "sg-2") == "closed" and "Closed by <@U0TRIAGER>" in shown(
            stack, message.ts)

    await eventually(finished, timeout=30)
    assert [e.action for e in await audit(stack, "sg-2")] == [AuditAction.CLOSED]


async def test_kibana_unreachable_is_told_not_raised_into_bolt(stack: Stack) -> None:
    stack.elastic.index_documents(INDEX, [gcp_alert("sg-3")])
    [message] = await posted(stack, PROD)
    stack.elastic.fail_for(30, status=503, target="kibana")
    stack.slack.user_reacts(TRIAGER, "x", PROD, message.ts)

    async def told() -> list[str]:
        return [n for n in notes_to(stack, TRIAGER) if "did not complete" in n]

    await eventually(told, timeout=30)
    assert status(stack, "sg-3") == "open"
    assert await audit(stack, "sg-3") == []


async def test_check_on_the_first_message_closes_it_and_its_duplicates(stack: Stack) -> None:
    stack.elastic.index_documents(
        INDEX, [gcp_alert(f"sg-d{i}", minute=i) for i in range(3)])  # one dedup key
    [first] = await posted(stack, PROD)

    async def threaded() -> bool:
        replies = stack.slack.replies(PROD, first.ts)
        return any("2 more alerts" in r.text for r in replies if r.ts != first.ts)

    await eventually(threaded)
    stack.slack.user_reacts(TRIAGER, "white_check_mark", PROD, first.ts)

    async def all_closed() -> bool:
        return all(status(stack, f"sg-d{i}") == "closed" for i in range(3))

    await eventually(all_closed)
    for i in range(3):
        assert [e.action for e in await audit(stack, f"sg-d{i}")] == [AuditAction.CLOSED]

    async def edited() -> bool:
        return "3 alerts: this one and 2 duplicates" in shown(stack, first.ts)

    await eventually(edited)
    assert "Closed by <@U0TRIAGER>" in shown(stack, first.ts)
    assert notes_to(stack, TRIAGER) == []
