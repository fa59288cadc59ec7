"""Handing one alert off: decide, apply the auto-close in the SIEM, publish, mark done.

The order is what keeps alerts safe: the post claim is taken first (one message per uuid),
the SIEM is closed only when the expression said so and the close call succeeded (a failed
close is published as *open* with the error), and the posted marker is written last, so a crash
anywhere before it re-delivers the alert instead of losing it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from secbot.alert import Alert
from secbot.pipeline.decision import Decision
from secbot.pipeline.pipeline import Pipeline
from secbot.siem.base import Siem, SiemError
from secbot.store.base import AuditEntry, Store

BOT_ACTOR = "secbot"


class Publisher(Protocol):
    """Where decided alerts go (Slack in production, the console in the demo)."""

    async def publish(self, alert: Alert, decision: Decision) -> None:
        """Post (or thread, for duplicates) the alert. Raise to have it retried later."""


class TriageHandler:
    """The poller's handler: one call per new alert, safe to call again for the same alert."""

    def __init__(
        self,
        pipeline: Pipeline,
        siem: Siem,
        store: Store,
        publisher: Publisher,
        *,
        claim_ttl: int = 600,
        posted_ttl: int = 30 * 86400,
    ) -> None:
        self.pipeline = pipeline
        self.siem = siem
        self.store = store
        self.publisher = publisher
        self.claim_ttl = claim_ttl
        self.posted_ttl = posted_ttl

    async def __call__(self, alert: Alert) -> Decision | None:
        if await self.store.is_posted(alert.uuid):
            return None
        if not await self.store.claim_post(alert.uuid, self.claim_ttl):
            return None  # another replica (or an earlier attempt still in flight) owns it
        try:
            decision = await self.pipeline.process(alert)
            if decision.auto_close:
                decision = await self._auto_close(alert, decision)
            try:
                await self.publisher.publish(alert, decision)
            except BaseException:
                if decision.auto_close:
                    await self._reopen_unposted(alert)
                raise
        except BaseException:
            await self.store.release_post(alert.uuid)
            raise
        await self.store.mark_posted(alert.uuid, self.posted_ttl)
        return decision

    async def _reopen_unposted(self, alert: Alert) -> None:
        """The alert was closed but its message could not be posted: reopen it so the next
        poll (which reads open alerts only) delivers it again instead of losing it."""
        try:
            await self.siem.set_status(
                [alert.id or alert.uuid], "open", reason=None, user=BOT_ACTOR
            )
        except SiemError:
            return  # the poll overlap cannot see it now; the audit entry still records the close
        await self.store.append_audit(
            AuditEntry(
                alert_uuid=alert.uuid,
                actor=BOT_ACTOR,
                action="open",
                reason="post_failed",
                at=datetime.now(UTC),
            )
        )

    async def _auto_close(self, alert: Alert, decision: Decision) -> Decision:
        reason = decision.close_reason or "expected_activity"
        try:
            await self.siem.set_status(
                [alert.id or alert.uuid], "closed", reason=reason, user=BOT_ACTOR
            )
        except SiemError as exc:
            note = f"auto-close failed, alert left open: {exc}"
            return replace(
                decision,
                auto_close=False,
                close_reason=None,
                explanation=note,
                notes=(*decision.notes, note),
            )
        await self.store.append_audit(
            AuditEntry(
                alert_uuid=alert.uuid,
                actor=BOT_ACTOR,
                action="closed",
                reason=reason,
                at=datetime.now(UTC),
                rule_id=decision.rule_id or "",
                extra={"why": decision.explanation},
            )
        )
        return decision
