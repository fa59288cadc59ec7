"""Triaging alert groups through the real app (issue 11, the triage half): bolt over the Slack
stand-in's Socket Mode, the Elastic/Kibana stand-in with faults, real Redis.

What a triager must be able to rely on: a bulk change that Kibana breaks off half-way shows and
audits exactly the alerts that changed, reports the rest and never marks them closed; a bulk
change costs a few SIEM calls, not one per alert; ``close <uuid prefix>`` in a group's thread
changes exactly that alert; a new message says what else is open for the same person.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from shipped import shipped_rules
from stack_support import INDEX, TRIAGER, VIEWER, Stack, audit, eventually, posted

from secbot.domain.status import AuditAction
from secbot.resilience.retry import RetryPolicy
from secbot.runtime.settings import Settings, load_settings
from secbot.runtime.siem_clients import build_elastic_siem
from secbot.runtime.wiring import build_service
from secbot.siem.elastic import ElasticSiem
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

REPO = Path(__file__).resolve().parents[1]
RULES = shipped_rules()
PROD = "C0PRODSEC"  # where the GCP rule routes prod-* projects (no auto-close possible here)
FAST_SIEM = RetryPolicy(attempts=2, base=0.05, cap=0.1, budget=3.0)


class GroupStack(Stack):
    siem: ElasticSiem


@pytest.fixture
async def stack() -> AsyncIterator[GroupStack]:
    prefix = f"secbot-groups:{uuid.uuid4().hex}:"
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        settings = load_settings(
            slack_bot_token=slack.bot_token, slack_app_token=slack.app_token,
            slack_api_url=slack.api_url, siem="elastic", elasticsearch_url=es.url,
            kibana_url=es.kibana_url, default_channel="C0DEFAULT", triagers=["S0TRIAGE"],
            poll_interval=0.2, http_port=0, redis_prefix=prefix, slack_pace=0,
            rules_dir=REPO / "rules",
        )
        siem = build_elastic_siem(settings, request_timeout=2.0, retry=FAST_SIEM)
        service, resources = await build_service(settings, RULES, siem=siem)
        task = asyncio.create_task(service.run())
        try:
            await slack.wait_for_connections(1, timeout=10)
            built = GroupStack(slack, es, service, settings)
            built.siem = siem
            yield built
        finally:
            service.stop()
            await asyncio.wait_for(task, 10)
            await _forget(settings, prefix)
            await resources.aclose()
            await siem.close()


async def _forget(settings: Settings, prefix: str) -> None:
    store = RedisStore.from_url(settings.redis_url, prefix)
    keys = [k async for k in store._client.scan_iter(match=prefix + "*")]
    if keys:
        await store._client.delete(*keys)
    await store.close()


def gcp_alert(uid: str, *, email: str = "dev@example.com", project: str = "prod-payments",
              ip: str = "198.51.100.7", seconds_ago: int = 60) -> dict[str, Any]:
    stamp = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return {
        "@timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "high",
        "kibana.alert.rule.name": "GCP Service Account Key Creation",
        "cloud": {"project": {"id": project}},
        "user": {"email": email},
        "source.ip": ip,
    }


async def group_size(stack: Stack, first: str) -> int:
    store = RedisStore.from_url(stack.settings.redis_url, stack.settings.redis_prefix)
    try:
        return 1 + len(await store.group_members(first))
    finally:
        await store.close()


def status(stack: Stack, uid: str) -> str:
    return str(stack.es_doc(uid).get("kibana.alert.workflow_status"))


def shown(stack: Stack, ts: str) -> str:
    message = stack.slack.message(PROD, ts)
    return json.dumps({"text": message.text, "blocks": message.blocks})


def notes_to(stack: Stack, user: str) -> list[str]:
    return [str(e.get("text")) for e in stack.slack.ephemeral if e.get("user") == user]


async def duplicates_group(stack: Stack, uids: list[str]) -> Any:
    """One message whose group is ``uids`` (the first alert and its duplicates, in order)."""
    stack.elastic.index_documents(
        INDEX, [gcp_alert(u, seconds_ago=120 - i) for i, u in enumerate(uids)])
    [first] = await posted(stack, PROD)

    async def complete() -> bool:
        return await group_size(stack, uids[0]) == len(uids)

    await eventually(complete)
    return first


async def test_kibana_failing_mid_bulk_change_audits_and_shows_only_what_changed(
    stack: GroupStack,
) -> None:
    uids = [f"bulk-{i}" for i in range(5)]
    first = await duplicates_group(stack, uids)
    stack.siem.chunk = 2  # five alerts: Kibana calls of 2, 2 and 1 ids
    stack.elastic.kibana.fail_route("status", status=500, after=1)  # the 2nd call on fails
    stack.slack.user_reacts(TRIAGER, "white_check_mark", PROD, first.ts)

    async def told() -> list[str]:
        return [n for n in notes_to(stack, TRIAGER) if "of 5" in n]

    [note] = await eventually(told, timeout=40)
    assert "closed 2 of 5; 3 failed" in note and "react again to retry" in note
    assert [status(stack, u) for u in uids] == ["closed"] * 2 + ["open"] * 3
    for uid in uids[:2]:
        [entry] = await audit(stack, uid)
        assert (entry.action, entry.actor, entry.extra["slack_user"]) == (
            AuditAction.CLOSED, "alice@example.com", TRIAGER)
    for uid in uids[2:]:
        assert await audit(stack, uid) == []

    async def line_shown() -> bool:
        return "only 2 of 5 alerts changed" in shown(stack, first.ts)

    await eventually(line_shown)

    # Kibana recovers; reacting again finishes the rest, each audited once.
    stack.elastic.kibana.route_faults.clear()
    stack.slack.user_unreacts(TRIAGER, "white_check_mark", PROD, first.ts)
    stack.slack.user_reacts(TRIAGER, "white_check_mark", PROD, first.ts)

    async def all_closed() -> bool:
        return all(status(stack, u) == "closed" for u in uids)

    await eventually(all_closed, timeout=30)
    for uid in uids:
        assert [e.action for e in await audit(stack, uid)] == [AuditAction.CLOSED]


async def test_a_thousand_alert_status_change_costs_a_few_siem_calls() -> None:
    async with ElasticEmulator.running() as emu:
        ids = [f"k{i:04d}" for i in range(1000)]
        emu.index_documents(INDEX, [gcp_alert(i) for i in ids])
        settings = load_settings(siem="elastic", elasticsearch_url=emu.url,
                                 kibana_url=emu.kibana_url)
        siem = build_elastic_siem(settings, retry=FAST_SIEM)
        try:
            before = emu.calls()
            change = await siem.set_status(ids, "closed", reason="benign_positive", user="U1")
            await siem.add_tags(ids, ["closed_by:alice@example.com"])
            spent = emu.calls() - before
        finally:
            await siem.close()
    assert change.updated == 1000 and change.complete
    assert spent <= 20, f"{spent} SIEM calls for 1,000 alerts"
    assert emu.calls("kibana", "signals/status") == 2
    doc = emu.document(INDEX, "k0999") or {}
    assert doc["kibana.alert.workflow_status"] == "closed"
    assert doc["kibana.alert.workflow_tags"] == ["closed_by:alice@example.com"]


async def test_uuid_prefix_in_the_thread_closes_exactly_one_member(stack: GroupStack) -> None:
    uids = ["f00d0000-first", "abcdef01-second", "abcdef02-third"]
    first = await duplicates_group(stack, uids)
    stack.slack.user_mentions_bot(VIEWER, "close abcdef02", PROD, thread_ts=first.ts)
    stack.slack.user_mentions_bot(TRIAGER, "close abcdef", PROD, thread_ts=first.ts)
    stack.slack.user_mentions_bot(TRIAGER, "ack 999999", PROD, thread_ts=first.ts)
    stack.slack.user_mentions_bot(TRIAGER, "close abc", PROD, thread_ts=first.ts)

    async def refusals() -> list[str]:
        return [n for n in (*notes_to(stack, TRIAGER), *notes_to(stack, VIEWER))
                if "abc" in n or "999999" in n or "SECBOT_TRIAGERS" in n]

    found = await eventually(lambda: _at_least(refusals, 4))
    assert any("fits 2 alerts" in n for n in found)
    assert any("No alert of this thread's group" in n and "999999" in n for n in found)
    assert any("too short" in n for n in found)
    assert any("not in SECBOT_TRIAGERS" in n for n in notes_to(stack, VIEWER))
    assert [status(stack, u) for u in uids] == ["open"] * 3

    stack.slack.user_mentions_bot(TRIAGER, "close abcdef02 false_positive", PROD,
                                  thread_ts=first.ts)

    async def closed() -> bool:
        return status(stack, uids[2]) == "closed"

    await eventually(closed)
    assert [status(stack, u) for u in uids[:2]] == ["open", "open"]
    assert stack.es_doc(uids[2])["kibana.alert.workflow_reason"] == "false_positive"
    [entry] = await audit(stack, uids[2])
    assert (entry.action, entry.extra["slack_user"]) == (AuditAction.CLOSED, TRIAGER)
    assert await audit(stack, uids[0]) == [] and await audit(stack, uids[1]) == []

    async def replied() -> list[str]:
        return [m.text for m in stack.slack.replies(PROD, first.ts)
                if "only this alert" in m.text]

    [reply] = await eventually(replied)
    assert "abcdef02" in reply and "<@U0TRIAGER>" in reply


async def _at_least(check: Any, count: int) -> list[str] | None:
    found: list[str] = await check()
    return found if len(found) >= count else None


async def test_related_line_for_a_second_alert_of_the_same_user_only(stack: GroupStack) -> None:
    stack.elastic.index_documents(INDEX, [gcp_alert("rel-first", project="prod-payments")])
    [first] = await posted(stack, PROD)
    assert "Also open" not in shown(stack, first.ts)  # nothing else open for dev@ yet
    stack.elastic.index_documents(INDEX, [
        gcp_alert("rel-second", project="prod-ledger", seconds_ago=30),
        gcp_alert("rel-other", email="ops@example.com", project="prod-other",
                  ip="203.0.113.9", seconds_ago=20),
    ])
    messages = await posted(stack, PROD, 3)
    by_uuid = {uid: next(m for m in messages if uid in shown(stack, m.ts))
               for uid in ("rel-second", "rel-other")}
    second = shown(stack, by_uuid["rel-second"].ts)
    assert "Also open for this user/IP in the last hour: 1 alert" in second
    assert "GCP Service Account Key Creation" in second
    assert f"{stack.settings.kibana_url}/app/security/alerts/redirect/rel-first?" in second
    assert "Also open" not in shown(stack, by_uuid["rel-other"].ts)
