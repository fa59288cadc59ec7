"""What the respond room shares: its context (clients, state, settings) and the run step.

Two-person rule (DESIGN.md §8): only a member of ``SECBOT_APPROVERS`` (users or user groups,
the same membership logic as ``SECBOT_TRIAGERS``) who is not the requester approves. The
decision is claimed in Redis (``SET NX``), so two clicks, or two approvers at the same moment,
run the action once. Inside ``SECBOT_AUTO_APPROVE_HOURS`` SecBot approves by itself and says
so; ``SECBOT_RESPOND_DRY_RUN`` says what would be called and calls nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from secbot.ask.state import Interactions
from secbot.domain.status import AuditAction
from secbot.render import mrkdwn as md
from secbot.respond.calls import CallFailed, ResponseApis, Target
from secbot.respond.proposal import KIND, UNDO_ACTION, Proposal, message
from secbot.respond.window import AutoApproveWindow
from secbot.rules.ruleset import RuleSet
from secbot.siem.base import Siem
from secbot.store.base import AuditEntry, Store
from secbot.triage.people import Triagers

log = structlog.stdlib.get_logger(__name__)

CONTAINED_TAG = "contained"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RespondContext:
    client: AsyncWebClient
    store: Store
    state: Interactions
    siem: Siem
    rules: RuleSet
    approvers: Triagers
    apis: ResponseApis
    window: AutoApproveWindow | None = None
    dry_run: bool = False
    record_ttl: int = 30 * 86400
    now: Callable[[], datetime] = _now

    async def load(self, pid: str) -> Proposal | None:
        return Proposal.from_json(await self.state.get(KIND, pid))

    async def save(self, p: Proposal) -> None:
        await self.state.put(KIND, p.id, p.to_json(), self.record_ttl)

    async def audit(self, p: Proposal, action: AuditAction, reason: str, actor: str,
                    **extra: str) -> None:
        await self.store.append_audit(AuditEntry(
            alert_uuid=p.alert_uuid, actor=actor, action=action, reason=reason, at=self.now(),
            rule_id=p.rule_id,
            extra={"proposal": p.id, "response": p.action, "target": p.label, **extra}))

    async def show(self, p: Proposal, status: str, *buttons: str) -> None:
        """Edit the approval message (best effort: the thread reply and audit still say it)."""
        if not p.channel or not p.ts:
            return
        try:
            await self.client.chat_update(channel=p.channel, ts=p.ts,
                                          **message(p, status, buttons=buttons))
        except Exception:
            log.warning("could not update the approval message of %s", p.id)

    async def reply(self, p: Proposal, text: str) -> None:
        ref = await self.store.message_for_alert(p.alert_uuid)
        channel, ts = (ref.channel, ref.ts) if ref else (p.channel, p.ts)
        if not channel:
            return
        try:
            await self.client.chat_postMessage(channel=channel, thread_ts=ts, text=text,
                                               unfurl_links=False)
        except Exception:
            log.warning("could not reply in the thread of %s: %s", p.alert_uuid, text)

    def comment(self, p: Proposal, approver: str) -> str:
        return (f"SecBot: {p.words} for alert {p.alert_uuid}, requested by "
                f"{'rule ' + p.rule_id if p.requested_by == 'rule' else p.requested_by}, "
                f"approved by {approver}")

    async def run(self, p: Proposal, action: str, approver: str, *,
                  already_ok: bool = False) -> Proposal:
        """Call the response API once for ``action`` (the proposal's or its undo); the
        result goes to the message, the thread and the audit. Never raises CallFailed.
        ``already_ok``: a target already in the wanted state is done (a run taken over)."""
        target = Target(p.label, p.ident)
        undo = action != p.action
        try:
            if self.dry_run:
                planned = self.apis.plan(action, target, self.comment(p, approver), dry=True)
                ref, what = "dry-run", f"dry run: would {planned.method} {md.escape(planned.url)}"
            else:
                done = await self.apis.run(action, target, self.comment(p, approver),
                                           already_ok=already_ok)
                ref, what = done.ref, f"done (ref `{md.escape(done.ref or '-')}`)"
                if done.already:
                    what = f"done (it was {md.escape(done.already)} already)"
        except CallFailed as exc:
            text = f":x: {md.escape(str(exc))}"
            await self.audit(p, AuditAction.RESPONSE_FAILED, str(exc), approver,
                             undo=str(undo).lower())
            if undo:
                await self.reply(p, f"Undo of {p.words} {p.target} failed: "
                                    f"{md.escape(str(exc))}. It is still in effect.")
            else:
                await self.reply(p, f"{p.words.capitalize()} {p.target} failed: "
                                    f"{md.escape(str(exc))}. The alert is not marked contained.")
            return replace(p, state="failed" if not undo else "done", note=text)
        await self.audit(p, AuditAction.UNDONE if undo else AuditAction.RESPONDED, what,
                         approver, ref=ref, dry_run=str(self.dry_run).lower(),
                         **({"resumed": str(p.resumed)} if p.resumed else {}))
        if not undo and not self.dry_run:
            await self._tag(p)
        return replace(p, state="undone" if undo else "done", ref=ref, note=what)

    async def _tag(self, p: Proposal) -> None:
        try:
            await self.siem.add_tags([p.alert_id or p.alert_uuid], [CONTAINED_TAG])
        except Exception:
            log.warning("could not tag %s as contained", p.alert_uuid)

    async def finished(self, p: Proposal, who: str) -> None:
        """Say how it went (message, thread) after :meth:`run`."""
        if p.state == "done":
            await self.show(p, f"{p.note} · approved by {who}", UNDO_ACTION)
            verb = "would be done (dry run)" if self.dry_run else "done"
            await self.reply(p, f":white_check_mark: {p.words} {p.target} {verb} · "
                                f"approved by {who}")
        elif p.state == "undone":
            await self.show(p, f"Undone by {who} · {p.note}")
            await self.reply(p, f":leftwards_arrow_with_hook: Undone by {who}: {p.target}")
