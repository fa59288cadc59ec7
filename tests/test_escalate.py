"""Escalation (issue 13, DESIGN.md §5 ``escalate``): the stage through the real pipeline, what
the message shows, the rule tests and backtest, ``rules validate`` on destination names, the
``@SecBot page|ticket`` commands, and an escalated alert through the running stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from stack_support import INDEX, REPO, TRIAGER, VIEWER, Stack, eventually, posted, running_stack

from secbot.commands.context import CommandContext, Reply
from secbot.commands.escalate import NOT_SET_UP, HandKind
from secbot.commands.investigate import Investigator
from secbot.commands.router import NOT_A_TRIAGER, CommandRouter
from secbot.domain.alert import Alert
from secbot.domain.errors import SecBotError
from secbot.domain.escalation import Escalated
from secbot.domain.record import AlertRecord
from secbot.enrich.engine import EnrichmentEngine
from secbot.offline.backtest import backtest
from secbot.offline.rule_tests import fixture_enrichers, run_rule_tests
from secbot.pipeline.decision import Decision
from secbot.pipeline.escalate import by_entry
from secbot.pipeline.pipeline import Pipeline
from secbot.rules.lists import NamedLists, load_lists
from secbot.rules.loader import load_rules
from secbot.rules.ruleset import RuleSet
from secbot.siem.embedded import EmbeddedSiem
from secbot.store.memory import MemoryStore
from secbot.store.records import AlertRecords
from secbot.triage.people import Triagers

LISTS = NamedLists({"vips": frozenset({"ceo@example.com"})})
RULE = """id: esc
name: Escalation test
severity: medium
match: {rule_name: Esc}
fields: [user.email, source.ip, host.name]
enrich: [hr]
route: {channel: C0ROUTED}
auto_close:
  when: 'cidr_match(IncludedFields["source.ip"], "192.0.2.0/24")'
  reason: automated_closure
escalate:
  # errors when the HR answer is missing: the next entry gets its turn
  - if: 'enrichments["hr"]["terminated"] == True'
    severity: critical
    channel: C0SECCRIT
    page: pagerduty
    ticket: jira
  - if: 'inList(IncludedFields["user.email"], "vips")'
    severity: high
    page: pagerduty
    notify: [xsoar, pagerduty]
  - if: 'IncludedFields["host.name"] == "dc01"'
    ticket: jira
"""
TERMINATED = {"hr": {"email": "ceo@example.com", "terminated": True}}
EMPLOYED = {"hr": {"email": "ceo@example.com", "terminated": False}}


def rules(tmp_path: Path, text: str = RULE) -> RuleSet:
    (tmp_path / "esc.yaml").write_text(text)
    return load_rules(tmp_path, lists=LISTS)


def alert(uid: str, email: str = "someone@example.com", ip: str = "203.0.113.9",
          host: str = "web-1") -> Alert:
    return Alert.from_hit({"kibana.alert.uuid": uid, "kibana.alert.rule.name": "Esc",
                           "user": {"email": email}, "source": {"ip": ip},
                           "host": {"name": host}})


async def decide(ruleset: RuleSet, one: Alert, enrichments: dict[str, Any] | None = None,
                 store: MemoryStore | None = None) -> Decision:
    engine = EnrichmentEngine(fixture_enrichers(enrichments or {}), timeout=2.0)
    return await Pipeline(ruleset, engine, store or MemoryStore()).process(one)


def text_of(decision: Decision) -> str:
    return json.dumps(decision.message, ensure_ascii=False)


# -- the stage ------------------------------------------------------------

async def test_first_true_entry_wins_with_its_severity_channel_and_destinations(
        tmp_path: Path) -> None:
    decision = await decide(rules(tmp_path), alert("a1", "ceo@example.com", host="dc01"),
                            TERMINATED)  # entries 0, 1 and 2 all hold
    assert decision.escalation == Escalated(
        0, "critical", "C0SECCRIT", (("page", "pagerduty"), ("ticket", "jira")),
        'escalate[0]: enrichments["hr"]["terminated"] == True')
    assert decision.severity == "critical" and decision.channel == "C0SECCRIT"
    shown = text_of(decision)
    assert ":red_circle: *CRITICAL*" in shown
    assert ("Escalated · severity critical · page pagerduty · ticket jira · escalate[0]: "
            "enrichments[\\\"hr\\\"][\\\"terminated\\\"] == True") in shown
    assert decision.message["text"].startswith("CRITICAL ")


async def test_an_erroring_if_does_not_apply_notes_why_and_the_next_entry_is_tried(
        tmp_path: Path) -> None:
    decision = await decide(rules(tmp_path), alert("a2", "CEO@example.com"))  # no HR answer
    assert decision.escalation is not None and decision.escalation.entry_index == 1
    # notify names pagerduty again: each destination once, under its first kind
    assert decision.escalation.destinations == (("page", "pagerduty"), ("notify", "xsoar"))
    assert decision.severity == "high" and decision.channel == "C0ROUTED"  # no channel override
    assert [n for n in decision.notes if n.startswith("escalate[")] == [
        "escalate[0] not applied: key 'hr' not found"]
    assert ":warning: escalate[0] not applied: key 'hr' not found" in text_of(decision)


async def test_enrichments_are_visible_and_nothing_applies_for_an_ordinary_alert(
        tmp_path: Path) -> None:
    decision = await decide(rules(tmp_path), alert("a3"), EMPLOYED)
    assert decision.escalation is None
    assert decision.severity == "medium" and decision.channel == "C0ROUTED"
    assert "Escalated" not in text_of(decision)
    assert not [n for n in decision.notes if n.startswith("escalate[")]
    assert decision.to_json()["escalation"] is None


async def test_escalation_wins_over_auto_close(tmp_path: Path) -> None:
    ruleset = rules(tmp_path)
    plain = await decide(ruleset, alert("a4", ip="192.0.2.5"), EMPLOYED)
    assert plain.auto_close and plain.escalation is None
    vip = await decide(ruleset, alert("a5", "ceo@example.com", ip="192.0.2.5"), EMPLOYED)
    assert vip.escalation is not None and not vip.auto_close and vip.close_reason is None
    assert "escalation wins over auto_close" in vip.explanation
    assert "Open · not auto-closed: escalate[1]" in text_of(vip)


async def test_the_decision_json_and_the_alert_record_keep_the_escalation(tmp_path: Path) -> None:
    store = MemoryStore()
    decision = await decide(rules(tmp_path), alert("a6", host="dc01"), EMPLOYED, store)
    assert decision.to_json()["escalation"] == {
        "entry_index": 2, "severity": None, "channel": None,
        "destinations": [["ticket", "jira"]],
        "why": 'escalate[2]: IncludedFields["host.name"] == "dc01"'}
    assert decision.severity == "medium"  # an entry without severity keeps the rule's
    record = await AlertRecords(store).load("a6")
    assert record is not None and record.escalation == decision.escalation


def test_a_record_with_a_corrupt_escalation_keeps_the_rest() -> None:
    record = AlertRecord(uuid="u", id="u", index="i", rule_id="r", rule_name="n",
                         severity="high", timestamp=None)
    stored = {**record.to_fields(), "escalation": json.dumps({"entry_index": "x"})}
    assert AlertRecord.from_fields(stored) == record


def test_by_entry_runs_an_entry_as_if_it_matched(tmp_path: Path) -> None:
    rule = rules(tmp_path)[0]
    first = by_entry(rule, 0, "ask: the person said no")
    assert first is not None and first.why == "ask: the person said no"
    assert first.destinations == (("page", "pagerduty"), ("ticket", "jira"))
    assert by_entry(rule, 3) is None


# -- rule tests, backtest ------------------------------------------------------------

async def test_rule_tests_check_expect_escalate_and_severity(tmp_path: Path) -> None:
    tests = """tests:
  - name: right
    alert: {kibana.alert.rule.name: Esc, user.email: ceo@example.com}
    enrichments: {hr: {terminated: false}}
    expect: {matched: true, escalate: true, severity: high}
  - name: wrong escalate
    alert: {kibana.alert.rule.name: Esc, user.email: nobody@example.com}
    enrichments: {hr: {terminated: false}}
    expect: {escalate: true}
  - name: wrong severity
    alert: {kibana.alert.rule.name: Esc, user.email: ceo@example.com}
    enrichments: {hr: {terminated: true}}
    expect: {escalate: true, severity: high}
"""
    outcomes = await run_rule_tests(rules(tmp_path, RULE + tests))
    assert [o.passed for o in outcomes] == [True, False, False]
    assert outcomes[1].failures == ("expected escalate=True, got False (no entry applied)",)
    assert outcomes[2].failures == ("expected severity=high, got critical",)


async def test_backtest_counts_would_escalate_per_rule_and_destination(tmp_path: Path) -> None:
    lines = [
        {"_source": {"kibana.alert.uuid": "b1", "kibana.alert.rule.name": "Esc",
                     "user": {"email": "ceo@example.com"}}, "enrichments": EMPLOYED},
        {"_source": {"kibana.alert.uuid": "b2", "kibana.alert.rule.name": "Esc",
                     "user": {"email": "x@example.com"}}, "enrichments": TERMINATED},
        {"_source": {"kibana.alert.uuid": "b3", "kibana.alert.rule.name": "Esc",
                     "user": {"email": "x@example.com"}}, "enrichments": EMPLOYED},
    ]
    alerts = tmp_path / "alerts.ndjson"
    alerts.write_text("\n".join(json.dumps(line) for line in lines))
    report = await backtest(rules(tmp_path), alerts)
    row = report.to_json()["rules"][0]
    assert row["rule_id"] == "esc" and row["would_escalate"] == 2
    assert row["would_send"] == {"pagerduty": 2, "xsoar": 1, "jira": 1}


# -- rules validate: destination names ------------------------------------------------------------

def validate(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SECBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "secbot", "rules", "validate", str(directory), "--lists",
         str(REPO / "lists")], capture_output=True, text=True, cwd=REPO, timeout=60,
        env={**clean, **env})


def test_rules_validate_rejects_an_unknown_destination_with_path_and_line(tmp_path: Path) -> None:
    rule = tmp_path / "esc.yaml"
    rule.write_text(RULE.replace('inList(IncludedFields["user.email"], "vips")', "true")
                    .replace("page: pagerduty\n    notify", "page: pagerdutty\n    notify"))
    result = validate(tmp_path)
    assert result.returncode == 1
    assert (f"{rule}:18: escalate[1]: destination 'pagerdutty' is not configured "
            "(configured: jira, pagerduty)") in result.stdout
    assert "'xsoar' is not configured" in result.stdout  # no SECBOT_WEBHOOKS here
    webhooks = json.dumps({"xsoar": {"url": "https://xsoar.example/hook", "secret": "s"}})
    result = validate(tmp_path, SECBOT_WEBHOOKS=webhooks)
    assert "'xsoar'" not in result.stdout and "'pagerdutty'" in result.stdout


def test_rules_validate_accepts_the_built_ins_and_webhooks_without_credentials(
        tmp_path: Path) -> None:
    (tmp_path / "esc.yaml").write_text(RULE)  # lists/vips.txt exists; xsoar is a webhook
    webhooks = json.dumps({"xsoar": {"url": "https://xsoar.example/hook", "secret": "s"}})
    result = validate(tmp_path, SECBOT_WEBHOOKS=webhooks)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rules OK" in result.stdout


# -- @SecBot page | ticket ------------------------------------------------------------

class RecordingEscalator:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str, str]] = []
        self.fail = fail

    async def escalate_by_hand(self, uuid: str, kind: HandKind, destination: str,
                               who: str) -> str:
        if self.fail:
            raise SecBotError("outbox unavailable <!channel>")
        self.calls.append((uuid, kind, destination, who))
        return f"🚨 {kind} queued for {destination} <b>"


async def no_status(ctx: CommandContext, status: str, reason: str | None) -> Reply:
    raise AssertionError("not a status command")


def command_router(escalator: RecordingEscalator | None) -> CommandRouter:
    investigator = Investigator(EnrichmentEngine({}), EmbeddedSiem())
    return CommandRouter(investigator, no_status, Triagers(AsyncWebClient(), ["U0TRIAGER"]),
                         escalator=escalator)


def in_thread(user: str = "U0TRIAGER", uuid: str | None = "alert-1") -> CommandContext:
    return CommandContext(user=user, channel="C0X", ts="2.0", thread_ts="1.0" if uuid else None,
                          alert_uuid=uuid)


async def test_page_and_ticket_ask_the_escalator_with_defaults_and_a_named_destination() -> None:
    escalator = RecordingEscalator()
    router = command_router(escalator)
    paged = await router.run("<@U0SECBOT> page", in_thread())
    ticket = await router.run("<@U0SECBOT> ticket XSOAR", in_thread())
    assert escalator.calls == [("alert-1", "page", "pagerduty", "U0TRIAGER"),
                               ("alert-1", "ticket", "xsoar", "U0TRIAGER")]
    assert not paged.ephemeral and paged.text == "🚨 page queued for pagerduty &lt;b&gt;"
    assert ticket.text == "🚨 ticket queued for xsoar &lt;b&gt;"


async def test_page_is_for_triagers_only_and_in_a_thread_only() -> None:
    escalator = RecordingEscalator()
    router = command_router(escalator)
    refused = await router.run("<@U0SECBOT> page", in_thread(user="U0VIEWER"))
    assert refused == Reply(NOT_A_TRIAGER, ephemeral=True)
    outside = await router.run("<@U0SECBOT> page", in_thread(uuid=None))
    assert outside.ephemeral and "alert's thread" in outside.text
    usage = await router.run("<@U0SECBOT> ticket jira extra", in_thread())
    assert usage.ephemeral and usage.text.startswith("Usage:")
    assert escalator.calls == []


async def test_page_without_destinations_or_with_a_failing_outbox_says_so() -> None:
    unset = await command_router(None).run("<@U0SECBOT> page", in_thread())
    assert unset == Reply(NOT_SET_UP, ephemeral=True)
    failed = await command_router(RecordingEscalator(fail=True)).run("<@U0SECBOT> ticket",
                                                                     in_thread())
    assert failed.text.startswith("Could not ticket jira: outbox unavailable &lt;!channel&gt;")


# -- through the running stack ------------------------------------------------------------

def endpoint_alert(uid: str, host: str) -> dict[str, Any]:
    return {"@timestamp": "2026-11-01T10:00:00.000Z", "kibana.alert.uuid": uid,
            "kibana.alert.workflow_status": "open", "kibana.alert.severity": "medium",
            "kibana.alert.rule.name": "Malware Prevention Alert", "event.category": "malware",
            "host": {"name": host}, "file": {"hash": {"sha256": f"hash-of-{uid}"}}}


async def test_an_escalated_alert_is_posted_in_the_escalation_channel_with_its_severity() -> None:
    shipped = load_rules(REPO / "rules", lists=load_lists(REPO / "lists"))
    async with running_stack(shipped) as stack:
        stack.elastic.index_documents(INDEX, [endpoint_alert("esc-dc", "DC02.corp.example.com"),
                                              endpoint_alert("esc-plain", "Host-500")])
        [critical] = await posted(stack, "C0SECCRIT")
        [ordinary] = await posted(stack, "C0ENDPOINT")
        shown = json.dumps(critical.blocks, ensure_ascii=False)
        assert ":red_circle: *CRITICAL*" in shown
        assert "Escalated · severity critical · page pagerduty · ticket jira · escalate[0]" in shown
        assert "esc-dc" in shown and critical.text.startswith("CRITICAL ")
        plain = json.dumps(ordinary.blocks, ensure_ascii=False)
        assert "*HIGH*" in plain and "Escalated" not in plain and "esc-plain" in plain
        await by_hand(stack, critical.ts)


async def by_hand(stack: Stack, thread: str) -> None:
    """``@SecBot page`` in the escalated alert's thread: a viewer is refused; a triager gets
    an answer (the outbox's line once the runtime wires one, else "not available")."""
    stack.slack.user_mentions_bot(VIEWER, "page", "C0SECCRIT", thread_ts=thread)

    async def told(user: str) -> list[str]:
        return [str(e.get("text")) for e in stack.slack.ephemeral if e.get("user") == user]

    assert await eventually(lambda: told(VIEWER)) == [NOT_A_TRIAGER]
    stack.slack.user_mentions_bot(TRIAGER, "page", "C0SECCRIT", thread_ts=thread)

    async def answered() -> list[str]:
        replies = [r.text for r in stack.slack.replies("C0SECCRIT", thread)
                   if r.ts != thread and r.user == "U0SECBOT"]
        return [*replies, *await told(TRIAGER)]

    [answer] = await eventually(answered)
    assert answer != NOT_A_TRIAGER and "pagerduty" in answer.lower() + NOT_SET_UP.lower()
