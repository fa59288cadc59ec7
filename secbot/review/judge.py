"""Comparing auto-close decisions with what people do (issue 15).

Two hooks feed :mod:`secbot.review.state`:

* :class:`TrustRecorder`, a hand-off step (:class:`secbot.intake.handoff.AfterPost`): after an
  alert is posted it records a rule's decision — a shadow "would auto-close" or a real
  auto-close (also kept for the daily QA sample) — with the alert's link, and the first time
  a rule's ``auto_close.expires`` has passed it says so in the rule's channel, once across
  replicas and restarts (a Redis claim).
* :class:`TrustJudge`, told by :class:`secbot.triage.status_change.StatusChanger` once a
  person's status change is done and audited: it records whether the person agreed.

What counts (:func:`verdict_of`) — one verdict per alert, a disagreement is final:

* on a shadow decision (the alert stayed open): closed as ``benign_positive``,
  ``false_positive``, ``duplicate``, ``automated_closure`` or a benign older name
  (``expected_activity``, ``acceptable_risk``, ``low_severity``) → **agree**; closed with any
  other reason (``true_positive``, ``other``, a custom one), acknowledged, taken in progress,
  or reopened after a close → **disagree**;
* on a real auto-close: reopened, acknowledged or taken in progress → **disagree**; a ✅ in
  review → agree, a ❌ → disagree (:mod:`secbot.review.reactions`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from secbot.destinations.escalator import kibana_link
from secbot.domain.alert import Alert
from secbot.domain.record import AlertRecord
from secbot.domain.secrets import redact
from secbot.pipeline.decide import Gatekeeper
from secbot.pipeline.decision import Decision
from secbot.render.mrkdwn import escape
from secbot.review.state import Decided, Judgement, TrustState
from secbot.rules.ruleset import CompiledRule, RuleSet
from secbot.store.base import Store
from secbot.store.records import AlertRecords

log = structlog.stdlib.get_logger(__name__)

#: Closing reasons that say "nothing to do here": what the auto-close would have said too.
AGREEING_REASONS = frozenset({
    "benign_positive", "false_positive", "duplicate", "automated_closure",
    "expected_activity", "acceptable_risk", "low_severity",
})
#: A claim that is never given back (an expiry is told once): long enough to outlive it.
TOLD_ONCE = 400 * 86400


def verdict_of(status: str, reason: str | None, *, enforced: bool) -> tuple[bool, str] | None:
    """(agree, why) for a person's change on a decided alert; None when it says nothing.

    ``enforced``: SecBot really closed the alert (else it only said it would, in shadow)."""
    if enforced:
        if status == "closed":
            return None  # closing a reopened auto-close again: the reopen already counted
        return False, "reopened after auto-close" if status == "open" else status
    if status == "closed":
        agree = (reason or "") in AGREEING_REASONS
        return agree, f"closed as {reason or 'no reason'}"
    return False, "reopened" if status == "open" else status


class TrustJudge:
    """Records agreement when a person changes a decided alert (status-change hook)."""

    def __init__(self, state: TrustState, store: Store, *, ttl: int = 30 * 86400,
                 clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.records = AlertRecords(store, ttl)
        self.clock = clock

    async def status_changed(self, uuids: Sequence[str], status: str, reason: str | None,
                             actor: str) -> None:
        for start in range(0, len(uuids), 64):  # bounded: not one connection per alert
            chunk = uuids[start : start + 64]
            records = await asyncio.gather(*(self.records.load(u) for u in chunk))
            for record in records:
                if record is not None:
                    await self._judge(record, status, reason, actor)

    async def _judge(self, record: AlertRecord, status: str, reason: str | None,
                     actor: str) -> None:
        if not record.rule_id or not (record.shadow or record.auto_close):
            return
        found = verdict_of(status, reason, enforced=record.auto_close and not record.shadow)
        if found is None:
            return
        agree, why = found
        await self.state.judged(Judgement(uuid=record.uuid, rule_id=record.rule_id,
                                          agree=agree, why=why, by=actor, at=self.clock()))


class TrustRecorder:
    """The hand-off step recording decisions, and telling a rule's channel it expired."""

    def __init__(self, state: TrustState, store: Store, client: AsyncWebClient, rules: RuleSet,
                 gatekeeper: Gatekeeper, *, kibana_url: str | None = None,
                 kibana_space: str = "default", clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.store = store
        self.client = client
        self.rules = rules
        self.gatekeeper = gatekeeper
        self.kibana_url = kibana_url
        self.kibana_space = kibana_space
        self.clock = clock

    async def after_post(self, alert: Alert, decision: Decision) -> None:
        rule = self.rules.by_id(decision.rule_id) if decision.rule_id else None
        if rule is None or rule.rule.auto_close is None:
            return
        if decision.shadow or decision.auto_close:
            now = self.clock()
            await self.state.decided(Decided(
                uuid=alert.uuid, rule_id=rule.id,
                mode="shadow" if decision.shadow else "enforce", at=now,
                link=await self.link(alert), held=decision.held or ""))
            if decision.auto_close:
                await self.state.auto_closed(rule.id, alert.uuid, now)
        await self._tell_expired(rule, decision)

    async def link(self, alert: Alert) -> str:
        """The alert's Slack permalink, else its Kibana page, else empty."""
        ref = await self.store.message_for_alert(alert.uuid)
        if ref is not None:
            try:
                found = await self.client.chat_getPermalink(channel=ref.channel,
                                                            message_ts=ref.ts)
                if found.get("permalink"):
                    return str(found["permalink"])
            except Exception as exc:  # a link is a convenience: the Kibana one will do
                log.info("no permalink for %s: %s", alert.uuid, type(exc).__name__)
        kibana = kibana_link(self.kibana_url, self.kibana_space, alert)
        return kibana.href if kibana else ""

    async def _tell_expired(self, rule: CompiledRule, decision: Decision) -> None:
        """Once across replicas and restarts: the rule's auto-close has expired."""
        spec = rule.rule.auto_close
        if spec is None or spec.expires is None or self.gatekeeper.today() <= spec.expires:
            return
        channel = decision.channel  # where this alert of the rule went: its people look there
        claim = f"expired:{rule.id}:{spec.expires.isoformat()}"
        if not channel or not await self.state.claim(claim, TOLD_ONCE):
            return
        text = (f"Auto-close of rule *{escape(rule.rule.name)}* (`{escape(rule.id)}`) expired "
                f"on {spec.expires.isoformat()}: SecBot no longer closes its alerts, it only "
                "shows what it would have done (shadow). Extend or remove `auto_close.expires` "
                f"in {escape(rule.path.name)} to let it close again.")
        try:
            await self.client.chat_postMessage(channel=channel, text=text, unfurl_links=False)
        except Exception as exc:  # told with the next alert of this rule instead
            await self.state.release(claim)
            log.warning("expiry of %s not told: %s", rule.id,
                        redact(f"{type(exc).__name__}: {exc}"))
