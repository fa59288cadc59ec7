"""Fewer questions: none inside a storm, one per person per rule while one is pending.

Asking costs Slack calls (``users.lookupByEmail``, ``conversations.open``, the DM, a thread
line) and the person's patience; a storm of one rule would DM someone once per alert.

* **Storm members** (an alert shown as a line of a ``storm`` group, DESIGN.md §10) are not
  asked. A storm is a triager's job: the group's header is where one acts on all of it at
  once, and a person's answer about one line would say little about thousands. Each member is
  audited ``asked`` with "not asked: part of a storm", the group's thread says so once, and
  the alert stays open: nothing is closed or paged because nobody was asked (as for a person
  Slack does not know, :mod:`secbot.ask.asker`).
* **The same person again** (duplicates of a ``dedup.key``, ``group.by`` members, or any
  later alert of the same rule and the same person while their question is still open): the
  alert is *attached* to the pending question instead of a second DM. When that question is
  answered (or times out, or could not be asked), every attached alert takes the same answer:
  each is audited ``answered`` on its own (naming the question it came from), tagged, told in
  its thread, and its rule's outcome runs for it. An alert that comes after the answer asks
  anew: an answer is never applied to activity the person has not seen.

Durable like the rest of the room: the pending question is a claim
(``ask:pending:<rule>:<email>``), attachments are claims in numbered slots
(``ask:attached:<question uuid>:<n>``), and every attached alert sits in the due queue at the
question's due time, so a replica dying between the answer and the last attached alert leaves
the rest to come due, never lost.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import replace

import structlog

from secbot.ask.base import ASK_KIND, ASK_QUEUE, AskContext
from secbot.ask.blocks import LABELS
from secbot.ask.state import AskRecord
from secbot.domain.group import GroupMeta
from secbot.domain.status import AuditAction
from secbot.render import mrkdwn as md

log = structlog.stdlib.get_logger(__name__)

OPEN = ("asking", "asked")  # a question still waiting for its answer
NOTE_PREFIX = "storm-note:"  # the due-queue member of a storm group's "not asked" line
NOTE_PATIENCE = 600.0  # seconds the line waits for the group's header before giving up
SLOTS_MAX = 5000  # alerts attached to one question at most; more are asked on their own
#: Same tags as a clicked answer (``secbot.ask.answers``): ``secbot stats`` counts them.
ANSWER_TAGS = {"yes": "user_confirmed", "no": "user_denied"}


def _pending(record: AskRecord) -> str:
    return f"{ASK_KIND}:pending:{record.rule_id}:{record.email.lower()}"


def _slot(question: str, n: int) -> str:
    return f"{ASK_KIND}:attached:{question}:{n}"


def _rule_name(ctx: AskContext, rule_id: str) -> str:
    rule = ctx.rules.by_id(rule_id)
    return rule.rule.name if rule is not None else rule_id


# -- storms -----------------------------------------------------------------------------------


async def storm_of(ctx: AskContext, uuid: str, known: MutableMapping[str, GroupMeta]
                   ) -> GroupMeta | None:
    """The storm group the publisher made ``uuid`` a line of, if any (``group.by`` and
    duplicate groups are not storms: their members are asked, one question per person).
    ``known``: metas already read (a group's meta never changes; its state is read once per
    group, not once per line of a 10,000-line storm)."""
    group_id = await ctx.store.group_of(uuid)
    if not group_id:
        return None
    meta = known.get(group_id)
    if meta is None:
        state = await ctx.store.load_group(group_id)
        if state is None:
            return None
        meta = known[group_id] = state.meta
    return meta if meta.kind == "storm" else None


async def not_asked_in_storm(ctx: AskContext, record: AskRecord, group: GroupMeta) -> None:
    """Audit it, have the group's thread say so once, and remember it was decided."""
    uuid, now = record.alert_uuid, ctx.clock()
    await ctx.audit(uuid, AuditAction.ASKED,
                    f"not asked: part of a storm of rule {group.rule_name}; triage the group",
                    record.rule_id, once_key=f"ask:asked:{uuid}", email=record.email,
                    group=group.group_id)
    name = f"{ASK_KIND}:storm-note:{group.group_id}"
    if (await ctx.state.claim(name, uuid, ctx.record_ttl)
            or await ctx.state.claimed_by(name) == uuid):  # this alert's earlier attempt
        note = AskRecord(alert_uuid=NOTE_PREFIX + group.group_id, rule_id=record.rule_id,
                         email="", due=now + NOTE_PATIENCE, state="note",
                         question=group.rule_name)
        await ctx.save(note)
        await ctx.state.schedule(ASK_QUEUE, note.alert_uuid, now)
    await ctx.save(replace(record, state="answered", answer="storm", answered_at=now,
                           applied=True))


async def show_storm_note(ctx: AskContext, note: AskRecord) -> None:
    """The group's thread says once that its alerts were not asked (the header is posted by
    the group flusher at Slack's pace, so this waits for it, up to ``NOTE_PATIENCE``)."""
    group_id, now = note.alert_uuid.removeprefix(NOTE_PREFIX), ctx.clock()
    if note.applied:
        await ctx.state.unschedule(ASK_QUEUE, note.alert_uuid)
        return
    if await ctx.store.message_for_alert(group_id) is None:
        if now < note.due:
            await ctx.state.schedule(ASK_QUEUE, note.alert_uuid, now + 1.0)
            return
        log.warning("storm group %s has no header after %ss; its 'not asked' line is only "
                    "in the audit", group_id, NOTE_PATIENCE)
    elif not await ctx.say_in_thread(group_id, (
            f":information_source: Nobody was asked by DM about these alerts: they are part "
            f"of a storm of rule *{md.escape(note.question)}*. Triage the group here; its "
            "alerts stay open until then.")) and now < note.due:
        await ctx.state.schedule(ASK_QUEUE, note.alert_uuid, now + 5.0)
        return
    await ctx.save(replace(note, applied=True))
    await ctx.state.unschedule(ASK_QUEUE, note.alert_uuid)


# -- one question per person per rule ---------------------------------------------------------


async def pending_question(ctx: AskContext, record: AskRecord) -> AskRecord | None:
    """The other alert's question still open for this person and rule, which ``record``
    attaches to; None when ``record`` asks itself (it then holds the pending claim)."""
    name = _pending(record)
    ttl = int(max(0.0, record.due - ctx.clock()) + 2 * ctx.lease)
    for _ in range(2):
        if await ctx.state.claim(name, record.alert_uuid, ttl):
            return None
        holder = await ctx.state.claimed_by(name)
        if holder is None:
            continue  # expired just now
        if holder == record.alert_uuid:
            return None  # this alert's earlier attempt
        question = await ctx.load(holder)
        if question is not None and question.state in OPEN:
            return question
        await ctx.state.release(name)  # answered (its release was lost in a crash): ask anew
    return None


async def _take_slot(ctx: AskContext, question: str, uuid: str, ttl: int) -> bool:
    """Claim the first free numbered slot of ``question`` for ``uuid`` (slots fill in order,
    so a galloping then binary search finds it in a few reads, not one per attached alert)."""
    low, high = 0, 1
    while await ctx.state.claimed_by(_slot(question, high - 1)) is not None:
        low, high = high, high * 2
        if high > SLOTS_MAX:
            return False
    while low < high - 1:  # slot low - 1 is taken (or low == 0), slot high - 1 is free
        middle = (low + high) // 2
        if await ctx.state.claimed_by(_slot(question, middle - 1)) is None:
            high = middle
        else:
            low = middle
    for n in range(low, SLOTS_MAX):  # another alert may take it first: the next one
        if (await ctx.state.claim(_slot(question, n), uuid, ttl)
                or await ctx.state.claimed_by(_slot(question, n)) == uuid):
            return True
    return False


async def attach(ctx: AskContext, record: AskRecord, question: AskRecord) -> bool:
    """``record`` takes ``question``'s answer instead of a DM of its own; False when the
    question has no room left (then ``record`` is asked on its own)."""
    uuid = record.alert_uuid
    ttl = int(max(0.0, question.due - ctx.clock())) + ctx.record_ttl
    if not await _take_slot(ctx, question.alert_uuid, uuid, ttl):
        return False
    await ctx.state.schedule(ASK_QUEUE, uuid, question.due)  # silence: resolved with it
    await ctx.save(replace(record, state="attached", attached_to=question.alert_uuid,
                           user_id=question.user_id, due=question.due))
    who = f"<@{question.user_id}>" if question.user_id else "the person"
    await ctx.audit(uuid, AuditAction.ASKED,
                    f"not asked again: {record.email} has a question pending for this rule "
                    f"(alert {question.alert_uuid}); its answer applies here",
                    record.rule_id, once_key=f"ask:asked:{uuid}", slack_user=question.user_id,
                    question=question.alert_uuid)
    await ctx.say_in_thread(uuid, (
        f":link: Not asked again: {who} already has a question pending for this rule "
        f"(alert `{md.escape(question.alert_uuid)}`); their answer applies to this alert too."))
    again = await ctx.load(question.alert_uuid)
    if again is None or again.state not in OPEN:  # answered meanwhile: take it now
        await ctx.state.schedule(ASK_QUEUE, uuid, ctx.clock())
    return True


async def attached_to(ctx: AskContext, question: str) -> list[str]:
    """The alerts attached to ``question``, in order, each once."""
    found: list[str] = []
    for n in range(SLOTS_MAX):
        uuid = await ctx.state.claimed_by(_slot(question, n))
        if uuid is None:
            break
        if uuid not in found:
            found.append(uuid)
    return found


async def release(ctx: AskContext, question: AskRecord) -> None:
    """The question's outcome ran: the next alert of this person asks anew, and every
    attached alert comes due now to take the answer."""
    if not question.email:
        return
    name = _pending(question)
    if await ctx.state.claimed_by(name) == question.alert_uuid:
        await ctx.state.release(name)
    now = ctx.clock()
    for uuid in await attached_to(ctx, question.alert_uuid):
        await ctx.state.schedule(ASK_QUEUE, uuid, now)


async def inherit(ctx: AskContext, record: AskRecord) -> AskRecord | None:
    """The attached alert takes its question's answer: recorded, audited, tagged and said in
    its thread; returned for its outcome to run. None while the question is still open (the
    alert comes due again with it)."""
    question = await ctx.load(record.attached_to)
    now = ctx.clock()
    if question is not None and question.state in OPEN:
        await ctx.state.schedule(ASK_QUEUE, record.alert_uuid, max(question.due, now + 1.0))
        return None
    answer = "withdrawn" if question is None or question.answer not in (
        "yes", "no", "timeout", "not_found") else question.answer
    source = question or record
    record = replace(record, state="answered", answer=answer, answered_by=source.answered_by,
                     answered_at=source.answered_at or now, user_id=source.user_id,
                     justification=source.justification)
    await ctx.save(record)
    await ctx.audit(record.alert_uuid, AuditAction.ANSWERED,
                    f"{LABELS.get(answer, answer)} (the answer to the question about alert "
                    f"{record.attached_to})", record.rule_id,
                    actor=source.email or source.answered_by or "secbot",
                    once_key=f"ask:answered:{record.alert_uuid}", slack_user=record.user_id,
                    answer=answer, question=record.attached_to,
                    justification=record.justification)
    await ctx.say_in_thread(record.alert_uuid, _inherited_line(record))
    if answer in ANSWER_TAGS:
        try:
            await ctx.siem.add_tags([record.alert_id or record.alert_uuid], [ANSWER_TAGS[answer]])
        except Exception:  # best effort, like every tag: the answer stands
            log.warning("could not tag %s with %s", record.alert_uuid, ANSWER_TAGS[answer])
    return record


def _inherited_line(record: AskRecord) -> str:
    about = f"the question about alert `{md.escape(record.attached_to)}`"
    who = f"<@{record.user_id}>" if record.user_id else "the person"
    if record.answer in LABELS:
        return (f":ballot_box_with_check: {who} answered *{LABELS[record.answer]}* to {about}, "
                "which covered this alert too")
    if record.answer == "timeout":
        return f":hourglass: No answer from {who} in time to {about}, which covered this alert"
    if record.answer == "not_found":
        return (f":warning: SecBot could not ask ({about} could not be sent). "
                "The alert stays open for a triager.")
    return (f":warning: No answer: {about} was withdrawn (its alert was closed first); not "
            "asked again. The alert stays open for a triager.")
