"""Stage 5, route: which channel the alert goes to."""

from __future__ import annotations

from dataclasses import dataclass

from secbot.expressions import EvalContext
from secbot.rules.ruleset import CompiledRule

NO_CHANNEL_MATCHED = "no channel: the rule has no route and SECBOT_DEFAULT_CHANNEL is unset"
NO_CHANNEL_UNMATCHED = "no channel: no rule matched and SECBOT_DEFAULT_CHANNEL is unset"


@dataclass(frozen=True)
class Route:
    """The channel (None: nowhere to post, the publisher refuses and the alert is retried),
    notes for the message about ``route.when`` expressions that errored, and ``missing``:
    the note saying why there is no channel (None when there is one)."""

    channel: str | None
    notes: tuple[str, ...] = ()
    missing: str | None = None


def choose_channel(
    rule: CompiledRule, ctx: EvalContext, default: str | None
) -> tuple[str | None, list[str]]:
    """First ``route.when`` that is true, else the rule's channel, else the default."""
    notes: list[str] = []
    for choice in rule.routes:
        verdict = choice.expression.decide(ctx)
        if verdict.error:
            notes.append(f"route.when {choice.expression.source!r} skipped: {verdict.error}")
        elif verdict.value:
            return choice.channel, notes
    route = rule.rule.route
    return (route.channel if route and route.channel else default), notes


def route(rule: CompiledRule | None, ctx: EvalContext | None, default: str | None) -> Route:
    """The channel for a matched alert (``rule`` and ``ctx`` given) or an unmatched one."""
    if rule is None or ctx is None:
        return Route(default, missing=None if default else NO_CHANNEL_UNMATCHED)
    channel, notes = choose_channel(rule, ctx, default)
    return Route(channel, tuple(notes), missing=NO_CHANNEL_MATCHED if channel is None else None)
