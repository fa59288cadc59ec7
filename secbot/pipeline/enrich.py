"""Stage 3, enrich: the rule's enrichers, then the I/O lookups its expressions call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment
from secbot.enrich.engine import EnrichmentEngine
from secbot.expressions import EvalContext
from secbot.pipeline.match import Match
from secbot.rules.ruleset import CompiledRule


@dataclass(frozen=True)
class Enriched:
    """What the expressions see (``context``) and every enrichment the message shows,
    available or not (an unavailable one is shown with its reason)."""

    context: EvalContext
    enrichments: Mapping[str, Enrichment]


async def enrich(
    engine: EnrichmentEngine, rule: CompiledRule, alert: Alert, found: Match
) -> Enriched:
    """Run ``enrich:`` enrichers, then resolve the lookups (``ti(...)``, …) the expressions
    other than ``match.when`` would make, so evaluation itself never does I/O. Every
    evaluation draws on the budget the match started (one budget per alert)."""
    enrichments = await engine.enrich(alert, rule.rule.enrich)
    ctx = EvalContext(
        included_fields=found.fields,
        alert=alert.frozen,
        enrichments=MappingProxyType({n: e.data for n, e in enrichments.items() if e.available}),
        budget=found.budget,
    )
    calls = [
        call
        for expr in rule.expressions
        if expr is not rule.match_when
        for call in expr.io_calls(ctx)
    ]
    ctx = replace(ctx, resolved=await engine.resolve(calls))
    for result in ctx.resolved.values():
        enrichments.setdefault(result.name, result)
    return Enriched(context=ctx, enrichments=MappingProxyType(enrichments))
