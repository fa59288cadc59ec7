"""Compiled rules: the reviewed data plus what was parsed from it once, at load."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jinja2 import Template

from secbot.domain.alert import Alert
from secbot.domain.source import SIEM_SOURCE, alert_source
from secbot.expressions import (
    IO_FUNCTIONS,
    EvalBudget,
    EvalContext,
    Expression,
    StoppedExpression,
    Verdict,
)
from secbot.rules.schema import Escalation, Respond, Rule


@dataclass(frozen=True)
class RouteChoice:
    expression: Expression
    channel: str


@dataclass(frozen=True)
class EscalationChoice:
    """An ``escalate`` entry with its ``if`` parsed."""

    expression: Expression
    entry: Escalation


@dataclass(frozen=True)
class ResponseChoice:
    """A ``respond`` entry with its ``when`` parsed (None: always proposed)."""

    expression: Expression | None
    entry: Respond


@dataclass(frozen=True)
class CompiledRule:
    """A :class:`Rule` with its expressions and templates parsed. Immutable: no runtime state."""

    rule: Rule
    path: Path
    match_when: Expression | None
    routes: tuple[RouteChoice, ...]
    auto_close: Expression | None
    title: Template | None
    body: Template | None
    escalations: tuple[EscalationChoice, ...] = ()
    responses: tuple[ResponseChoice, ...] = ()
    question: Template | None = None  # ``ask.question``

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def expressions(self) -> tuple[Expression, ...]:
        found = [self.match_when, self.auto_close, *(r.expression for r in self.routes),
                 *(e.expression for e in self.escalations),
                 *(r.expression for r in self.responses)]
        return tuple(e for e in found if e is not None)

    def enrichers_needed(self) -> frozenset[str]:
        """Enrichers listed under ``enrich`` plus those pulled by functions the rule calls."""
        pulled = {
            IO_FUNCTIONS[name].enricher for expr in self.expressions for name in expr.io_functions()
        }
        return frozenset(self.rule.enrich) | pulled

    def included_fields(self, alert: Alert) -> Mapping[str, Any]:
        """The rule's ``fields`` with the alert's values (None when absent)."""
        return MappingProxyType({name: alert.get_field(name) for name in self.rule.fields})

    def matches(self, alert: Alert, budget: EvalBudget | None = None) -> bool:
        """Every given ``match`` condition holds. An erroring ``when`` does not match."""
        return self.match_verdict(alert, budget if budget is not None else EvalBudget()).value

    def match_verdict(self, alert: Alert, budget: EvalBudget) -> Verdict:
        """Whether ``match`` holds, with the error of ``when`` if it failed (drawing on the
        alert's ``budget``)."""
        cond = self.rule.match
        if alert_source(alert) != (cond.source or SIEM_SOURCE):
            return Verdict(False, None)
        if cond.rule_name is not None and alert.rule_name not in _as_list(cond.rule_name):
            return Verdict(False, None)
        if cond.rule_id is not None and alert.rule_id not in _as_list(cond.rule_id):
            return Verdict(False, None)
        if self.match_when is None:
            return Verdict(True, None)
        ctx = EvalContext(
            included_fields=self.included_fields(alert),
            alert=alert.frozen,
            enrichments=MappingProxyType({}),
            budget=budget,
        )
        return self.match_when.decide(ctx)

    def stopped(self, reason: str) -> CompiledRule:
        """This rule for an alert whose ``match.when`` ran out of budget: it takes the alert
        (so it is posted where the rule's owners look, saying why) but can never auto-close
        it, whatever the rest of the alert's budget would allow."""
        why = f"{reason} (rule stopped in match.when: whether it applies is unknown)"
        return replace(self, auto_close=StoppedExpression(why))


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@dataclass(frozen=True)
class RuleSet(Sequence[CompiledRule]):
    """Rules in file-name order; the first whose ``match`` holds takes an alert."""

    rules: tuple[CompiledRule, ...]

    def __getitem__(self, index: int) -> CompiledRule:  # type: ignore[override]
        return self.rules[index]

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[CompiledRule]:
        return iter(self.rules)

    def by_id(self, rule_id: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def match(self, alert: Alert, budget: EvalBudget | None = None) -> CompiledRule | None:
        """The first rule whose ``match`` holds, or None.

        Every ``match.when`` tried draws on ``budget``, the alert's one budget (a new one when
        not given); pass the same budget on in ``EvalContext.budget``. When it runs out in a
        rule's ``match.when``, that rule takes the alert :meth:`stopped <CompiledRule.stopped>`:
        posted, never auto-closed, the message says "budget exceeded …". An alert is never
        dropped for it, nor handed to a later rule without a verdict on this one.
        """
        if budget is None:
            budget = EvalBudget()
        for rule in self.rules:
            verdict = rule.match_verdict(alert, budget)
            if verdict.value:
                return rule
            if verdict.error is not None and budget.exceeded is not None:
                return rule.stopped(verdict.error)
        return None
