"""Proposing a response action, and the Approve / Deny / Undo buttons.

A proposal comes from a rule's ``respond:`` (after the alert is posted, when its ``when``
holds) or from ``@SecBot isolate <host>`` / ``release <host>`` in an alert's thread. Its
message goes to the alert's thread. Every step is audited: proposed, approved or denied (by
whom, or by the night window), responded or response_failed, undone; refused clicks too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError

from secbot.ask.asker import TRANSIENT
from secbot.domain.status import AuditAction
from secbot.respond.base import RespondContext
from secbot.respond.calls import ACTIONS
from secbot.respond.proposal import APPROVE, DENY, UNDO_ACTION, Proposal, message
from secbot.respond.running import execute, stale, take_over
from secbot.triage.people import MembershipUnknownError

log = structlog.stdlib.get_logger(__name__)


class Approvals:
    """Proposals and the buttons on their messages."""

    def __init__(self, ctx: RespondContext) -> None:
        self.ctx = ctx

    async def propose(self, p: Proposal) -> None:
        """Post the approval message once (or approve at once inside the night window)."""
        ctx = self.ctx
        existing = await ctx.load(p.id)
        if existing is not None and existing.state != "posting":
            return
        await ctx.save(p)
        await ctx.audit(p, AuditAction.PROPOSED, f"{p.words} {p.label}",
                        p.requested_by if p.requested_by != "rule" else "secbot")
        ref = await ctx.store.message_for_alert(p.alert_uuid)
        auto = ctx.window is not None and ctx.window.contains(ctx.now())
        status = (f"Approving automatically: inside SECBOT_AUTO_APPROVE_HOURS "
                  f"({ctx.window.text})" if auto and ctx.window else
                  "Waiting for an approver (SECBOT_APPROVERS, not the requester)")
        buttons = () if auto else (APPROVE, DENY)
        if ref is None:
            log.warning("no message for alert %s: proposal %s not shown", p.alert_uuid, p.id)
            return
        try:
            posted = await ctx.client.chat_postMessage(
                channel=ref.channel, thread_ts=ref.ts, unfurl_links=False,
                **message(p, status, buttons=buttons))
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in TRANSIENT or not error:
                raise  # the hand-off (or the command) is retried
            log.warning("approval message for %s refused by Slack: %s", p.id, error)
            await ctx.audit(p, AuditAction.RESPONSE_FAILED, f"not shown: Slack said {error}",
                            "secbot")
            return
        p = replace(p, state="proposed", channel=ref.channel, ts=str(posted.get("ts") or ""))
        await ctx.save(p)
        if auto and await ctx.state.claim(f"{p.id}:decided", "auto", ctx.record_ttl):
            window = ctx.window.text if ctx.window else ""
            await ctx.audit(p, AuditAction.APPROVED, f"inside {window}", "secbot", auto="true")
            await self._run(p, f"SecBot automatically (inside SECBOT_AUTO_APPROVE_HOURS, "
                               f"{window})", "secbot")

    async def on_action(self, body: Mapping[str, Any]) -> None:
        action = (body.get("actions") or [{}])[0]
        pid, kind = str(action.get("value") or ""), str(action.get("action_id") or "")
        user = str((body.get("user") or {}).get("id") or "")
        channel = str((body.get("channel") or {}).get("id") or "")
        thread = str(((body.get("message") or {}).get("thread_ts")) or "")
        p = await self.ctx.load(pid)
        if p is None:
            await self._tell(channel, user, thread, "This response action is no longer known.")
            return
        refusal = await self._refusal(p, kind, user)
        if refusal is not None:
            await self.ctx.audit(p, AuditAction.REFUSED, refusal, user, slack_user=user,
                                 click=kind)
            await self._tell(channel or p.channel, user, thread, refusal)
            return
        if kind == UNDO_ACTION:
            await self._undo(p, user)
        elif kind == DENY:
            await self._deny(p, user)
        else:
            await self._approve(p, user)

    async def _refusal(self, p: Proposal, kind: str, user: str) -> str | None:
        try:
            approver = await self.ctx.approvers.allows(user)
        except MembershipUnknownError as exc:
            return (f"Slack could not tell SecBot who is in {', '.join(exc.groups)}; "
                    "try again shortly.")
        if not approver:
            return "Only SECBOT_APPROVERS may approve, deny or undo response actions."
        if kind == APPROVE and user == p.requested_by:
            return "You asked for this action: a second person must approve it."
        wanted = {APPROVE: ("proposed", "failed"), DENY: ("proposed", "failed"),
                  UNDO_ACTION: ("done",)}.get(kind, ())
        # Approve on a run whose replica stopped (past its lease) takes it over.
        if p.state not in wanted and not (kind == APPROVE and stale(self.ctx, p)):
            return f"This response action is {p.state} already."
        return None

    async def _approve(self, p: Proposal, user: str) -> None:
        if p.state == "running":
            if not await take_over(self.ctx, p, user):
                await self._tell(p.channel, user, "", "SecBot is taking this one over already.")
            return
        if not await self.ctx.state.claim(f"{p.id}:decided", user, self.ctx.record_ttl):
            await self.ctx.audit(p, AuditAction.REFUSED, "already being decided", user,
                                 slack_user=user, click=APPROVE)
            await self._tell(p.channel, user, "", "Someone else already decided this one.")
            return
        await self.ctx.audit(p, AuditAction.APPROVED, f"approved by {user}", user,
                             slack_user=user)
        await self._run(p, f"<@{user}>", user)

    async def _run(self, p: Proposal, who: str, actor: str) -> None:
        # Approved again after a take-over that ended unknown: it may have happened, so
        # "already in that state" is done. A fresh one is strict: a user someone else
        # suspended is not SecBot's to offer an Undo for.
        await execute(self.ctx, replace(p, approver=actor), who, already_ok=p.resumed > 0)

    async def _deny(self, p: Proposal, user: str) -> None:
        if not await self.ctx.state.claim(f"{p.id}:decided", user, self.ctx.record_ttl):
            await self._tell(p.channel, user, "", "Someone else already decided this one.")
            return
        p = replace(p, state="denied", approver=user)
        await self.ctx.save(p)
        await self.ctx.audit(p, AuditAction.DENIED, f"denied by {user}", user, slack_user=user)
        await self.ctx.show(p, f"Denied by <@{user}>")
        await self.ctx.reply(p, f":no_entry: <@{user}> denied {p.words} {p.target}.")

    async def _undo(self, p: Proposal, user: str) -> None:
        # The claim lasts a run's lease, not the record's life: an Undo whose replica stopped
        # may be clicked again; undoing twice is harmless and "already released" is done.
        if not await self.ctx.state.claim(f"{p.id}:undo", user, int(self.ctx.apis.lease)):
            await self._tell(p.channel, user, "", "This is being undone already.")
            return
        p = await self.ctx.run(p, ACTIONS[p.action][0], user, already_ok=True)
        await self.ctx.save(p)
        if p.state == "undone":
            await self.ctx.finished(p, f"<@{user}>")
        else:
            await self.ctx.state.release(f"{p.id}:undo")

    async def _tell(self, channel: str, user: str, thread: str, text: str) -> None:
        try:
            await self.ctx.client.chat_postEphemeral(channel=channel, user=user, text=text,
                                                     thread_ts=thread or None)
        except Exception:
            log.warning("could not tell %s in %s: %s", user, channel, text)
