"""The triage pipeline: match → dedup → enrich → decide → route → render, one alert at a time.

Each stage is its own module with typed inputs and outputs (:mod:`.match`, :mod:`.dedup`,
:mod:`.enrich`, :mod:`.decide`, :mod:`.route`, :mod:`.render`); this module only runs them in
order and saves the decided alert's record, once. Stages are pure except the store (dedup
claims) and the enrichers. The SIEM status change and the Slack post happen outside, driven by
the returned :class:`Decision`. When anything is uncertain (an enricher failed, an expression
errored) the alert is posted and NOT auto-closed; the message says why.
"""

from __future__ import annotations

from types import MappingProxyType

import structlog

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment
from secbot.enrich.engine import EnrichmentEngine
from secbot.pipeline import decide, dedup, enrich, escalate, match, route
from secbot.pipeline.decision import Decision, alert_record
from secbot.pipeline.related import RelatedAlerts, related_line
from secbot.pipeline.render import safe_render
from secbot.render.blocks import AlertView
from secbot.rules.ruleset import CompiledRule, RuleSet
from secbot.store.base import Store
from secbot.store.records import AlertRecords

log = structlog.stdlib.get_logger(__name__)

# Kept importable from here, where callers found them before the stages were split out.
choose_channel = route.choose_channel
dedup_key = dedup.dedup_key


class Pipeline:
    """Decides what happens to each alert. Holds no per-alert state between calls."""

    def __init__(
        self,
        rules: RuleSet,
        engine: EnrichmentEngine,
        store: Store,
        *,
        default_channel: str | None = None,
        alert_ttl: int = 30 * 86400,
        expression_seconds: float | None = None,
        related: RelatedAlerts | None = None,
        gatekeeper: decide.Gatekeeper | None = None,
    ) -> None:
        self.related = related
        # shadow mode, expiry (its clock) and review demotions (issue 15)
        self.gatekeeper = gatekeeper or decide.Gatekeeper()
        self.rules = rules
        self.matcher = match.Matcher(rules, expression_seconds=expression_seconds)
        self.engine = engine
        self.store = store
        self.records = AlertRecords(store, alert_ttl)
        self.default_channel = default_channel
        self.alert_ttl = alert_ttl

    async def process(self, alert: Alert) -> Decision:
        """Decide ``alert`` and remember it (the only full write of its record)."""
        found = self.matcher.take(alert)
        if found.rule is None:
            decision = self._unmatched(alert, found)
        else:
            decision = await self._matched(found.rule, alert, found)
        await self.records.save_decided(alert_record(alert, decision))
        return decision

    async def _matched(self, rule: CompiledRule, alert: Alert, found: match.Match) -> Decision:
        repeat = await dedup.claim(self.store, rule, alert)
        grouping = dedup.group_key(rule, alert)
        enriched = await enrich.enrich(self.engine, rule, alert, found)
        verdict, where, raised = escalate.decide_route_escalate(rule, enriched.context,
                                                                self.default_channel)
        verdict = decide.hold(verdict, rule, await self.gatekeeper.gate(rule))
        notes = (*where.notes, *verdict.notes, *raised.notes,
                 *((where.missing,) if where.missing else ()),
                 *((grouping.note,) if grouping.note else ()),
                 *((repeat.note,) if repeat.note else ()))
        severity = (raised.escalation and raised.escalation.severity) or (
            rule.rule.severity or alert.severity or "medium")
        view = AlertView(
            alert=alert,
            title=rule.rule.name,
            rule_id=rule.id,
            severity=severity,
            fields=found.fields,
            enrichments=enriched.enrichments,
            runbook=rule.rule.runbook,
            title_template=rule.title,
            body_template=rule.body,
            notes=notes,
            status_line=decide.status_line(verdict, repeat.duplicate_of),
            related=await related_line(self.related, rule, alert, found, repeat.duplicate_of,
                                       grouped=grouping.key is not None, store=self.store,
                                       channel=where.channel),
            escalated=escalate.escalation_line(raised.escalation),
        )
        return Decision(
            alert_uuid=alert.uuid,
            rule_id=rule.id,
            channel=where.channel,
            post=repeat.duplicate_of is None,
            auto_close=verdict.close,
            close_reason=verdict.reason,
            explanation=verdict.explanation,
            severity=severity,
            duplicate_of=repeat.duplicate_of,
            duplicate_count=repeat.count,
            notes=notes,
            fields=found.fields,
            enrichments=enriched.enrichments,
            message=safe_render(view),
            group=grouping.key,
            escalation=raised.escalation,
            shadow=verdict.shadow,
            held=verdict.held,
        )

    def _unmatched(self, alert: Alert, found: match.Match) -> Decision:
        where = route.route(None, None, self.default_channel)
        notes = (where.missing,) if where.missing else ()
        severity = alert.severity or "medium"
        view = AlertView(
            alert=alert,
            title=alert.rule_name or "Unrouted alert",
            rule_id=None,
            severity=severity,
            fields=found.fields,
            enrichments={},
            notes=notes,
            status_line="Open · no SecBot rule matched this alert",
        )
        return Decision(
            alert_uuid=alert.uuid,
            rule_id=None,
            channel=where.channel,
            post=True,
            auto_close=False,
            close_reason=None,
            explanation="no rule matched",
            severity=severity,
            notes=notes,
            fields=found.fields,
            enrichments=MappingProxyType({}),
            message=safe_render(view),
        )


__all__ = ["Decision", "Enrichment", "Pipeline", "choose_channel", "dedup_key", "safe_render"]
