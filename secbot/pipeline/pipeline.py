"""The triage pipeline: match → dedup → enrich → decide → route → render, one alert at a time.

Steps are pure except the store (dedup claims, field cache) and the enrichers. The SIEM status
change and the Slack post happen outside, driven by the returned :class:`Decision`.
When anything is uncertain (an enricher failed, an expression errored) the alert is posted and
NOT auto-closed; the message says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from secbot.domain.alert import Alert, thaw
from secbot.domain.enrichment import Enrichment
from secbot.enrich.engine import EnrichmentEngine
from secbot.expressions import EvalContext, Verdict
from secbot.pipeline.decision import Decision, alert_record
from secbot.render import mrkdwn as md
from secbot.render.blocks import AlertView, render_message, status_block
from secbot.rules.ruleset import CompiledRule, RuleSet
from secbot.store.base import DedupResult, Store

log = logging.getLogger(__name__)

UNMATCHED_FIELDS = ("host.name", "user.name", "user.email", "source.ip", "kibana.alert.reason")


def dedup_key(rule: CompiledRule, alert: Alert) -> str | None:
    """Rule id + a hash of the key fields' values; None if any key field is missing."""
    assert rule.rule.dedup is not None
    values = [thaw(alert.get_field(name)) for name in rule.rule.dedup.key]
    if any(v is None for v in values):
        return None
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return f"{rule.id}:{digest[:32]}"


def choose_channel(
    rule: CompiledRule, ctx: EvalContext, default: str | None
) -> tuple[str | None, list[str]]:
    """First ``route.when`` that is true, else the rule's channel, else the default."""
    notes: list[str] = []
    for choice in rule.routes:
        verdict = choice.expression.decide(ctx)
        if verdict.error:
            notes.append(f"route.when {choice.expression.source!r} skipped: {verdict.error}")
        elif verdict.value:
            return choice.channel, notes
    route = rule.rule.route
    return (route.channel if route and route.channel else default), notes


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
    ) -> None:
        self.rules = rules
        self.engine = engine
        self.store = store
        self.default_channel = default_channel
        self.alert_ttl = alert_ttl

    async def process(self, alert: Alert) -> Decision:
        rule = self.rules.match(alert)
        decision = await (self._unmatched(alert) if rule is None else self._matched(rule, alert))
        await self.store.save_alert(alert.uuid, alert_record(alert, decision), self.alert_ttl)
        return decision

    async def _claim_dedup(self, rule: CompiledRule, alert: Alert) -> DedupResult | None:
        if rule.rule.dedup is None:
            return None
        key = dedup_key(rule, alert)
        if key is None:
            return None
        return await self.store.claim_dedup(key, alert.uuid, rule.rule.dedup.window)

    async def _matched(self, rule: CompiledRule, alert: Alert) -> Decision:
        dedup = await self._claim_dedup(rule, alert)
        duplicate_of = dedup.first_uuid if dedup and dedup.first_uuid != alert.uuid else None
        fields = rule.included_fields(alert)
        enrichments = await self.engine.enrich(alert, rule.rule.enrich)
        ctx = EvalContext(
            included_fields=fields,
            alert=alert.frozen,
            enrichments=MappingProxyType(
                {n: e.data for n, e in enrichments.items() if e.available}
            ),
        )
        calls = [
            c
            for expr in rule.expressions
            if expr is not rule.match_when
            for c in expr.io_calls(ctx)
        ]
        ctx = replace(ctx, resolved=await self.engine.resolve(calls))
        for (_, _), result in ctx.resolved.items():
            enrichments.setdefault(result.name, result)
        verdict = rule.auto_close.decide(ctx) if rule.auto_close else None
        channel, notes = choose_channel(rule, ctx, self.default_channel)
        auto_close = bool(verdict and verdict.value)
        reason = rule.rule.auto_close.reason if auto_close and rule.rule.auto_close else None
        explanation = _explain(verdict, reason)
        notes = [
            *notes,
            *(() if not verdict or not verdict.error else [f"not auto-closed: {verdict.error}"]),
        ]
        if channel is None:
            notes.append("no channel: the rule has no route and SECBOT_DEFAULT_CHANNEL is unset")
        severity = rule.rule.severity or alert.severity or "medium"
        view = AlertView(
            alert=alert,
            title=rule.rule.name,
            rule_id=rule.id,
            severity=severity,
            fields=fields,
            enrichments=enrichments,
            runbook=rule.rule.runbook,
            title_template=rule.title,
            body_template=rule.body,
            notes=tuple(notes),
            status_line=_status_line(auto_close, reason, explanation, duplicate_of),
        )
        return Decision(
            alert_uuid=alert.uuid,
            rule_id=rule.id,
            channel=channel,
            post=duplicate_of is None,
            auto_close=auto_close,
            close_reason=reason,
            explanation=explanation,
            severity=severity,
            duplicate_of=duplicate_of,
            duplicate_count=dedup.count if dedup else 1,
            notes=tuple(notes),
            fields=fields,
            enrichments=MappingProxyType(enrichments),
            message=safe_render(view),
        )

    async def _unmatched(self, alert: Alert) -> Decision:
        fields = MappingProxyType(
            {name: alert.get_field(name) for name in UNMATCHED_FIELDS if alert.has_field(name)}
        )
        notes = (
            ()
            if self.default_channel
            else ("no channel: no rule matched and SECBOT_DEFAULT_CHANNEL is unset",)
        )
        severity = alert.severity or "medium"
        view = AlertView(
            alert=alert,
            title=alert.rule_name or "Unrouted alert",
            rule_id=None,
            severity=severity,
            fields=fields,
            enrichments={},
            notes=notes,
            status_line="Open · no SecBot rule matched this alert",
        )
        return Decision(
            alert_uuid=alert.uuid,
            rule_id=None,
            channel=self.default_channel,
            post=True,
            auto_close=False,
            close_reason=None,
            explanation="no rule matched",
            severity=severity,
            notes=notes,
            fields=fields,
            message=safe_render(view),
        )


def safe_render(view: AlertView) -> dict[str, Any]:
    """The message for ``view``; never raises.

    Rendering is pure, so an exception here would recur on every retry and block the poller
    on this alert forever. Instead: the message without the parts built from alert data
    (fields, enrichments, templates), and if even that fails, a fixed message with the uuid.
    """
    try:
        return render_message(view)
    except Exception as exc:
        log.exception("rendering alert %r failed; sending a reduced message", view.alert.id)
        note = f"message shown in reduced form: rendering failed ({type(exc).__name__})"
    reduced = replace(
        view,
        fields={},
        enrichments={},
        title_template=None,
        body_template=None,
        notes=(*view.notes, note),
    )
    try:
        return render_message(reduced)
    except Exception:
        log.exception("reduced rendering of alert %r failed too", view.alert.id)
    text = md.truncate(
        md.escape(
            f"{view.title}: SecBot could not render alert {view.alert.id}; see the SIEM. {note}"
        ),
        md.SECTION_TEXT_MAX,
    )
    return {
        "text": md.truncate(text, md.MESSAGE_TEXT_MAX),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}},
            status_block(view.status_line),
        ],
    }


def _explain(verdict: Verdict | None, reason: str | None) -> str:
    if verdict is None:
        return "rule has no auto_close"
    if verdict.error:
        return f"auto_close not applied: {verdict.error}"
    return (
        f"auto_close expression true → {reason}" if verdict.value else "auto_close expression false"
    )


def _status_line(
    auto_close: bool, reason: str | None, explanation: str, duplicate_of: str | None
) -> str:
    if auto_close:
        return f"Auto-closed by SecBot · reason {reason} · {explanation}"
    if duplicate_of:
        return f"Open · duplicate of {duplicate_of} · {explanation}"
    return f"Open · {explanation}"


__all__ = ["Decision", "Enrichment", "Pipeline", "choose_channel", "dedup_key"]
