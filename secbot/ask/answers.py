"""Answers to the DM question (``block_actions`` / the justification modal) and silence.

A click counts only when it is the person asked, on a question still open, the first answer:
anything else (someone else's click, a replay, a question whose alert is unknown or already
closed) is refused with an ephemeral note and audited as ``refused``. The first answer is
claimed in Redis (``SET NX``), so two clicks, two replicas or a click racing the timeout
produce one answer.

Before an answer is claimed, its question is put in the due queue ``lease`` seconds ahead: if
the replica dies mid-way, another one finds it answered-but-not-applied and finishes it, or
claimed-but-not-saved and records it first (:mod:`secbot.ask.claims`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog

from secbot.ask import claims
from secbot.ask.base import ASK_QUEUE, AskContext
from secbot.ask.blocks import (
    ASK_YES,
    JUSTIFY_BLOCK,
    JUSTIFY_INPUT,
    LABELS,
    answered_message,
    justification_view,
)
from secbot.ask.outcome import OutcomeFailed, finish
from secbot.ask.state import AskRecord
from secbot.domain.status import AuditAction
from secbot.render import mrkdwn as md
from secbot.resilience.loop import run_every

log = structlog.stdlib.get_logger(__name__)

TAGS = {"yes": "user_confirmed", "no": "user_denied"}


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


class AskAnswers:
    """What the bolt listeners for ``secbot_ask_yes`` / ``secbot_ask_no`` and the modal call."""

    def __init__(self, ctx: AskContext) -> None:
        self.ctx = ctx

    async def on_action(self, body: Mapping[str, Any]) -> None:
        """A button click (already acked)."""
        action = (body.get("actions") or [{}])[0]
        uuid = str(action.get("value") or "")
        answer = "yes" if action.get("action_id") == ASK_YES else "no"
        user = str((body.get("user") or {}).get("id") or "")
        channel = str((body.get("channel") or {}).get("id")
                      or (body.get("container") or {}).get("channel_id") or "")
        record = await self.ctx.load(uuid)
        if not await self._counts(record, uuid, user, channel, answer):
            return
        assert record is not None
        rule = self.ctx.rules.by_id(record.rule_id)
        wants_why = bool(rule and rule.rule.ask and rule.rule.ask.justification)
        trigger = body.get("trigger_id")
        if wants_why and trigger:
            try:
                await self.ctx.client.views_open(trigger_id=str(trigger),
                                                 view=justification_view(uuid, answer))
                return  # the answer arrives with the view submission
            except Exception:  # an expired trigger: the answer still counts, without a why
                log.warning("views.open failed for %s; answering without justification", uuid)
        await self.answer(record, answer, user, channel)

    async def on_view(self, body: Mapping[str, Any], view: Mapping[str, Any]) -> None:
        """The justification modal was submitted (already acked)."""
        try:
            meta = json.loads(str(view.get("private_metadata") or "{}"))
        except ValueError:
            meta = {}
        uuid, answer = str(meta.get("alert_uuid") or ""), str(meta.get("answer") or "")
        user = str((body.get("user") or {}).get("id") or "")
        values = (view.get("state") or {}).get("values") or {}
        text = str(((values.get(JUSTIFY_BLOCK) or {}).get(JUSTIFY_INPUT) or {}).get("value") or "")
        record = await self.ctx.load(uuid)
        if answer not in LABELS or not await self._counts(record, uuid, user, "", answer):
            return
        assert record is not None
        await self.answer(record, answer, user, record.dm_channel, text)

    async def _counts(self, record: AskRecord | None, uuid: str, user: str, channel: str,
                      answer: str) -> bool:
        """True if this click may answer; otherwise the clicker is told and it is audited."""
        why = None
        if record is None:
            why, text = "stale", "This question is no longer open (SecBot no longer knows it)."
        elif user != record.user_id:
            why, text = "not the person asked", (
                "Only the person this question was asked of can answer it.")
        elif record.state != "asked":
            why, text = "already answered", (
                f"This was already answered ({record.answer}, {_when(record.answered_at)}).")
        elif await self._closed(uuid):
            why, text = "stale", "This alert was already closed; no answer is needed."
        if why is None:
            return True
        await self._refuse(record, uuid, user, channel, answer, why, text)
        return False

    async def _refuse(self, record: AskRecord | None, uuid: str, user: str, channel: str,
                      answer: str, why: str, text: str) -> None:
        await self.ctx.audit(uuid or "-", AuditAction.REFUSED, f"answer refused: {why}",
                             record.rule_id if record else "", actor=user, slack_user=user,
                             answer=answer)
        await self._tell(channel or (record.dm_channel if record else ""), user, text)

    async def _closed(self, uuid: str) -> bool:
        stored = await self.ctx.store.load_record(uuid)
        return stored is not None and stored.status == "closed"

    async def answer(self, record: AskRecord, answer: str, user: str, channel: str,
                     justification: str = "") -> None:
        """Record the first answer, say it everywhere it belongs, then run its outcome."""
        uuid, now = record.alert_uuid, self.ctx.clock()
        ttl = int(record.due - now) + self.ctx.record_ttl
        taken = claims.AnswerClaim(answer, user, now + self.ctx.lease, now,
                                   justification[:2000])
        # Due a lease ahead before the claim: a replica stopping after it is found then
        # (never later than its timeout: a refused click must not delay that).
        await self.ctx.state.schedule(ASK_QUEUE, uuid, min(record.due, taken.deadline))
        if not await self.ctx.state.claim(claims.claim_name(uuid), taken.to_value(), ttl):
            await self._refuse(record, uuid, user, channel, answer, "already answered",
                               "This was already answered.")
            return
        record = await self._record(record, taken)
        try:
            await finish(self.ctx, record)
        except OutcomeFailed as exc:  # stays queued: applied again after the lease
            await self.ctx.say_in_thread(
                uuid, f"SecBot recorded the answer but could not apply it yet ({exc}); "
                      "it will try again.")

    async def _record(self, record: AskRecord, taken: claims.AnswerClaim, *,
                      resumed: bool = False) -> AskRecord:
        """Save the claimed answer ``answered``, audit it, and say it in the DM, the thread and
        the tags. ``resumed``: its claimer stopped before this (found by the sweep)."""
        uuid, answer, user = record.alert_uuid, taken.answer, taken.by
        person = answer in LABELS
        record = replace(record, state="answered", answer=answer,
                         answered_by=user if person else "", answered_at=taken.at,
                         justification=taken.justification)
        late = (" (recorded by SecBot after the replica that took it stopped before saving "
                "it)") if resumed else ""
        # A resumed answer is audited before it is saved: a replica stopping in between
        # leaves it to the next, and the once key keeps that to one entry.
        once = f"ask:answered:{uuid}" if resumed else None
        if resumed:
            await self._audit_answer(record, late, once)
        await self.ctx.save(record)
        if not resumed:
            await self._audit_answer(record, late, once)
        if not person:
            await self._show(record, f"No answer in time ({_when(record.answered_at)}).")
            await self.ctx.say_in_thread(
                uuid, f":hourglass: No answer from <@{record.user_id}> in time.")
            return record
        await self._show(record, f"You answered: *{LABELS[answer]}* · {_when(taken.at)}")
        why = (f" · “{md.truncate(md.escape(record.justification), 1500)}”"
               if record.justification else "")
        again = " _(recorded after SecBot restarted)_" if resumed else ""
        await self.ctx.say_in_thread(
            uuid, f":ballot_box_with_check: <@{user}> answered *{LABELS[answer]}*{why}{again}")
        await self._tag(record, TAGS[answer])
        return record

    async def _audit_answer(self, record: AskRecord, late: str, once: str | None) -> None:
        if record.answer in LABELS:
            await self.ctx.audit(record.alert_uuid, AuditAction.ANSWERED,
                                 LABELS[record.answer] + late, record.rule_id,
                                 actor=record.email or record.answered_by, once_key=once,
                                 slack_user=record.answered_by, answer=record.answer,
                                 justification=record.justification)
        else:
            await self.ctx.audit(record.alert_uuid, AuditAction.ANSWERED,
                                 "no answer in time" + late, record.rule_id, once_key=once,
                                 slack_user=record.user_id, answer="timeout")

    async def _show(self, record: AskRecord, outcome: str) -> None:
        """The DM without its buttons, saying what happened (best effort)."""
        try:
            await self.ctx.client.chat_update(channel=record.dm_channel, ts=record.dm_ts,
                                              **answered_message(record.question, outcome))
        except Exception:
            log.warning("could not update the question DM of %s", record.alert_uuid)

    async def _tag(self, record: AskRecord, tag: str) -> None:
        try:
            await self.ctx.siem.add_tags([record.alert_id or record.alert_uuid], [tag])
        except Exception:  # best effort, like every tag: the answer stands
            log.warning("could not tag %s with %s", record.alert_uuid, tag)

    async def _tell(self, channel: str, user: str, text: str) -> None:
        try:
            await self.ctx.client.chat_postEphemeral(channel=channel, user=user, text=text)
        except Exception:  # e.g. a forged click from outside the DM: the audit has it
            log.warning("could not tell %s in %s: %s", user, channel, text)

    # -- silence ------------------------------------------------------------------------------

    async def run(self, interval: float = 1.0) -> None:
        """The due-queue loop of this replica (every replica runs one; :meth:`tick` hands
        each due question to one of them). Cancelled at shutdown."""
        await run_every(self.tick, interval, what="ask timeouts")

    async def tick(self) -> int:
        """Handle every due question (a timeout, or an answer whose outcome did not run);
        returns how many this replica took."""
        now, taken = self.ctx.clock(), 0
        for uuid in await self.ctx.state.due(ASK_QUEUE, now):
            if not await self.ctx.state.take(ASK_QUEUE, uuid, now, self.ctx.lease):
                continue  # another replica has it
            taken += 1
            try:
                await self._due(uuid)
            except Exception:  # stays queued: due again after the lease
                log.exception("due question %s failed; retried after the lease", uuid)
        return taken

    async def _due(self, uuid: str) -> None:
        record = await self.ctx.load(uuid)
        if record is None:
            await self.ctx.state.unschedule(ASK_QUEUE, uuid)
            return
        if record.state == "asked":
            if await self._closed(uuid):  # a triager got there first: nothing to decide
                await self._show(record, "No longer needed: the alert was closed.")
                await self.ctx.save(replace(record, state="answered", answer="closed",
                                            applied=True))
                await self.ctx.state.unschedule(ASK_QUEUE, uuid)
                return
            settled = await self._settle(record)
            if settled is None:
                return
            record = settled
        await finish(self.ctx, record)

    async def _settle(self, record: AskRecord) -> AskRecord | None:
        """The still-``asked`` question answered (by silence, or by the claim a stopped
        replica left); None while it stays open or another replica has it."""
        uuid, now = record.alert_uuid, self.ctx.clock()
        taken = await claims.held(self.ctx, uuid)
        if taken is None:
            if now < record.due:  # due early (an answer's lease, an answer lost): not yet
                await self.ctx.state.schedule(ASK_QUEUE, uuid, record.due)
                return None
            taken = claims.AnswerClaim("timeout", "secbot", now + self.ctx.lease, now)
            if not await self.ctx.state.claim(claims.claim_name(uuid), taken.to_value(),
                                              self.ctx.record_ttl):
                return None  # answered just now: its answerer applies it (or we do, later)
            return await self._record(record, taken)
        if not await claims.take_stale(self.ctx, uuid, taken):
            return None  # being saved right now, or another replica resolves it
        if taken.answer in claims.KNOWN:
            return await self._record(record, replace(taken, at=taken.at or now),
                                      resumed=True)
        await self._lost(record)
        return None

    async def _lost(self, record: AskRecord) -> None:
        """A claim nobody can read (another version's, a cut value): the answer is unknown,
        so it is not guessed. The question stays open until its timeout; the DM answers it."""
        uuid = record.alert_uuid
        await self.ctx.state.release(claims.claim_name(uuid))
        await self.ctx.audit(uuid, AuditAction.REFUSED,
                             "answer lost: the replica that took it stopped before saving it, "
                             "and what was answered cannot be read; treated as not answered",
                             record.rule_id, slack_user=record.user_id, answer="unknown")
        await self.ctx.state.schedule(ASK_QUEUE, uuid, max(record.due, self.ctx.clock()))
        await self.ctx.say_in_thread(uuid, (
            f":warning: SecBot stopped while recording an answer from <@{record.user_id}> "
            "and cannot tell what it was: treated as not answered. They can still answer "
            f"from the DM; otherwise the timeout runs at {_when(record.due)}."))
