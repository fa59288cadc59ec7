"""Running enrichers for one alert: concurrently, each under a timeout, never raising.

Expression functions that need I/O (``getProjectDetails(id)``…) are resolved here too, before
the synchronous evaluation, from the calls the parsed expression will make.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from types import MappingProxyType

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment
from secbot.enrich.base import Enricher, KeyedEnricher
from secbot.expressions import IoCall

ResolvedCalls = Mapping[tuple[str, tuple[object, ...]], Enrichment]
LatencyObserver = Callable[[str, float, bool], None]


class EnrichmentEngine:
    """Runs the enrichers a rule needs. Missing or failing providers become ``unavailable``."""

    def __init__(
        self,
        enrichers: Mapping[str, Enricher],
        *,
        timeout: float = 5.0,
        observe: LatencyObserver | None = None,
    ) -> None:
        self._enrichers = dict(enrichers)
        self._timeout = timeout
        self._observe = observe

    def with_enrichers(self, enrichers: Mapping[str, Enricher]) -> EnrichmentEngine:
        """A copy using ``enrichers`` instead (rule tests swap in fixtures)."""
        return EnrichmentEngine(enrichers, timeout=self._timeout, observe=self._observe)

    async def _guarded(self, name: str, call: Callable[[], Awaitable[Enrichment]]) -> Enrichment:
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(call(), timeout=self._timeout)
        except TimeoutError:
            result = Enrichment.unavailable(name, f"timeout after {self._timeout:g}s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an enricher bug must not lose the alert
            result = Enrichment.unavailable(name, f"{type(exc).__name__}: {exc}")
        if self._observe:
            self._observe(name, time.perf_counter() - started, result.available)
        return result

    async def enrich(self, alert: Alert, names: Iterable[str]) -> dict[str, Enrichment]:
        """Each named enricher's result for ``alert``, run concurrently."""
        wanted = sorted(set(names))
        jobs: list[Awaitable[Enrichment]] = []
        for name in wanted:
            enricher = self._enrichers.get(name)
            if enricher is None:
                jobs.append(_constant(Enrichment.unavailable(name, "not configured")))
            else:
                jobs.append(self._guarded(name, partial(enricher.enrich, alert)))
        results = await asyncio.gather(*jobs)
        return dict(zip(wanted, results, strict=True))

    async def resolve(self, calls: Iterable[IoCall]) -> ResolvedCalls:
        """Results for the I/O calls an expression will make, fetched concurrently."""
        unique = {(c.function, c.args): c for c in calls}
        jobs = [self._lookup(call) for call in unique.values()]
        results = await asyncio.gather(*jobs)
        return MappingProxyType(dict(zip(unique.keys(), results, strict=True)))

    async def lookup(self, enricher: str, key: str) -> Enrichment:
        """One direct lookup (investigation commands: ``whois x``, ``gcp project y``)."""
        return await self._lookup(IoCall(function=enricher, enricher=enricher, args=(key,)))

    def configured(self, name: str) -> bool:
        return name in self._enrichers

    async def _lookup(self, call: IoCall) -> Enrichment:
        enricher = self._enrichers.get(call.enricher)
        if enricher is None:
            return Enrichment.unavailable(call.enricher, "not configured")
        if not isinstance(enricher, KeyedEnricher):
            return Enrichment.unavailable(call.enricher, "provider cannot look up by key")
        if not call.args or any(a is None or a == "" for a in call.args):
            return Enrichment.unavailable(call.enricher, f"{call.function}: no value to look up")
        key = ", ".join(str(a) for a in call.args)
        return await self._guarded(call.enricher, partial(enricher.lookup, key))


async def _constant(value: Enrichment) -> Enrichment:
    return value
