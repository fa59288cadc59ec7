"""The pipeline's decisions, as a triager would notice them."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from shipped import shipped_rules

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment
from secbot.enrich.base import Enricher
from secbot.enrich.engine import EnrichmentEngine
from secbot.enrich.fixture import FixtureEnricher
from secbot.pipeline.pipeline import Pipeline
from secbot.rules.loader import load_rules
from secbot.store.memory import MemoryStore

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
INTERNAL = {
    "project_id": "sandbox-tools",
    "project_number": "1",
    "display_name": "Sandbox",
    "labels": {"instance-type": "internal"},
    "parent": "folders/1",
    "state": "ACTIVE",
}
CUSTOMER = {**INTERNAL, "project_id": "prod-payments", "labels": {"instance-type": "customer"}}


class SlowEnricher:
    def __init__(self, name: str) -> None:
        self.name = name

    async def enrich(self, alert: Alert) -> Enrichment:
        await asyncio.sleep(10)
        return Enrichment.ok(self.name, {})

    async def lookup(self, key: str) -> Enrichment:
        await asyncio.sleep(10)
        return Enrichment.ok(self.name, {})


class BrokenEnricher(SlowEnricher):
    async def lookup(self, key: str) -> Enrichment:
        raise RuntimeError("provider exploded")


def gcp_alert(
    uuid: str,
    project: str = "sandbox-tools",
    email: str = "dev@example.com",
    division: str = "Research",
) -> Alert:
    return Alert.from_hit(
        {
            "kibana.alert.uuid": uuid,
            "@timestamp": "2026-11-01T10:00:00Z",
            "kibana.alert.rule.name": "GCP Service Account Key Creation",
            "kibana.alert.severity": "medium",
            "cloud": {"project": {"id": project}},
            "user": {"email": email},
            "enriched_employee.division": division,
            "source.ip": "198.51.100.7",
        }
    )


def pipeline(
    enrichers: dict[str, Enricher],
    *,
    timeout: float = 2.0,
    store: MemoryStore | None = None,
    default: str | None = "C0DEFAULT",
) -> Pipeline:
    engine = EnrichmentEngine(enrichers, timeout=timeout)
    return Pipeline(shipped_rules(), engine, store or MemoryStore(), default_channel=default)


#: rules/gcp_sa_key_created closes only for someone HR knows to be employed.
EMPLOYED = {"terminated": False, "employment_status": "active"}


def fixtures(**data: dict[str, Any]) -> dict[str, Enricher]:
    return {name: FixtureEnricher(name, value) for name, value in data.items()}


async def test_internal_project_is_auto_closed_with_the_rules_reason() -> None:
    decision = await pipeline(fixtures(gcp_project=INTERNAL, hr=EMPLOYED)).process(
        gcp_alert("a1")
    )
    assert decision.rule_id == "gcp_sa_key_created"
    assert decision.auto_close and decision.close_reason == "automated_closure"
    assert decision.post and decision.channel == "C0SECALERTS"
    assert "Auto-closed" in json.dumps(decision.message)


async def test_on_call_platform_engineer_closes_and_prod_routes_to_prodsec() -> None:
    decision = await pipeline(
        fixtures(gcp_project=CUSTOMER, oncall={"on_call": True}, hr=EMPLOYED)
    ).process(gcp_alert("a2", project="prod-payments", division="Platform"))
    assert decision.auto_close
    assert decision.channel == "C0PRODSEC"


@pytest.mark.parametrize("broken", ["timeout", "exception", "missing"])
async def test_unavailable_enrichment_posts_without_closing_and_says_why(broken: str) -> None:
    enrichers: dict[str, Enricher] = {
        "timeout": {"gcp_project": SlowEnricher("gcp_project")},
        "exception": {"gcp_project": BrokenEnricher("gcp_project")},
        "missing": {},
    }[broken]
    decision = await pipeline(enrichers, timeout=0.2).process(gcp_alert("a3"))
    assert decision.post and not decision.auto_close
    assert any("gcp_project" in note for note in decision.notes)
    text = json.dumps(decision.message)
    assert "gcp_project" in text and "unavailable" in text


async def test_duplicate_inside_window_is_threaded_with_a_count_never_dropped() -> None:
    store = MemoryStore()
    p = pipeline(fixtures(gcp_project=CUSTOMER), store=store)
    first = await p.process(gcp_alert("d1", project="prod-payments"))
    second = await p.process(gcp_alert("d2", project="prod-payments"))
    third = await p.process(gcp_alert("d3", project="prod-payments"))
    other = await p.process(gcp_alert("d4", project="prod-search"))
    assert first.post and first.duplicate_of is None
    assert not second.post and second.duplicate_of == "d1" and second.duplicate_count == 2
    assert third.duplicate_of == "d1" and third.duplicate_count == 3
    assert other.post and other.duplicate_of is None
    record = await store.load_record("d2")  # remembered for the thread
    assert record is not None and record.duplicate_of == first.alert_uuid


async def test_reprocessing_the_same_alert_is_not_a_duplicate_of_itself() -> None:
    p = pipeline(fixtures(gcp_project=CUSTOMER))
    await p.process(gcp_alert("same", project="prod-payments"))
    again = await p.process(gcp_alert("same", project="prod-payments"))
    assert again.post and again.duplicate_of is None


async def test_unmatched_alert_goes_to_default_channel_with_generic_message() -> None:
    alert = Alert.from_hit(
        {
            "kibana.alert.uuid": "u1",
            "kibana.alert.rule.name": "Odd thing",
            "host": {"name": "web-1"},
        }
    )
    decision = await pipeline({}).process(alert)
    assert decision.rule_id is None and decision.post and decision.channel == "C0DEFAULT"
    assert not decision.auto_close
    assert "web-1" in json.dumps(decision.message)


async def test_no_channel_anywhere_is_noted_not_dropped() -> None:
    alert = Alert.from_hit({"kibana.alert.uuid": "u2", "kibana.alert.rule.name": "Odd"})
    decision = await pipeline({}, default=None).process(alert)
    assert decision.post and decision.channel is None
    assert any("SECBOT_DEFAULT_CHANNEL" in n for n in decision.notes)


async def test_erroring_expression_never_closes(tmp_path: Path) -> None:
    (tmp_path / "bad_expr.yaml").write_text(
        textwrap.dedent("""\
        id: bad_expr
        name: Bad expression
        match: {rule_name: X}
        fields: [n]
        route: {channel: C0X}
        auto_close: {when: 'IncludedFields["n"] / 0 == 1'}
    """)
    )
    engine = EnrichmentEngine({})
    p = Pipeline(load_rules(tmp_path), engine, MemoryStore())
    decision = await p.process(
        Alert.from_hit({"kibana.alert.uuid": "e1", "kibana.alert.rule.name": "X", "n": 5})
    )
    assert decision.post and not decision.auto_close
    assert any("not auto-closed" in n for n in decision.notes)


async def test_attacker_text_is_inert_in_every_string_sent() -> None:
    evil = "<!channel> <http://evil.example|click> & <@U123>"
    alert = Alert.from_hit(
        {
            "kibana.alert.uuid": "x1",
            "kibana.alert.rule.name": evil,
            "kibana.alert.reason": evil,
            "host": {"name": evil},
        }
    )
    decision = await pipeline({}).process(alert)
    dumped = json.dumps(decision.message)
    assert "<!channel>" not in dumped and "<http" not in dumped and "<@U123>" not in dumped
    assert "&lt;!channel&gt;" in dumped
    assert "<" not in decision.message["text"]
