"""A rule's ``match.source`` trusts how an alert arrived, never what the alert says about itself.

SIEM alerts copy event fields, so ``secbot.source`` can be anyone's text: the fuzzer found a
polled alert carrying ``secbot.source: threatstack`` that the Threat Stack rule matched and
auto-closed. Only the intake writes a mapped source's uuid (``<source>:<id>``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from shipped import shipped_rules

from secbot.domain.alert import Alert
from secbot.domain.source import SIEM_SOURCE, alert_source
from secbot.enrich.engine import EnrichmentEngine
from secbot.intake.sources import ElasticSource, MappedSource
from secbot.pipeline.pipeline import Pipeline
from secbot.store.memory import MemoryStore

RULES = Path(__file__).resolve().parents[1] / "rules"
CI_PACKAGE = {"title": "Package installed: curl", "hostname": "ci-runner-7",
              "kibana.alert.rule.name": "Package installed: curl"}


def decide(source: dict[str, object]) -> tuple[str | None, bool]:
    pipeline = Pipeline(shipped_rules(), EnrichmentEngine({}), MemoryStore(),
                        default_channel="C0DEFAULT")
    decision = asyncio.run(pipeline.process(Alert.from_hit(source)))
    return decision.rule_id, decision.auto_close


def test_a_siem_alert_naming_another_source_is_still_the_siems() -> None:
    forged = {"kibana.alert.uuid": "5f1d0c1e-siem", "secbot.source": "threatstack", **CI_PACKAGE}
    assert alert_source(Alert.from_hit(forged)) == SIEM_SOURCE
    rule, closed = decide(forged)
    assert rule != "threatstack_host_alert" and closed is False


def test_the_mapped_source_intake_alert_is_taken_by_its_rule() -> None:
    doc = MappedSource(name="threatstack", id_field="id", title_field="title").document(
        {"id": "a1", **CI_PACKAGE}, datetime.now(UTC))
    assert alert_source(Alert.from_hit(doc)) == "threatstack"
    assert decide(doc) == ("threatstack_host_alert", True)


def test_a_pushed_elastic_document_cannot_claim_a_mapped_source() -> None:
    doc = ElasticSource().document(
        {"kibana.alert.uuid": "threatstack:a1", "secbot.source": "threatstack", **CI_PACKAGE},
        datetime.now(UTC))
    assert alert_source(Alert.from_hit(doc)) == SIEM_SOURCE
    assert decide(doc)[0] != "threatstack_host_alert"
