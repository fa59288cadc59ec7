"""Status changes from Slack (emoji or text command): authorize, change the SIEM, audit, edit.

Kibana's ``reason`` only takes its fixed list, so the person goes into an alert tag
(``closed_by:<email or user id>``) and the audit stream; Kibana's own ``workflow_user`` is the
API key's user. Acting on an alert already in the target status is a quiet no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.status import Status
from secbot.render.blocks import with_status
from secbot.siem.base import Siem
from secbot.store.base import AuditEntry, Store
from secbot.triage.people import USER_ID, Directory, MembershipUnknownError, Triagers

TAG_VERB = {
    "closed": "closed_by",
    "acknowledged": "acknowledged_by",
    "open": "reopened_by",
    "in-progress": "in_progress_by",
}


@dataclass(frozen=True)
class Outcome:
    """What happened, for the caller to tell the user: ``changed``, ``noop``, ``refused``, …"""

    kind: str
    text: str


class StatusChanger:
    """One place that changes an alert's status on behalf of a Slack user."""

    def __init__(
        self,
        client: AsyncWebClient,
        siem: Siem,
        store: Store,
        triagers: Triagers,
        directory: Directory,
        *,
        ttl: int = 30 * 86400,
    ) -> None:
        self.client = client
        self.siem = siem
        self.store = store
        self.triagers = triagers
        self.directory = directory
        self.ttl = ttl

    async def change(self, uuid: str, status: Status, reason: str | None, user: str) -> Outcome:
        try:
            allowed = await self.triagers.allows(user)
        except MembershipUnknownError as exc:
            return Outcome("refused", f"SecBot did not change this alert's status: Slack could "
                           f"not tell it who is in {', '.join(exc.groups)}. Try again shortly.")
        if not allowed:
            return Outcome(
                "refused",
                "You are not in SECBOT_TRIAGERS, so SecBot did not change "
                "this alert's status. Ask a triager.",
            )
        record = await self.store.load_alert(uuid) or {}
        alert_id = str(record.get("id") or uuid)
        alert = await self.siem.get(alert_id)
        if alert is None:
            return Outcome("missing", f"Alert {uuid} is no longer in the SIEM.")
        if alert.workflow_status == status:
            return Outcome("noop", f"Already {status}.")
        reason = reason if status == "closed" else None
        await self.siem.set_status([alert_id], status, reason=reason, user=user)
        credit = await self.directory.credit(user)
        await self.siem.add_tags([alert_id], [f"{TAG_VERB.get(status, 'changed_by')}:{credit}"])
        now = datetime.now(UTC)
        await self.store.append_audit(
            AuditEntry(
                alert_uuid=uuid,
                actor=credit,
                action=status,
                reason=reason or "",
                at=now,
                rule_id=str(record.get("rule_id") or ""),
                extra={"slack_user": user},
            )
        )
        await self._edit_message(uuid, record, status_line(status, reason, user, now))
        return Outcome("changed", f"{status.capitalize()}.")

    async def _edit_message(self, uuid: str, record: dict[str, object], line: str) -> None:
        ref = await self.store.message_for_alert(uuid)
        message = record.get("message")
        if ref is None or not isinstance(message, dict):
            return
        updated = with_status(message, line, trusted=True)
        await self.client.chat_update(
            channel=ref.channel, ts=ref.ts, text=updated.get("text", ""), blocks=updated["blocks"]
        )
        record["message"] = updated
        await self.store.save_alert(uuid, dict(record), self.ttl)


def status_line(status: str, reason: str | None, user: str, at: datetime) -> str:
    """ "Closed by @user · reason · time" (the user id is Slack's, never alert text)."""
    who = f"<@{user}>" if USER_ID.match(user) else user
    parts = [f"{status.capitalize()} by {who}"]
    if reason:
        parts.append(reason)
    parts.append(at.strftime("%Y-%m-%d %H:%M UTC"))
    return " · ".join(parts)
