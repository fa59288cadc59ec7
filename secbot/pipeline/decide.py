"""Stage 4, decide: does the rule's ``auto_close`` hold? Uncertain means no.

A rule that would close may still be *held* — shown as "would auto-close (shadow)" and left
open — for three reasons (issue 15): its ``auto_close.mode`` is ``shadow``; its
``auto_close.expires`` date has passed (it behaves as shadow from the day after); or a wrong
close found in review demoted it (runtime state in Redis, looked up through the injected
:class:`Gatekeeper`, never written into the compiled rule).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from secbot.expressions import EvalContext, Verdict
from secbot.rules.ruleset import CompiledRule

#: Why a rule is demoted (None: it is not), by rule id; may raise when it cannot tell.
DemotedLookup = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class AutoClose:
    """``close`` is True only when the expression evaluated to true without error and the
    rule is not held; ``shadow`` is True when it would have closed but was held (``held``
    says why); ``explanation`` says why either way, ``notes`` carry an evaluation error."""

    close: bool
    reason: str | None
    explanation: str
    notes: tuple[str, ...] = ()
    shadow: bool = False
    held: str | None = None


@dataclass(frozen=True)
class Gate:
    """What the decide stage knows about a rule at decision time: today's UTC date and why
    review demoted it (None: not demoted)."""

    today: date
    demoted: str | None = None


def held_by(rule: CompiledRule, gate: Gate | None) -> str | None:
    """Why ``rule``'s auto-close is not applied now, or None when it is enforced."""
    spec = rule.rule.auto_close
    if spec is None:
        return None
    if gate is not None and gate.demoted:
        return gate.demoted
    if spec.expires is not None and gate is not None and gate.today > spec.expires:
        return f"auto-close expired on {spec.expires.isoformat()}"
    if spec.mode == "shadow":
        return "shadow mode"
    return None


class Gatekeeper:
    """Builds each alert's :class:`Gate` from an injected clock and demotion lookup."""

    def __init__(self, clock: Callable[[], datetime] | None = None,
                 demoted: DemotedLookup | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._demoted = demoted

    def today(self) -> date:
        return self._clock().astimezone(UTC).date()

    async def gate(self, rule: CompiledRule) -> Gate:
        """The gate for ``rule``; a lookup that fails holds the rule (unsure: do not close)."""
        why: str | None = None
        if rule.auto_close is not None and self._demoted is not None:
            try:
                why = await self._demoted(rule.id)
            except Exception as exc:
                why = f"review state unreadable ({type(exc).__name__}), not closing"
        return Gate(today=self.today(), demoted=why)


def decide(rule: CompiledRule, ctx: EvalContext) -> AutoClose:
    """What the expression says; :func:`hold` then applies the rule's mode, expiry and
    demotion (after escalation, which may keep the alert open for its own reason)."""
    verdict = rule.auto_close.decide(ctx) if rule.auto_close else None
    close = bool(verdict and verdict.value)
    reason = rule.rule.auto_close.reason if close and rule.rule.auto_close else None
    notes = (f"not auto-closed: {verdict.error}",) if verdict and verdict.error else ()
    return AutoClose(close=close, reason=reason, explanation=_explain(verdict, reason), notes=notes)


def hold(verdict: AutoClose, rule: CompiledRule, gate: Gate | None) -> AutoClose:
    """``verdict`` with the rule held when it must be: a close becomes a shadow verdict."""
    held = held_by(rule, gate)
    if held is None:
        return verdict
    return replace(verdict, close=False, shadow=verdict.close, held=held)


def _explain(verdict: Verdict | None, reason: str | None) -> str:
    if verdict is None:
        return "rule has no auto_close"
    if verdict.error:
        return f"auto_close not applied: {verdict.error}"
    return (
        f"auto_close expression true → {reason}" if verdict.value else "auto_close expression false"
    )


def status_line(close: AutoClose, duplicate_of: str | None) -> str:
    """The message's status line for a decided alert."""
    if close.close:
        return f"Auto-closed by SecBot · reason {close.reason} · {close.explanation}"
    # Plain shadow mode is said by "(shadow)"; an expiry or a demotion is said in words.
    extra = f" · {close.held}" if close.held and close.held != "shadow mode" else ""
    if close.shadow:
        return (f"Open · would auto-close (shadow): {close.reason} · {close.explanation}"
                f"{extra}")
    if duplicate_of:
        return f"Open · duplicate of {duplicate_of} · {close.explanation}{extra}"
    return f"Open · {close.explanation}{extra}"
