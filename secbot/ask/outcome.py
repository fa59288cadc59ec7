"""What an answer (or silence) does: ``on_yes`` / ``on_no`` / ``on_timeout`` of the rule.

``{status, reason}`` goes through the same status change as an emoji (SIEM, audit, tag, the
message's status line), made by SecBot on the person's behalf: the person asked is rarely a
triager, the rule's author decided what their answer means, and the audit's ``answered``
entry names who answered. ``{escalate: true}`` runs the rule's escalations (:class:`Escalator`).

A status change that did not happen raises :class:`OutcomeFailed`: the question stays in the
due queue and is applied again after its lease, so a SIEM outage delays the outcome and never
loses it.
"""

from __future__ import annotations

from dataclasses import replace

from secbot.ask import pending
from secbot.ask.base import ASK_QUEUE, AskContext
from secbot.ask.state import AskRecord
from secbot.domain.errors import SecBotError
from secbot.rules.schema import AskOutcome
from secbot.triage.status_change import OutcomeKind

WHY = {"yes": "the person confirmed it was them", "no": "the person said it was not them",
       "timeout": "no answer in time", "not_found": "the person could not be asked"}
#: Answers that decide nothing: nobody was asked (a storm, a question withdrawn). A triager
#: decides; the alert is never closed or paged because nobody answered.
NO_OUTCOME = frozenset({"not_found", "storm", "withdrawn", "closed"})


class OutcomeFailed(SecBotError):
    """The outcome's status change did not happen (the SIEM refused or was down)."""


def outcome_for(ctx: AskContext, record: AskRecord) -> AskOutcome | None:
    """The rule's outcome for the recorded answer (None: the rule no longer asks)."""
    rule = ctx.rules.by_id(record.rule_id)
    ask = rule.rule.ask if rule else None
    if ask is None:
        return None
    if record.answer == "yes":
        return ask.on_yes
    if record.answer == "no":
        return ask.on_no
    if record.answer in NO_OUTCOME:
        return None  # nobody was asked: a triager decides (never closed, never paged for it)
    return ask.on_timeout


async def apply_outcome(ctx: AskContext, record: AskRecord, outcome: AskOutcome, why: str
                        ) -> None:
    """Run ``outcome`` for the alert and say what happened in its thread."""
    uuid = record.alert_uuid
    if outcome.escalate:
        line = await ctx.escalator.escalate(uuid, record.rule_id, why)
        await ctx.say_in_thread(uuid, line)
        return
    assert outcome.status is not None  # the schema: status or escalate
    result = await ctx.status.change(uuid, outcome.status, outcome.reason, ctx.bot_user_id)
    if result.kind is OutcomeKind.FAILED:
        raise OutcomeFailed(result.text)
    if result.kind is OutcomeKind.CHANGED:
        done = f"{outcome.status.capitalize()} by SecBot: {why}" + (
            f" · {outcome.reason}" if outcome.reason else "")
        if result.problems:
            done += " · but " + "; ".join(result.problems)
        await ctx.say_in_thread(uuid, done)
    else:  # already so, refused or gone: the thread hears it, nothing else to do
        await ctx.say_in_thread(uuid, f"SecBot did not change the alert ({why}): {result.text}")


async def finish(ctx: AskContext, record: AskRecord) -> None:
    """Apply the answer's outcome once, then mark it applied and drop it from the queue; a
    question's attached alerts then take the same answer (:mod:`secbot.ask.pending`)."""
    if record.state == "note":
        await pending.show_storm_note(ctx, record)
        return
    if record.state == "attached":
        inherited = await pending.inherit(ctx, record)
        if inherited is None:
            return  # its question is still open
        record = inherited
    if not record.applied:
        outcome = outcome_for(ctx, record)
        if outcome is not None:
            await apply_outcome(ctx, record, outcome, WHY.get(record.answer, record.answer))
        await ctx.save(replace(record, applied=True))
    if not record.attached_to:  # again after a crash here: releasing is idempotent
        await pending.release(ctx, record)
    await ctx.state.unschedule(ASK_QUEUE, record.alert_uuid)
