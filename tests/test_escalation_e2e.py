"""Escalation through the real service (issue 13, DESIGN.md §12): the app built by
``build_service`` (and, for the crash, ``secbot run`` processes) against the Slack and Elastic
emulators, the PagerDuty Events / Jira / webhook stand-ins over HTTP, and real Redis.

What a person would notice: the VIP's sign-in pages (dedup key = alert uuid) and an ordinary
one does not; 👀 acknowledges the page, ✅ resolves it; a terminated employee's sign-in pages
and opens one Jira issue, once across a ``kill -9``, transitioned when the alert closes; Jira
resolving the issue closes the alert and edits the message; ``@SecBot ticket xsoar`` posts a
signed webhook; PagerDuty being down delays only the page (Jira is ticketed meanwhile), which
is sent once when PagerDuty is back; a refused page says so in the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from reliability_harness import (
    bot_env,
    delete_prefix,
    free_port,
    reaped,
    start_bot,
    unique_prefix,
    wait_until,
)
from stack_support import INDEX, REPO, TRIAGER, Stack, eventually, posted, running_stack

from secbot.destinations.jira import label_for
from secbot.domain.status import AuditAction
from secbot.rules.lists import load_lists
from secbot.rules.loader import load_rules
from secbot.runtime.health import health_app
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.jira import JiraStandIn
from secbot_emulators.pagerduty_events import DEFAULT_ROUTING_KEY, PagerDutyEvents
from secbot_emulators.slack import SlackEmulator
from secbot_emulators.webhook_receiver import WebhookReceiver

IDENTITY, CRITICAL = "C0IDENTITY", "C0SECCRIT"
JIRA_SECRET = "jira-webhook-secret-1"
XSOAR_SECRET = "xsoar-signing-secret-1"
RULES = load_rules(REPO / "rules", lists=load_lists(REPO / "lists"),
                   destinations=frozenset({"pagerduty", "jira", "xsoar"}))


def okta(uid: str, email: str, *, terminated: bool = False, ip: str = "203.0.113.9"
         ) -> dict[str, Any]:
    """An Okta new-country sign-in with the HR record on the alert (what the hr enricher of
    ``secbot run`` reads when no HRIS is configured)."""
    status = "terminated" if terminated else "active"
    return {
        "@timestamp": "2026-11-01T10:00:00.000Z",
        "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "medium",
        "kibana.alert.rule.name": "Okta Sign-In From New Country",
        "user": {"email": email},
        "source": {"ip": ip, "geo": {"country_name": "Brazil"}},
        "enriched_employee": {"division": "Research", "employment_status": status},
    }


@dataclass
class Rig:
    stack: Stack
    pd: PagerDutyEvents
    jira: JiraStandIn
    hook: WebhookReceiver
    intake_url: str

    def es_status(self, uid: str) -> str:
        return str((self.stack.elastic.document(INDEX, uid) or {}).get(
            "kibana.alert.workflow_status"))

    async def message_text(self, channel: str, uid: str) -> str:
        for message in self.stack.top_messages(channel):
            if uid in json.dumps(message.metadata or {}):
                return json.dumps(self.stack.slack.message(channel, message.ts).blocks,
                                  ensure_ascii=False)
        return ""

    async def message_ts(self, channel: str, uid: str) -> str:
        async def find() -> str | None:
            for message in self.stack.top_messages(channel):
                if uid in json.dumps(message.metadata or {}):
                    return str(message.ts)
            return None

        return str(await eventually(find))

    async def audit(self, uid: str) -> list[Any]:
        store = RedisStore.from_url(self.stack.settings.redis_url,
                                    self.stack.settings.redis_prefix)
        try:
            return list(await store.read_audit(uid))
        finally:
            await store.close()


def destination_settings(pd: PagerDutyEvents, jira: JiraStandIn, hook: WebhookReceiver,
                         intake_port: int) -> dict[str, Any]:
    return {
        "pagerduty_events_url": pd.url, "pagerduty_routing_key": DEFAULT_ROUTING_KEY,
        "jira_url": jira.url, "jira_email": "secbot@example.com",
        "jira_api_token": "jira-token-123", "jira_project": "SEC",
        "jira_webhook_secret": JIRA_SECRET,
        "webhooks": {"xsoar": {"url": f"{hook.url}/incident", "secret": XSOAR_SECRET}},
        "intake_port": intake_port, "outbox_lease": 2.0,
    }


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with (PagerDutyEvents().serving() as pd, JiraStandIn().serving() as jira,
                WebhookReceiver().serving() as hook):
        port = free_port()
        async with running_stack(RULES, **destination_settings(pd, jira, hook, port)) as stack:
            yield Rig(stack, pd, jira, hook, f"http://127.0.0.1:{port}")


async def test_a_vip_pages_with_the_alert_uuid_and_an_ordinary_sign_in_does_not(rig: Rig
                                                                                ) -> None:
    rig.stack.elastic.index_documents(INDEX, [okta("vip-1", "ceo@example.com"),
                                              okta("plain-1", "alice@example.com")])
    await posted(rig.stack, IDENTITY, 2)
    await eventually(lambda: _async(rig.pd.state("vip-1") == "triggered"))
    incident = rig.pd.incidents["vip-1"]
    assert incident.severity == "error"  # the entry's "high", in PagerDuty's words
    assert any(link["text"] == "Slack" and "/archives/" in link["href"]
               for link in incident.links)

    async def shows_page() -> bool:
        return "🚨 paged" in await rig.message_text(IDENTITY, "vip-1")

    await eventually(shows_page)
    await asyncio.sleep(1.0)  # the outbox had every chance to page the ordinary one too
    assert set(rig.pd.incidents) == {"vip-1"} and rig.pd.pages == 1
    assert "🚨 paged" not in await rig.message_text(IDENTITY, "plain-1")
    actions = [e.action for e in await rig.audit("vip-1")]
    assert AuditAction.ESCALATED in actions


async def test_eyes_acknowledges_and_check_mark_resolves_the_page(rig: Rig) -> None:
    rig.stack.elastic.index_documents(INDEX, [okta("vip-2", "cfo@example.com")])
    ts = await rig.message_ts(IDENTITY, "vip-2")
    await eventually(lambda: _async(rig.pd.state("vip-2") == "triggered"))
    rig.stack.slack.user_reacts(TRIAGER, "eyes", IDENTITY, ts)
    await eventually(lambda: _async(rig.pd.state("vip-2") == "acknowledged"))
    rig.stack.slack.user_reacts(TRIAGER, "white_check_mark", IDENTITY, ts)
    await eventually(lambda: _async(rig.pd.state("vip-2") == "resolved"))
    assert rig.es_status("vip-2") == "closed"
    assert [e["event_action"] for e in rig.pd.incidents["vip-2"].events] == [
        "trigger", "acknowledge", "resolve"]
    assert rig.pd.pages == 1


async def test_terminated_employee_is_paged_and_ticketed_and_the_close_transitions(rig: Rig
                                                                                   ) -> None:
    rig.stack.elastic.index_documents(INDEX, [okta("term-1", "bob@example.com",
                                                   terminated=True)])
    ts = await rig.message_ts(CRITICAL, "term-1")
    label = label_for("term-1")
    await eventually(lambda: _async(len(rig.jira.by_label(label)) == 1
                                    and rig.pd.state("term-1") == "triggered"))

    async def shows_both() -> bool:
        text = await rig.message_text(CRITICAL, "term-1")
        return "🚨 paged" in text and "Jira SEC-1" in text and "/browse/SEC-1" in text

    await eventually(shows_both)
    [issue] = rig.jira.by_label(label)
    assert "/archives/" in json.dumps(issue.comments)  # the Slack permalink
    rig.stack.slack.user_reacts(TRIAGER, "white_check_mark", CRITICAL, ts)
    await eventually(lambda: _async(issue.status == "Done"
                                    and rig.pd.state("term-1") == "resolved"))
    assert issue.history == ["Done"] and len(rig.jira.issues) == 1


async def test_jira_resolving_the_issue_closes_the_alert_and_edits_the_message(rig: Rig
                                                                               ) -> None:
    rig.stack.elastic.index_documents(INDEX, [okta("term-2", "dan@example.com",
                                                   terminated=True)])
    await rig.message_ts(CRITICAL, "term-2")
    await eventually(lambda: _async(len(rig.jira.by_label(label_for("term-2"))) == 1))
    [issue] = rig.jira.by_label(label_for("term-2"))
    url = f"{rig.intake_url}/v1/jira/webhook"
    body = rig.jira.resolve(issue.key)
    # Unsigned, or signed with another secret: refused, nothing changes.
    assert await JiraStandIn.deliver_webhook(url, body, None) == 401
    assert await JiraStandIn.deliver_webhook(url, body, "not-the-secret") == 401
    assert rig.es_status("term-2") == "open"
    assert await JiraStandIn.deliver_webhook(url, body, JIRA_SECRET) == 200
    assert rig.es_status("term-2") == "closed"

    async def edited() -> bool:
        return "Closed by jira:jo@example.com" in await rig.message_text(CRITICAL, "term-2")

    await eventually(edited)
    await eventually(lambda: _async(rig.pd.state("term-2") == "resolved"))
    audit = [e for e in await rig.audit("term-2") if e.action == AuditAction.CLOSED]
    assert audit and audit[0].actor == "jira:jo@example.com"
    # Jira delivering it again (it retries) is a quiet no-op.
    assert await JiraStandIn.deliver_webhook(url, body, JIRA_SECRET) == 200


async def test_ticket_by_hand_sends_a_signed_webhook(rig: Rig) -> None:
    rig.stack.elastic.index_documents(INDEX, [okta("plain-2", "erin@example.com")])
    ts = await rig.message_ts(IDENTITY, "plain-2")
    rig.stack.slack.user_mentions_bot(TRIAGER, "ticket xsoar", IDENTITY, thread_ts=ts)
    await eventually(lambda: _async(bool(rig.hook.deliveries)))
    [delivery] = rig.hook.deliveries
    assert delivery.verifies(XSOAR_SECRET)
    assert delivery.headers["Idempotency-Key"] == "plain-2:open"
    body = delivery.json()
    assert {"type": "secbot_uuid", "value": "plain-2"} in body["labels"]

    async def shows() -> bool:
        return "sent to xsoar" in await rig.message_text(IDENTITY, "plain-2")

    await eventually(shows)
    rig.stack.slack.user_mentions_bot(TRIAGER, "ticket xsoar", IDENTITY, thread_ts=ts)
    await asyncio.sleep(0.5)
    assert len(rig.hook.unique()) == 1


async def test_pagerduty_down_delays_only_the_page_then_pages_once(rig: Rig) -> None:
    rig.pd.down(503)
    rig.stack.elastic.index_documents(INDEX, [okta("term-3", "fay@example.com",
                                                   terminated=True)])
    await eventually(lambda: _async(len(rig.jira.by_label(label_for("term-3"))) == 1))
    assert rig.pd.pages == 0

    async def failing() -> bool:
        states = {s.name: s for s in await _states(rig)}
        return bool(states["pagerduty"].failing and states["pagerduty"].queued == 1)
    await eventually(failing)
    rig.pd.up()
    await eventually(lambda: _async(rig.pd.state("term-3") == "triggered"), timeout=30)
    await asyncio.sleep(0.5)
    assert rig.pd.pages == 1 and len(rig.jira.issues) == 1


async def test_a_refused_page_is_said_in_the_thread(rig: Rig) -> None:
    rig.pd.fail_next(400)
    rig.stack.elastic.index_documents(INDEX, [okta("vip-3", "carol@example.com")])
    ts = await rig.message_ts(IDENTITY, "vip-3")

    async def said() -> bool:
        return any("PagerDuty refused the page: HTTP 400" in (m.text or "")
                   for m in rig.stack.slack.replies(IDENTITY, ts))

    await eventually(said)
    actions = [e.action for e in await rig.audit("vip-3")]
    assert AuditAction.ESCALATION_FAILED in actions and rig.pd.pages == 0


async def _states(rig: Rig) -> list[Any]:
    """What ``GET /healthz`` says about the destinations (the service's own health app)."""
    parts = rig.stack.service.parts
    async with TestClient(TestServer(health_app(parts.health, parts.metrics))) as client:
        health = await (await client.get("/healthz")).json()
        metrics = await (await client.get("/metrics")).text()
    assert 'secbot_destination_queued{destination="pagerduty"}' in metrics
    raw = health["checks"]["destinations"]
    return [_State(name, **value) for name, value in raw.items() if name != "ok"]


@dataclass
class _State:
    name: str
    queued: int
    failing: bool
    last_error: str | None
    oldest_age_seconds: float


async def _async(value: bool) -> bool:
    return value


# --- across a crash: secbot run processes ------------------------------------------------------


async def test_a_jira_issue_is_created_once_across_a_kill_minus_9(tmp_path: Path) -> None:
    prefix = unique_prefix("escalation")
    async with (SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es,
                PagerDutyEvents().serving() as pd, JiraStandIn().serving() as jira):
        extra = {
            "SECBOT_PAGERDUTY_EVENTS_URL": pd.url,
            "SECBOT_PAGERDUTY_ROUTING_KEY": DEFAULT_ROUTING_KEY,
            "SECBOT_JIRA_URL": jira.url, "SECBOT_JIRA_EMAIL": "secbot@example.com",
            "SECBOT_JIRA_API_TOKEN": "jira-token-123", "SECBOT_JIRA_PROJECT": "SEC",
            "SECBOT_OUTBOX_LEASE": "2", "SECBOT_INTAKE_PORT": "0",
        }
        env = bot_env(slack, es, http_port=free_port(), prefix=prefix, **extra)
        first = await start_bot(env, tmp_path, "first")
        second = None
        try:
            async with reaped(first):
                await first.wait_healthy()
                killed: list[str] = []

                def kill_after_create(path: str) -> None:
                    if path == "/rest/api/3/issue" and not killed:
                        killed.append(path)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(first.pid, signal.SIGKILL)  # created; never heard back

                jira.after = kill_after_create
                es.index_documents(INDEX, [okta("crash-1", "gus@example.com", terminated=True)])
                await wait_until(lambda: _async(bool(killed) and not first.alive),
                                 timeout=30, what="the kill after the issue was created",
                                 explain=first.log_tail)
            jira.after = None
            second = await start_bot({**env, "SECBOT_HTTP_PORT": str(free_port())}, tmp_path,
                                     "second")
            async with reaped(second):
                label = label_for("crash-1")

                async def ticketed_and_paged() -> bool:
                    issues = jira.by_label(label)
                    return (len(issues) == 1 and len(issues[0].comments) == 1
                            and pd.state("crash-1") == "triggered")

                await wait_until(ticketed_and_paged, timeout=40, what="one issue, one page",
                                 explain=second.log_tail)
                await asyncio.sleep(1.0)
                assert len(jira.issues) == 1 and pd.pages == 1
        finally:
            await delete_prefix(env["SECBOT_REDIS_URL"], prefix)


def test_secbot_run_refuses_an_escalation_to_an_unconfigured_destination(tmp_path: Path
                                                                         ) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECBOT_", "SLACK_"))}
    env.update({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1",
                "SECBOT_DEFAULT_CHANNEL": "C0DEFAULT", "SECBOT_SIEM": "embedded",
                "SECBOT_EMBEDDED_DB": str(tmp_path / "siem.sqlite3"),
                "SECBOT_RULES_DIR": str(REPO / "rules"), "SECBOT_LISTS_DIR": str(REPO / "lists"),
                # Jira configured, PagerDuty not: the rules that page must be named.
                "SECBOT_JIRA_URL": "http://127.0.0.1:9", "SECBOT_JIRA_EMAIL": "a@example.com",
                "SECBOT_JIRA_API_TOKEN": "t0ken-1", "SECBOT_JIRA_PROJECT": "SEC"})
    result = subprocess.run([sys.executable, "-m", "secbot", "run"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "okta_login_new_country.yaml:34" in output
    assert "destination 'pagerduty' is not configured (configured: jira)" in output
    assert "destination 'jira' is not configured" not in output
