"""Compiled rules: the reviewed data plus what was parsed from it once, at load."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jinja2 import Template

from secbot.domain.alert import Alert
from secbot.expressions import IO_FUNCTIONS, EvalContext, Expression
from secbot.rules.schema import Rule


@dataclass(frozen=True)
class RouteChoice:
    expression: Expression
    channel: str


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

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def expressions(self) -> tuple[Expression, ...]:
        found = [self.match_when, self.auto_close, *(r.expression for r in self.routes)]
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

    def matches(self, alert: Alert) -> bool:
        """Every given ``match`` condition holds. An erroring ``when`` does not match."""
        cond = self.rule.match
        if cond.rule_name is not None and alert.rule_name not in _as_list(cond.rule_name):
            return False
        if cond.rule_id is not None and alert.rule_id not in _as_list(cond.rule_id):
            return False
        if self.match_when is not None:
            ctx = EvalContext(
                included_fields=self.included_fields(alert),
                alert=alert.frozen,
                enrichments=MappingProxyType({}),
            )
            return self.match_when.decide(ctx).value
        return True


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

    def match(self, alert: Alert) -> CompiledRule | None:
        return next((r for r in self.rules if r.matches(alert)), None)
