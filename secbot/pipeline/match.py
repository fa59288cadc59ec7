"""Stage 1, match: the first rule that takes the alert, and the fields it shows.

Matching is where an alert's one expression budget starts (``match.when`` draws on it first),
and the poller needs the matched rule before the pipeline runs (to keep one rule's alerts in
order while other rules run concurrently). :class:`Matcher` matches each alert once and hands
the same :class:`Match`, budget included, to both, so a costly ``match.when`` is paid once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cachetools import LRUCache

from secbot.domain.alert import Alert
from secbot.expressions import EvalBudget
from secbot.rules.ruleset import CompiledRule, RuleSet

#: What an alert no rule matched shows, when present.
UNMATCHED_FIELDS = ("host.name", "user.name", "user.email", "source.ip", "kibana.alert.reason")

#: Matches kept between the poller's partitioning and the pipeline: a few pages' worth.
PENDING_MATCHES = 4096


@dataclass(frozen=True)
class Match:
    """The rule that took the alert (None: unmatched), the fields its message shows, and the
    alert's expression budget, which every later evaluation of this alert draws on."""

    rule: CompiledRule | None
    fields: Mapping[str, Any]
    budget: EvalBudget


def match(rules: RuleSet, alert: Alert, budget: EvalBudget | None = None) -> Match:
    """The rule's ``fields`` for a matched alert; the generic :data:`UNMATCHED_FIELDS` else."""
    budget = budget if budget is not None else EvalBudget()
    rule = rules.match(alert, budget)
    if rule is not None:
        return Match(rule=rule, fields=rule.included_fields(alert), budget=budget)
    fields = {name: alert.get_field(name) for name in UNMATCHED_FIELDS if alert.has_field(name)}
    return Match(rule=None, fields=MappingProxyType(fields), budget=budget)


class Matcher:
    """Matches each alert once between the poller (:meth:`peek`) and the pipeline (:meth:`take`).

    ``expression_seconds`` is the alert's time allowance (``SECBOT_EXPRESSION_TIMEOUT``).
    """

    def __init__(self, rules: RuleSet, *, expression_seconds: float | None = None) -> None:
        self.rules = rules
        self.expression_seconds = expression_seconds
        self._pending: LRUCache[str, Match] = LRUCache(maxsize=PENDING_MATCHES)

    def _fresh(self, alert: Alert) -> Match:
        return match(self.rules, alert, EvalBudget(seconds=self.expression_seconds))

    def peek(self, alert: Alert) -> Match:
        """The alert's match, kept for the pipeline's :meth:`take`."""
        found = self._pending.get(alert.uuid)
        if found is None:
            found = self._pending[alert.uuid] = self._fresh(alert)
        return found

    def take(self, alert: Alert) -> Match:
        """The match :meth:`peek` made for this alert (forgotten now: a retry of the alert is
        a new attempt with a new budget), or a fresh one."""
        found = self._pending.pop(alert.uuid, None)
        return found if found is not None else self._fresh(alert)
