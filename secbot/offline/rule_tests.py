"""Running rules' inline tests (detection-as-code): each test alert through the real pipeline.

A test's ``enrichments.<name>`` is exactly what that enricher would return; an enrichment the
test does not give is unavailable, as in production when a provider fails.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from secbot.domain.alert import Alert
from secbot.domain.source import SOURCE_FIELD, mapped_uuid
from secbot.enrich.base import Enricher
from secbot.enrich.engine import EnrichmentEngine
from secbot.enrich.fixture import FixtureEnricher
from secbot.pipeline.decision import Decision
from secbot.pipeline.pipeline import Pipeline
from secbot.rules.ruleset import CompiledRule, RuleSet
from secbot.rules.schema import RuleTest
from secbot.store.memory import MemoryStore


@dataclass(frozen=True)
class TestOutcome:
    rule_id: str
    path: Path
    name: str
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def fixture_enrichers(given: Mapping[str, Mapping[str, Any]]) -> dict[str, Enricher]:
    return {name: FixtureEnricher(name, data) for name, data in given.items()}


def _check(test: RuleTest, decision: Decision) -> tuple[str, ...]:
    failures = []
    expect = test.expect
    if expect.matched is not None and decision.matched != expect.matched:
        failures.append(f"expected matched={expect.matched}, got {decision.matched}")
    if decision.matched or expect.matched is not False:
        # A shadow (or expired) rule's tests check its verdict: would it close?
        closes = decision.auto_close or decision.shadow
        if expect.auto_close is not None and closes != expect.auto_close:
            failures.append(
                f"expected auto_close={expect.auto_close}, got {closes}"
                f" ({decision.explanation})"
            )
        if expect.channel is not None and decision.channel != expect.channel:
            failures.append(f"expected channel={expect.channel}, got {decision.channel}")
        failures.extend(_check_escalation(test, decision))
    return tuple(failures)


def _check_escalation(test: RuleTest, decision: Decision) -> list[str]:
    """``expect.escalate`` (an entry applies) and ``expect.severity`` (the one shown)."""
    failures = []
    expect, found = test.expect, decision.escalation
    if expect.escalate is not None and (found is not None) != expect.escalate:
        got = found.why if found else "no entry applied"
        notes = [n for n in decision.notes if n.startswith("escalate[")]
        failures.append(f"expected escalate={expect.escalate}, got {found is not None} "
                        f"({'; '.join([got, *notes])})")
    if expect.severity is not None and decision.severity != expect.severity:
        failures.append(f"expected severity={expect.severity}, got {decision.severity}")
    return failures


def _json_value(value: Any) -> Any:
    """YAML-only values in a test alert as Elasticsearch would hold them (dates as ISO text)."""
    if isinstance(value, datetime):
        aware = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def alert_source_of(test: RuleTest) -> dict[str, Any]:
    """The test's alert as the JSON document a SIEM would return (an unquoted YAML timestamp
    becomes an ISO string, as it would be in ``_source``)."""
    source: dict[str, Any] = json.loads(json.dumps(test.alert, default=_json_value))
    return source


def _test_uuid(source: dict[str, Any], ident: str) -> str:
    """A uuid as the alert's path would give it: a mapped source's intake names its alerts
    ``<source>:<id>`` (:func:`secbot.domain.source.alert_source` trusts nothing else)."""
    named = source.get(SOURCE_FIELD)
    return mapped_uuid(named, ident) if isinstance(named, str) and named else ident


async def run_rule_test(
    rule: CompiledRule, index: int, test: RuleTest, *, default_channel: str | None = None
) -> TestOutcome:
    engine = EnrichmentEngine(fixture_enrichers(test.enrichments), timeout=2.0)
    # Only this rule: a test speaks about its own rule, not about which file sorts first.
    pipeline = Pipeline(RuleSet((rule,)), engine, MemoryStore(), default_channel=default_channel)
    try:
        source = alert_source_of(test)
        source.setdefault("kibana.alert.uuid", _test_uuid(source, f"test-{rule.id}-{index}"))
        decision = await pipeline.process(Alert.from_hit(source))
    except Exception as exc:  # a crashing rule is a failed test, not a crashed runner
        return TestOutcome(
            rule.id, rule.path, test.name, (f"crashed: {type(exc).__name__}: {exc}",)
        )
    return TestOutcome(rule.id, rule.path, test.name, _check(test, decision))


async def run_rule_tests(
    rules: RuleSet, *, default_channel: str | None = None
) -> list[TestOutcome]:
    """Every inline test of every rule, in file order."""
    outcomes = []
    for rule in rules:
        for index, test in enumerate(rule.rule.tests):
            outcomes.append(await run_rule_test(rule, index, test, default_channel=default_channel))
    return outcomes


def rules_without_tests(rules: RuleSet) -> list[CompiledRule]:
    """Rules lacking a positive or a negative test (panther-analysis style review aid)."""
    lacking = []
    for rule in rules:
        expects = [t.expect for t in rule.rule.tests]
        positive = any(e.matched is not False for e in expects)
        negative = any(e.matched is False or e.auto_close is False for e in expects)
        if not (positive and negative):
            lacking.append(rule)
    return lacking
