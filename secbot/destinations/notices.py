"""What people see of the outbox's work: the message says where the alert went, the thread
says when a destination refused it, and the audit records both (DESIGN.md §12).

:class:`SlackNotices` is the outbox's :class:`~secbot.destinations.jobs.OutcomeSink`:

- an open that succeeded adds or replaces one context block on the alert's message,
  ``🚨 paged · Jira SEC-123 · sent to xsoar``, each with its link when it has one (built from
  every receipt the alert has, read again under a lock so two destinations finishing together
  do not hide each other); the record's copy of the message is updated too, so a later status
  edit keeps the line. An alert shown on a group's message gets a thread line instead;
- a job that failed for good posts one thread line ("PagerDuty refused the page: HTTP 400 …");
- each outcome is audited once (``once_key`` by job: the outbox may report it again after a
  crash).

It never raises: the destination call happened, and the outbox must go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from secbot.destinations.base import Receipt
from secbot.destinations.jobs import JobOutcome
from secbot.domain.record import RecordUpdate
from secbot.domain.secrets import redact
from secbot.domain.status import AuditAction
from secbot.render import mrkdwn as md
from secbot.store.base import AuditEntry, Store

log = structlog.stdlib.get_logger(__name__)

DESTINATIONS_BLOCK_ID = "secbot_destinations"
BOT_ACTOR = "secbot"
Receipts = Callable[[str], Awaitable[Mapping[str, Receipt]]]


def destinations_line(receipts: Mapping[str, Receipt]) -> str:
    """``🚨 paged · <url|Jira SEC-123> · sent to xsoar`` (receipt text escaped; pages first)."""
    ordered = sorted(receipts.values(), key=lambda r: (not r.text.startswith("🚨"), r.destination))
    parts = []
    for receipt in ordered:
        text = md.escape(receipt.text)
        url = receipt.url
        parts.append(f"<{url}|{text}>" if url and url.startswith(("https://", "http://"))
                     and "|" not in url and ">" not in url else text)
    return " · ".join(parts)


def with_destinations(message: Mapping[str, Any], line: str) -> dict[str, Any]:
    """``message`` with its destinations block replaced (or appended)."""
    block = {"type": "context", "block_id": DESTINATIONS_BLOCK_ID,
             "elements": [{"type": "mrkdwn", "text": line}]}
    blocks = [dict(b) for b in message.get("blocks", []) if b.get("block_id")
              != DESTINATIONS_BLOCK_ID]
    return {**message, "blocks": [*blocks, block]}


class SlackNotices:
    """The outbox outcome sink of the service."""

    def __init__(self, client: AsyncWebClient, store: Store, receipts: Receipts, *,
                 ttl: int = 30 * 86400) -> None:
        self.client = client
        self.store = store
        self.receipts = receipts
        self.ttl = ttl
        self._edit = asyncio.Lock()

    async def __call__(self, outcome: JobOutcome) -> None:
        for step in (self._audit, self._tell):
            try:
                await step(outcome)
            except Exception as exc:
                log.warning("destination outcome for %s not fully shown: %s", outcome.job.key,
                            redact(f"{type(exc).__name__}: {exc}"))

    async def _audit(self, outcome: JobOutcome) -> None:
        job = outcome.job
        extra = {"destination": job.destination, "job": job.action}
        if outcome.receipt is not None:
            extra["reference"] = outcome.receipt.reference
            if outcome.receipt.url:
                extra["url"] = outcome.receipt.url
        if job.update is not None:
            extra["status"] = job.update.status
        if not outcome.ok:
            action, reason = AuditAction.ESCALATION_FAILED, outcome.error or "failed"
        elif job.action == "open":
            action, reason = AuditAction.ESCALATED, outcome.receipt.text if outcome.receipt else ""
        else:
            action = AuditAction.DESTINATION_UPDATED
            reason = job.update.status if job.update else ""
        rule = job.request.rule_id if job.request is not None else ""
        if job.request is not None and job.request.why:
            extra["why"] = job.request.why
        await self.store.append_audit(AuditEntry(
            alert_uuid=job.alert_uuid, actor=BOT_ACTOR, action=action, reason=reason,
            at=datetime.now(UTC), rule_id=rule, extra=extra,
        ), once_key=f"destination:{job.key}:{job.created}")

    async def _tell(self, outcome: JobOutcome) -> None:
        if not outcome.ok:
            await self._thread(outcome.job.alert_uuid, outcome.error or "failed")
        elif outcome.job.action == "open":
            async with self._edit:
                await self._show(outcome.job.alert_uuid)

    async def _show(self, uuid: str) -> None:
        receipts = await self.receipts(uuid)
        if not receipts:
            return
        line = destinations_line(receipts)
        ref = await self.store.message_for_alert(uuid)
        record = await self.store.load_record(uuid)
        message = record.message if record is not None else None
        owner = await self.store.alert_for_message(ref.channel, ref.ts) if ref else None
        if ref is None:
            return
        if message is None or (owner is not None and owner != uuid):
            await self._thread(uuid, line, escape=False)  # a group's message: say it there
            return
        updated = with_destinations(message, line)
        await self.client.chat_update(channel=ref.channel, ts=ref.ts,
                                      text=str(updated.get("text", "")), blocks=updated["blocks"])
        await self.store.update_record(uuid, RecordUpdate(message=updated), self.ttl)

    async def _thread(self, uuid: str, text: str, *, escape: bool = True) -> None:
        ref = await self.store.message_for_alert(uuid)
        if ref is None:
            log.warning("alert %s has no message to say this on: %s", uuid, redact(text))
            return
        body = md.escape(redact(text)) if escape else text
        await self.client.chat_postMessage(channel=ref.channel, thread_ts=ref.ts,
                                           text=f"Alert {md.escape(uuid)}: {body}",
                                           unfurl_links=False)


__all__ = ["DESTINATIONS_BLOCK_ID", "SlackNotices", "destinations_line", "with_destinations"]
