"""Backtesting rules over past alerts: how many would match, dedup, auto-close, escalate, post.

Input is NDJSON: each line an alert ``_source`` or an Elasticsearch hit (``{"_id", "_source"}``).
A hit may carry ``"enrichments": {name: data}`` beside ``_source`` to stand in for enrichers;
without it, every enrichment is unavailable and so no enrichment-dependent auto-close fires.

When alerts carry a human disposition (``kibana.alert.workflow_status``), the report also says
where the rule agrees with people, and lists **risky auto-closes**: alerts the rule would close
that humans kept open, acknowledged or took in progress.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secbot.domain.alert import Alert
from secbot.domain.errors import SecBotError
from secbot.enrich.engine import EnrichmentEngine
from secbot.offline.rule_tests import fixture_enrichers
from secbot.pipeline.pipeline import Pipeline
from secbot.rules.ruleset import RuleSet
from secbot.store.memory import MemoryStore

UNMATCHED = "(unmatched)"


class BacktestInputError(SecBotError, ValueError):
    """A line of the alerts file is not an alert; the message names file and line."""


@dataclass
class RuleStats:
    rule_id: str
    matched: int = 0
    deduplicated: int = 0
    would_auto_close: int = 0
    would_post: int = 0
    would_escalate: int = 0
    #: destination name -> alerts an escalate entry would send there
    would_send: dict[str, int] = field(default_factory=dict)
    humans_closed_too: int = 0
    risky_auto_closes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "would_send": dict(self.would_send),
                "risky_auto_closes": list(self.risky_auto_closes)}


@dataclass
class BacktestReport:
    alerts: int
    rules: dict[str, RuleStats]

    def to_json(self) -> dict[str, Any]:
        return {"alerts": self.alerts, "rules": [s.to_json() for s in self.rules.values()]}


def read_alerts(path: Path) -> Iterator[tuple[Alert, dict[str, Any]]]:
    """(alert, enrichments given for it) per non-blank line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BacktestInputError(f"{path}:{number}: not JSON: {exc.msg}") from exc
            if not isinstance(record, dict):
                raise BacktestInputError(f"{path}:{number}: expected a JSON object")
            given = record.pop("enrichments", {}) if "_source" in record else {}
            if not isinstance(given, dict):
                raise BacktestInputError(f"{path}:{number}: enrichments must be an object")
            yield Alert.from_hit(record), given


async def backtest(
    rules: RuleSet, alerts_file: Path, *, default_channel: str | None = "C0DEFAULT"
) -> BacktestReport:
    """Run every alert through the real pipeline with a throwaway in-memory store."""
    store = MemoryStore()
    stats = {rule.id: RuleStats(rule.id) for rule in rules}
    stats[UNMATCHED] = RuleStats(UNMATCHED)
    count = 0
    for alert, given in read_alerts(alerts_file):
        count += 1
        engine = EnrichmentEngine(fixture_enrichers(given), timeout=2.0)
        decision = await Pipeline(rules, engine, store, default_channel=default_channel).process(
            alert
        )
        row = stats[decision.rule_id or UNMATCHED]
        row.matched += 1
        row.deduplicated += decision.deduplicated
        row.would_post += decision.post
        if decision.escalation is not None:
            row.would_escalate += 1
            for _kind, name in decision.escalation.destinations:
                row.would_send[name] = row.would_send.get(name, 0) + 1
        if decision.auto_close or decision.shadow:  # shadow: what promoting it would close
            row.would_auto_close += 1
            human = human_disposition(alert)
            if human == "closed":
                row.humans_closed_too += 1
            elif human == "kept":
                row.risky_auto_closes.append(alert.uuid)
    return BacktestReport(alerts=count, rules=stats)


def human_disposition(alert: Alert) -> str:
    """``closed``, ``kept`` (a person left it open, acknowledged it, or escalated it) or
    ``undecided`` (open and never touched: nobody has judged it yet)."""
    status = alert.get_field("kibana.alert.workflow_status") or "open"
    tags = alert.get_field("kibana.alert.workflow_tags") or ()
    if status == "closed":
        return "closed"
    if status in ("acknowledged", "in-progress") or "escalated" in tags:
        return "kept"
    touched = alert.get_field("kibana.alert.workflow_user") or alert.get_field(
        "kibana.alert.workflow_status_updated_at"
    )
    return "kept" if touched else "undecided"
