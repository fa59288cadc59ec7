"""``{escalate: true}`` on an answer (or silence): the rule's escalations, run as if matched.

The first ``escalate`` entry of the rule applies (``by_entry(rule, 0)``, the escalation
room's reading of "as if it matched"): its destinations get an open job in the durable
outbox (idempotent by alert and destination, so a retried outcome pages once), and the
alert is acknowledged by SecBot so the team sees someone is on it. A rule without
``escalate`` entries, or a SecBot without destinations, falls back to
:class:`~secbot.ask.base.ThreadEscalation` (acknowledge and say so).
"""

from __future__ import annotations

from typing import Protocol

from secbot.ask.base import Escalator
from secbot.domain.alert import Alert
from secbot.pipeline.decision import Decision
from secbot.pipeline.escalate import by_entry
from secbot.render import mrkdwn as md
from secbot.rules.ruleset import RuleSet
from secbot.siem.base import Siem


class ByHand(Protocol):
    """:class:`secbot.destinations.escalator.EscalateAfterPost`'s ``escalate_by_hand``."""

    async def escalate_by_hand(self, alert: Alert, decision: Decision) -> list[str]: ...


class RuleEscalation:
    """:class:`Escalator` on the destinations' outbox."""

    def __init__(self, outbox: ByHand, siem: Siem, rules: RuleSet, fallback: Escalator) -> None:
        self.outbox = outbox
        self.siem = siem
        self.rules = rules
        self.fallback = fallback

    async def escalate(self, alert_uuid: str, rule_id: str, why: str) -> str:
        rule = self.rules.by_id(rule_id)
        escalated = by_entry(rule, 0, f"ask: {why}") if rule is not None else None
        alert = (await self.siem.get_many([alert_uuid])).get(alert_uuid)
        if escalated is None or alert is None or not escalated.destinations:
            return await self.fallback.escalate(alert_uuid, rule_id, why)
        decision = Decision(
            alert_uuid=alert_uuid, rule_id=rule_id, channel=escalated.channel, post=False,
            auto_close=False, close_reason=None, explanation=why,
            severity=escalated.severity or alert.severity or "medium", escalation=escalated)
        sent = await self.outbox.escalate_by_hand(alert, decision)
        line = await self.fallback.escalate(alert_uuid, rule_id, why)
        names = ", ".join(md.escape(n) for _, n in escalated.destinations)
        queued = f" · sent to {names}" if sent else f" · already sent to {names}"
        return line + queued
