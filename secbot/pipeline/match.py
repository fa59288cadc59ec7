"""Stage 1, match: the first rule that takes the alert, and the fields it shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from secbot.domain.alert import Alert
from secbot.rules.ruleset import CompiledRule, RuleSet

#: What an alert no rule matched shows, when present.
UNMATCHED_FIELDS = ("host.name", "user.name", "user.email", "source.ip", "kibana.alert.reason")


@dataclass(frozen=True)
class Match:
    """The rule that took the alert (None: unmatched) and the fields its message shows."""

    rule: CompiledRule | None
    fields: Mapping[str, Any]


def match(rules: RuleSet, alert: Alert) -> Match:
    """The rule's ``fields`` for a matched alert; the generic :data:`UNMATCHED_FIELDS` else."""
    rule = rules.match(alert)
    if rule is not None:
        return Match(rule=rule, fields=rule.included_fields(alert))
    fields = {name: alert.get_field(name) for name in UNMATCHED_FIELDS if alert.has_field(name)}
    return Match(rule=None, fields=MappingProxyType(fields))
