"""Stage 4, decide: does the rule's ``auto_close`` hold? Uncertain means no."""

from __future__ import annotations

from dataclasses import dataclass

from secbot.expressions import EvalContext, Verdict
from secbot.rules.ruleset import CompiledRule


@dataclass(frozen=True)
class AutoClose:
    """``close`` is True only when the expression evaluated to true without error;
    ``explanation`` says why either way, ``notes`` carry an evaluation error for the message."""

    close: bool
    reason: str | None
    explanation: str
    notes: tuple[str, ...] = ()


def decide(rule: CompiledRule, ctx: EvalContext) -> AutoClose:
    verdict = rule.auto_close.decide(ctx) if rule.auto_close else None
    close = bool(verdict and verdict.value)
    reason = rule.rule.auto_close.reason if close and rule.rule.auto_close else None
    notes = (f"not auto-closed: {verdict.error}",) if verdict and verdict.error else ()
    return AutoClose(close=close, reason=reason, explanation=_explain(verdict, reason), notes=notes)


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
    if duplicate_of:
        return f"Open · duplicate of {duplicate_of} · {close.explanation}"
    return f"Open · {close.explanation}"
