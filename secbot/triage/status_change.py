"""Status changes from Slack (emoji or text command): authorize, change the SIEM, audit, edit.

Kibana's ``reason`` only takes its fixed list, so the person goes into an alert tag
(``closed_by:<email or user id>``) and the audit stream; Kibana's own ``workflow_user`` is the
API key's user. Acting on an alert already in the target status is a quiet no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.record import AlertRecord
from secbot.domain.status import AuditAction, Status
from secbot.render.blocks import with_status
from secbot.siem.base import Siem
from secbot.store.base import AuditEntry, Store
from secbot.store.records import AlertRecords
from secbot.triage.people import USER_ID, Directory, MembershipUnknownError, Triagers

TAG_VERB = {
    "closed": "closed_by",
    "acknowledged": "acknowledged_by",
    "open": "reopened_by",
    "in-progress": "in_progress_by",
}


class OutcomeKind(Enum):
    """What a status change request came to."""

    CHANGED = "changed"  # the SIEM, the audit and the message now show the new status
    NOOP = "noop"  # the alert already had that status: nothing written
    REFUSED = "refused"  # the user is not a triager: nothing written
    MISSING = "missing"  # the alert is gone from the SIEM: nothing written


@dataclass(frozen=True)
class Outcome:
    """What happened, and the text to tell the user."""

    kind: OutcomeKind
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
        self.records = AlertRecords(store, ttl)

    async def change(self, uuid: str, status: Status, reason: str | None, user: str) -> Outcome:
        try:
            allowed = await self.triagers.allows(user)
        except MembershipUnknownError as exc:
            return Outcome(
                OutcomeKind.REFUSED,
                "SecBot did not change this alert's status: Slack could not tell it who is in "
                f"{', '.join(exc.groups)}. Try again shortly.",
            )
        if not allowed:
            return Outcome(
                OutcomeKind.REFUSED,
                "You are not in SECBOT_TRIAGERS, so SecBot did not change "
                "this alert's status. Ask a triager.",
            )
        # Without a record (expired, or from an older SecBot) the uuid is the SIEM id.
        record = await self.records.load(uuid)
        alert_id = (record.id if record else "") or uuid
        alert = await self.siem.get(alert_id)
        if alert is None:
            return Outcome(OutcomeKind.MISSING, f"Alert {uuid} is no longer in the SIEM.")
        if alert.workflow_status == status:
            return Outcome(OutcomeKind.NOOP, f"Already {status}.")
        reason = reason if status == "closed" else None
        await self.siem.set_status([alert_id], status, reason=reason, user=user)
        credit = await self.directory.credit(user)
        await self.siem.add_tags([alert_id], [f"{TAG_VERB.get(status, 'changed_by')}:{credit}"])
        now = datetime.now(UTC)
        await self.store.append_audit(
            AuditEntry(
                alert_uuid=uuid,
                actor=credit,
                action=AuditAction(status),
                reason=reason or "",
                at=now,
                rule_id=(record.rule_id if record else None) or "",
                extra={"slack_user": user},
            )
        )
        updated = await self._edit_message(uuid, record, status_line(status, reason, user, now))
        # Only the changed fields: a concurrent post or status edit keeps its own change.
        await self.records.set_status(uuid, status, updated)
        return Outcome(OutcomeKind.CHANGED, f"{status.capitalize()}.")

    async def _edit_message(
        self, uuid: str, record: AlertRecord | None, line: str
    ) -> dict[str, Any] | None:
        """The message with its new status line, as now shown in Slack (None: not edited)."""
        ref = await self.store.message_for_alert(uuid)
        message = record.message if record else None
        if ref is None or message is None:
            return None
        updated = with_status(message, line, trusted=True)
        await self.client.chat_update(
            channel=ref.channel, ts=ref.ts, text=updated.get("text", ""), blocks=updated["blocks"]
        )
        return updated


def status_line(status: str, reason: str | None, user: str, at: datetime) -> str:
    """ "Closed by @user · reason · time" (the user id is Slack's, never alert text)."""
    who = f"<@{user}>" if USER_ID.match(user) else user
    parts = [f"{status.capitalize()} by {who}"]
    if reason:
        parts.append(reason)
    parts.append(at.strftime("%Y-%m-%d %H:%M UTC"))
    return " · ".join(parts)
