"""Asking the person: after an alert of a rule with ``ask`` is posted, DM them the question.

Exactly once per alert, across redelivery and ``kill -9``: the record is written as
``asking`` before the DM and ``asked`` after it. A redelivered alert whose record says
``asked`` (or later) is left alone; one that says ``asking`` died between the two writes, so
the DM channel's history is searched for the question's metadata before it is sent again.

A person Slack does not know (``users_not_found``), or an alert without the field: the thread
says so, the audit has it, and nothing else happens. It is not taken as silence: no answer
was asked for, so neither ``on_timeout``'s close (an alert is never closed because nobody
could be asked) nor its escalation (a missing directory entry is a data problem, and paging
for it would teach people to ignore pages) runs; the alert stays open for a triager.

Not every alert is asked (:mod:`secbot.ask.pending`): a line of a storm group is not (the
group is triaged), and a later alert of the same person and rule while their question is
open is attached to it (one DM; its answer applies to every attached alert).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog
from cachetools import LRUCache, TTLCache
from slack_sdk.errors import SlackApiError

from secbot.ask import pending
from secbot.ask.base import ASK_QUEUE, AskContext
from secbot.ask.blocks import ASK_EVENT, question_message
from secbot.ask.outcome import finish
from secbot.ask.state import AskRecord
from secbot.domain.alert import Alert
from secbot.domain.group import GroupMeta
from secbot.domain.status import AuditAction
from secbot.pipeline.decision import Decision
from secbot.render import mrkdwn as md
from secbot.render.templates import TemplateProblem, render_template
from secbot.rules.ruleset import CompiledRule

log = structlog.stdlib.get_logger(__name__)

#: Slack errors about the person: Slack knows nobody to DM by that address.
NO_PERSON = frozenset({"users_not_found", "user_not_found", "user_disabled", "account_inactive",
                       "cannot_dm_bot", "user_is_bot"})
#: Slack errors a retry may heal: raised, so the hand-off retries the alert. Any other error
#: (``missing_scope`` when the app lacks ``im:write``, ``invalid_auth`` …) is said in the
#: thread instead: retrying it forever would hold the rule's alerts back for nothing.
TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable",
                       "request_timeout", "ratelimited"})


class Asker:
    """The hand-off step (``TriageHandler.after_post``) that sends the question."""

    def __init__(self, ctx: AskContext, *, people_ttl: float = 600.0) -> None:
        self.ctx = ctx
        # email -> Slack user id ("" = Slack knows nobody by it): a storm of one person's
        # alerts costs one users.lookupByEmail (Tier 3), not one per alert. Bounded.
        self._people: TTLCache[str, str] = TTLCache(maxsize=10_000, ttl=people_ttl)
        self._dms: TTLCache[str, str] = TTLCache(maxsize=10_000, ttl=people_ttl)
        self._groups: LRUCache[str, GroupMeta] = LRUCache(maxsize=1_000)  # metas never change

    async def after_post(self, alert: Alert, decision: Decision) -> None:
        """Ask, once. Slack or Redis failing raises (the hand-off retries the alert; the post
        is recognised, the ask resumes); a person who cannot be asked is said, not raised."""
        rule = self.ctx.rules.by_id(decision.rule_id) if decision.rule_id else None
        if rule is None or rule.rule.ask is None or not decision.post or decision.auto_close:
            return
        existing = await self.ctx.load(alert.uuid)
        if existing is not None and existing.state != "asking":
            return
        record = existing or self._record(alert, rule)
        storm = await pending.storm_of(self.ctx, alert.uuid, self._groups)
        if storm is not None:  # a line of a storm: the group is triaged, nobody is DMed
            await pending.not_asked_in_storm(self.ctx, record, storm)
            return
        if not record.email:
            await self._cannot_ask(record, f"the alert has no `{md.escape(rule.rule.ask.user)}`")
            return
        question = self._question(alert, decision, rule)
        record = replace(record, question=question)
        await self.ctx.save(record)
        open_question = await pending.pending_question(self.ctx, record)
        if open_question is not None and await pending.attach(self.ctx, record, open_question):
            return  # one question per person per rule: its answer applies here too
        opened = await self._open_dm(record.email)
        if isinstance(opened, str):
            # The address stays out of the thread (the message shows the field; the audit
            # has the address): only what SecBot itself found out is said.
            why = (f"Slack has no user with the alert's `{md.escape(rule.rule.ask.user)}`"
                   if opened in NO_PERSON else "Slack refused to open a DM")
            await self._cannot_ask(record, f"{why} ({md.escape(opened)})")
            return
        user_id, channel = opened
        ts = await self._sent_before(channel, alert.uuid) if existing is not None else None
        if ts is None:
            message = question_message(alert.uuid, question, rule.rule.name)
            try:
                posted = await self.ctx.client.chat_postMessage(channel=channel, **message)
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                if error in TRANSIENT or not error:
                    raise
                await self._cannot_ask(record, f"Slack refused the question ({md.escape(error)})")
                return
            ts = str(posted.get("ts") or "")
        await self._asked(replace(record, state="asked", user_id=user_id, dm_channel=channel,
                                  dm_ts=ts))

    async def _open_dm(self, email: str) -> tuple[str, str] | str:
        """(user id, DM channel), or the Slack error that says this person cannot be asked
        here (a :data:`TRANSIENT` one raises: a retry of the alert may heal it)."""
        user_id = self._people.get(email.lower())
        if user_id == "":
            return "users_not_found"
        try:
            if user_id is None:
                found = await self.ctx.client.users_lookupByEmail(email=email)
                user_id = str((found.get("user") or {}).get("id") or "")
                self._people[email.lower()] = user_id
            channel = self._dms.get(user_id)
            if channel is None:  # Tier 2: a DM's id does not change, so it is asked once
                dm = await self.ctx.client.conversations_open(users=user_id)
                channel = str((dm.get("channel") or {}).get("id") or "")
                self._dms[user_id] = channel
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in TRANSIENT or not error:
                raise
            if error in ("users_not_found", "user_not_found"):
                self._people[email.lower()] = ""
            return error
        return user_id, channel

    def _record(self, alert: Alert, rule: CompiledRule) -> AskRecord:
        ask = rule.rule.ask
        assert ask is not None
        email = alert.get_field(ask.user)
        if isinstance(email, list):
            email = email[0] if email else None
        return AskRecord(alert_uuid=alert.uuid, rule_id=rule.id,
                         email=str(email).strip() if email else "",
                         due=self.ctx.clock() + ask.timeout, alert_id=alert.id or alert.uuid)

    @staticmethod
    def _question(alert: Alert, decision: Decision, rule: CompiledRule) -> str:
        """The rendered question (plain text; escaped where it is shown). A template that
        fails still asks, in words that need no alert data."""
        context: dict[str, Any] = {
            "alert": alert.frozen, "field": alert.get_field, "fields": decision.fields,
            "IncludedFields": decision.fields, "severity": decision.severity,
            "rule_name": alert.rule_name, "uuid": alert.uuid,
            "enrichments": {n: e.data for n, e in decision.enrichments.items() if e.available},
        }
        if rule.question is not None:
            try:
                return render_template(rule.question, context)
            except TemplateProblem as exc:
                log.warning("ask question of %s failed to render: %s", rule.id, exc)
        return f"Was this you? ({rule.rule.name})"

    async def _sent_before(self, channel: str, uuid: str) -> str | None:
        """The ts of a question about ``uuid`` already in the DM (sent before a crash)."""
        try:
            page = await self.ctx.client.conversations_history(
                channel=channel, limit=50, include_all_metadata=True)
        except SlackApiError:
            return None
        for message in page.get("messages") or []:
            meta = message.get("metadata") or {}
            if (meta.get("event_type") == ASK_EVENT
                    and (meta.get("event_payload") or {}).get("alert_uuid") == uuid):
                return str(message.get("ts"))
        return None

    async def _asked(self, record: AskRecord) -> None:
        await self.ctx.save(record)
        await self.ctx.state.schedule(ASK_QUEUE, record.alert_uuid, record.due)
        await self.ctx.audit(record.alert_uuid, AuditAction.ASKED,
                             f"asked {record.email} by DM", record.rule_id,
                             once_key=f"ask:asked:{record.alert_uuid}",
                             slack_user=record.user_id, question=record.question)
        await self.ctx.say_in_thread(
            record.alert_uuid,
            f":speech_balloon: Asked <@{record.user_id}> by DM: "
            f"_{md.truncate(md.escape(record.question), 1500)}_ (waiting for an answer)")

    async def _cannot_ask(self, record: AskRecord, why: str) -> None:
        """Say so, audit it, and run ``on_timeout`` now only when it escalates."""
        record = replace(record, state="answered", answer="not_found",
                         answered_at=self.ctx.clock())
        await self.ctx.save(record)
        await self.ctx.audit(record.alert_uuid, AuditAction.ASKED, f"could not ask: {why}",
                             record.rule_id, once_key=f"ask:asked:{record.alert_uuid}",
                             email=record.email)
        await self.ctx.say_in_thread(
            record.alert_uuid,
            f":warning: SecBot could not ask: {why}. The alert stays open for a triager.")
        await finish(self.ctx, record)
