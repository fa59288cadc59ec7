"""The ask room's seams and the few things every part of it shares.

* :class:`Escalator` — "escalate this alert as if its rule's ``escalate`` entries matched";
  the runtime wires the escalation room's implementation (issue 13), or
  :class:`ThreadEscalation` when none is there.
* :class:`StatusSetter` — a status change on behalf of SecBot (the person asked is rarely a
  triager: their answer is authority enough for what the rule says, and the audit names them).
* :class:`AskContext` — clients and state handed in by the composition root.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from secbot.ask.state import AskRecord, Interactions
from secbot.domain.status import AuditAction, Status
from secbot.rules.ruleset import RuleSet
from secbot.siem.base import Siem
from secbot.store.base import AuditEntry, Store
from secbot.triage.status_change import Outcome

log = structlog.stdlib.get_logger(__name__)

BOT_ACTOR = "secbot"
ASK_KIND = "ask"  # records and claims of this room
ASK_QUEUE = "ask"  # due timeouts (and answers whose outcome has not run yet)


class Escalator(Protocol):
    """Run the rule's escalations for an alert (page, ticket, critical channel)."""

    async def escalate(self, alert_uuid: str, rule_id: str, why: str) -> str:
        """Do it (idempotent by alert uuid); returns a line for the alert's thread."""


class StatusSetter(Protocol):
    """:class:`secbot.triage.status_change.StatusChanger`'s ``change``."""

    async def change(self, uuid: str, status: Status, reason: str | None, user: str
                     ) -> Outcome: ...


@dataclass(frozen=True)
class AskContext:
    """What the ask room needs; built by the composition root."""

    client: AsyncWebClient
    store: Store
    state: Interactions
    siem: Siem
    rules: RuleSet
    status: StatusSetter
    escalator: Escalator
    bot_user_id: str
    record_ttl: int = 30 * 86400
    lease: float = 60.0  # seconds a replica owns a due question before another may take it
    clock: Callable[[], float] = time.time

    async def load(self, uuid: str) -> AskRecord | None:
        return AskRecord.from_json(await self.state.get(ASK_KIND, uuid))

    async def save(self, record: AskRecord) -> None:
        ttl = int(max(0.0, record.due - self.clock())) + self.record_ttl
        await self.state.put(ASK_KIND, record.alert_uuid, record.to_json(), ttl)

    async def audit(self, uuid: str, action: AuditAction, reason: str, rule_id: str, *,
                    actor: str = BOT_ACTOR, once_key: str | None = None,
                    **extra: str) -> None:
        await self.store.append_audit(AuditEntry(
            alert_uuid=uuid, actor=actor, action=action, reason=reason,
            at=datetime.fromtimestamp(self.clock(), UTC), rule_id=rule_id, extra=extra,
        ), once_key=once_key)

    async def say_in_thread(self, uuid: str, text: str) -> bool:
        """A visible reply under the alert's message; False (logged) when there is none or
        Slack refused: the audit still has it."""
        ref = await self.store.message_for_alert(uuid)
        if ref is None:
            log.warning("no message for alert %s; not said in a thread: %s", uuid, text)
            return False
        try:
            await self.client.chat_postMessage(channel=ref.channel, thread_ts=ref.ts, text=text,
                                               unfurl_links=False)
        except Exception:  # the answer still counts; the audit has it
            log.exception("could not reply in the thread of %s", uuid)
            return False
        return True


class ThreadEscalation:
    """The fallback :class:`Escalator` while no escalation room is wired: acknowledge the
    alert (a person looks at it now) and say "escalated: <why>" in its thread. It pages
    nobody; the README says so."""

    def __init__(self, status: StatusSetter, bot_user_id: str) -> None:
        self.status = status
        self.bot_user_id = bot_user_id

    async def escalate(self, alert_uuid: str, rule_id: str, why: str) -> str:
        outcome = await self.status.change(alert_uuid, "acknowledged", None, self.bot_user_id)
        return f":rotating_light: escalated: {why} ({outcome.text.rstrip('.')})"
