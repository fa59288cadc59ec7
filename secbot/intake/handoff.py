"""Handing one alert off: decide, publish, apply the auto-close in the SIEM, mark done.

The order is what keeps alerts safe, even against ``kill -9`` at any point:

1. the post claim is taken first (one owner per alert uuid across replicas); a claim someone
   else holds is retried on a later poll, never skipped: after a ``kill -9`` mid-alert the dead
   process's claim outlives it, and skipping would lose the alert for good;
2. the message is published *before* the SIEM is closed: the poller only reads open alerts,
   so closing first and then dying would leave an alert closed and never shown to anyone;
3. the SIEM close happens only when the expression said so; it is audited once per alert
   just before; if it fails, the published message is corrected to say the alert was left
   open and the audit records that too (nothing is closed by mistake). That includes a SIEM
   that refuses the rule's closing reason (a custom reason Kibana was not configured with):
   the alert stays open, and the person reading the message and the audit learn why;
4. the posted marker is written last, so a crash before it re-delivers the alert; the
   publisher recognises its earlier post (store link or Slack metadata) and does not repeat it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import structlog

from secbot.domain.alert import Alert
from secbot.domain.errors import SecBotError
from secbot.domain.secrets import redact
from secbot.domain.stats import AUTO_CLOSE_TAG
from secbot.domain.status import AUTO_CLOSE_REASON, AuditAction
from secbot.pipeline.decision import Decision
from secbot.pipeline.pipeline import Pipeline
from secbot.publish.base import Publisher
from secbot.siem.base import Siem, SiemError
from secbot.store.base import AuditEntry, Store

BOT_ACTOR = "secbot"
log = structlog.stdlib.get_logger(__name__)


class ClaimBusy(SecBotError):
    """Another attempt holds this alert's post claim: not done, so the poller retries it later.

    Either a live replica is posting it (the retry then finds it marked posted) or a process
    that died mid-alert left its claim behind (it expires after ``claim_ttl``).
    """


class AfterPost(Protocol):
    """A step that follows a published alert (ask the person, propose a response action).

    Called after the post (and any auto-close), before the alert is marked posted, so a
    crash or an exception re-delivers the alert and calls it again: it must be idempotent by
    alert uuid. Raise only for what a retry can heal (Slack or Redis down); anything else is
    said in the alert's thread by the step itself.
    """

    async def after_post(self, alert: Alert, decision: Decision) -> None: ...


class TriageHandler:
    """The poller's handler: one call per new alert, safe to call again for the same alert."""

    def __init__(self, pipeline: Pipeline, siem: Siem, store: Store, publisher: Publisher, *,
                 claim_ttl: int = 60, posted_ttl: int = 30 * 86400,
                 after_post: Sequence[AfterPost] = ()) -> None:
        self.after_post = tuple(after_post)
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
            raise ClaimBusy(f"alert {alert.uuid} is claimed by another attempt; retried later")
        try:
            decision = await self.pipeline.process(alert)
            await self.publisher.publish(alert, decision)
            if decision.auto_close:
                await self._auto_close(alert, decision)
            for step in self.after_post:
                await step.after_post(alert, decision)
        except BaseException:
            await self.store.release_post(alert.uuid)
            raise
        await self.store.mark_posted(alert.uuid, self.posted_ttl)
        return decision

    async def _auto_close(self, alert: Alert, decision: Decision) -> None:
        reason = decision.close_reason or AUTO_CLOSE_REASON
        # Audited before the close, once per alert: a crash after the close would otherwise
        # lose the entry (the closed alert is never read again), and a redelivery would
        # otherwise write it twice.
        await self._audit(alert, decision, AuditAction.CLOSED, reason,
                          once_key=f"auto-close:{alert.uuid}")
        try:
            await self.siem.set_status([alert.id or alert.uuid], "closed", reason=reason,
                                       user=BOT_ACTOR)
        except (SiemError, ValueError) as exc:
            # ValueError: the embedded SIEM refuses a closing reason it does not know, as
            # Kibana does. The note goes to Slack and the audit stream: an error naming a
            # URL may carry userinfo, so it is redacted here, where the text leaves SecBot.
            note = redact(f"auto-close failed, alert left open: {exc}")
            await self._audit(alert, decision, AuditAction.OPEN, note)
            await self.publisher.correct(alert, decision, note)
        else:
            await self._tag_auto_closed(alert)

    async def _tag_auto_closed(self, alert: Alert) -> None:
        """``closed_by:secbot``, best effort: Kibana credits its API key's user, so only the
        tag tells ``secbot stats`` this close was SecBot's. A failure loses a statistic,
        never the close (it landed and is audited), so it is logged, not raised."""
        try:
            await self.siem.add_tags([alert.id or alert.uuid], [AUTO_CLOSE_TAG])
        except Exception as exc:
            log.warning("auto-closed alert %s not tagged %s: %s", alert.uuid, AUTO_CLOSE_TAG,
                        redact(f"{type(exc).__name__}: {exc}"))

    async def _audit(self, alert: Alert, decision: Decision, action: AuditAction, reason: str,
                     once_key: str | None = None) -> None:
        await self.store.append_audit(AuditEntry(
            alert_uuid=alert.uuid, actor=BOT_ACTOR, action=action, reason=reason,
            at=datetime.now(UTC), rule_id=decision.rule_id or "",
            extra={"why": decision.explanation},
        ), once_key=once_key)
