"""Stage 4b, escalate: the rule's ``escalate`` entries, in order, first true wins.

An entry sees exactly what ``auto_close`` sees (the same :class:`EvalContext`, enrichments
included). An entry whose ``if`` errors does not apply and the message says why; the next
entry is tried, so one broken condition never hides a later one that holds. When an entry
applies, the pipeline shows its severity, posts to its channel, names its destinations on the
message and does NOT auto-close the alert (see :func:`overrides_auto_close`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from secbot.domain.escalation import DestinationKind, Escalated
from secbot.expressions import EvalContext
from secbot.pipeline import decide, route
from secbot.rules.ruleset import CompiledRule
from secbot.rules.schema import Escalation

#: The expression shown in ``why`` is cut here: the line goes on a phone screen.
WHY_MAX = 200

__all__ = ["Escalated", "EscalationOutcome", "by_entry", "decide_route_escalate",
           "destinations_of", "escalate", "escalation_line", "overrides_auto_close"]


@dataclass(frozen=True)
class EscalationOutcome:
    """The entry that applied (None: none did) and notes for entries whose ``if`` errored."""

    escalation: Escalated | None
    notes: tuple[str, ...] = ()


def destinations_of(entry: Escalation) -> tuple[tuple[DestinationKind, str], ...]:
    """``(kind, name)`` for the entry's page, ticket and notify destinations, each name once
    (the first kind it is named under wins)."""
    named: dict[str, DestinationKind] = {}
    if entry.page:
        named.setdefault(entry.page, "page")
    if entry.ticket:
        named.setdefault(entry.ticket, "ticket")
    for name in entry.notify:
        named.setdefault(name, "notify")
    return tuple((kind, name) for name, kind in named.items())


def _why(index: int, source: str) -> str:
    text = " ".join(source.split())
    if len(text) > WHY_MAX:
        text = text[: WHY_MAX - 1] + "…"
    return f"escalate[{index}]: {text}"


def by_entry(rule: CompiledRule, index: int, why: str | None = None) -> Escalated | None:
    """Entry ``index`` of the rule as if its ``if`` held (``ask``'s ``on_no: {escalate:
    true}`` runs the first one this way); None when the rule has no such entry."""
    if not 0 <= index < len(rule.rule.escalate):
        return None
    entry = rule.rule.escalate[index]
    return Escalated(index, entry.severity, entry.channel, destinations_of(entry),
                     why or _why(index, entry.if_))


def escalate(rule: CompiledRule, ctx: EvalContext) -> EscalationOutcome:
    """The first entry whose ``if`` is true in ``ctx`` (the alert's one context and budget)."""
    notes: list[str] = []
    for choice in rule.escalations:
        index = next(i for i, e in enumerate(rule.rule.escalate) if e is choice.entry)
        verdict = choice.expression.decide(ctx)
        if verdict.error:
            notes.append(f"escalate[{index}] not applied: {verdict.error}")
            continue
        if verdict.value:
            return EscalationOutcome(by_entry(rule, index, _why(index, choice.expression.source)),
                                     tuple(notes))
    return EscalationOutcome(None, tuple(notes))


def overrides_auto_close(escalation: Escalated | None, would_close: bool) -> str | None:
    """The note when an escalation keeps an alert open that ``auto_close`` would close.

    Escalation wins: a rule author who wrote both meant "never silently close this", and an
    alert that pages someone must not be closed under their feet."""
    if escalation is None or not would_close:
        return None
    return f"not auto-closed: {escalation.why} escalated it (escalation wins over auto_close)"


def decide_route_escalate(
    rule: CompiledRule, ctx: EvalContext, default: str | None,
) -> tuple[decide.AutoClose, route.Route, EscalationOutcome]:
    """auto_close, route and escalate in one context (the alert's one budget). An applying
    entry's channel replaces the routed one, and an escalated alert is never auto-closed:
    the status line says so."""
    verdict = decide.decide(rule, ctx)
    where = route.route(rule, ctx, default)
    raised = escalate(rule, ctx)
    found = raised.escalation
    if found is None:
        return verdict, where, raised
    if found.channel:
        where = replace(where, channel=found.channel, missing=None)
    kept_open = overrides_auto_close(found, verdict.close)
    if kept_open is not None:
        verdict = replace(verdict, close=False, reason=None, explanation=kept_open)
    return verdict, where, raised


def escalation_line(escalation: Escalated | None) -> str | None:
    """The message's line for an escalated alert: severity, destinations, and why."""
    if escalation is None:
        return None
    parts = ["Escalated"]
    if escalation.severity:
        parts.append(f"severity {escalation.severity}")
    parts.extend(f"{kind} {name}" for kind, name in escalation.destinations)
    return " · ".join([*parts, escalation.why])
