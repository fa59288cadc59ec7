"""The enricher contract (DESIGN.md §2).

An enricher fetches context for an alert. It never raises into the pipeline: failures come
back as ``Enrichment.unavailable(reason)``. Results are plain mappings so that a rule's inline
test can give ``enrichments.<name>`` exactly as the enricher would return it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment


@runtime_checkable
class Enricher(Protocol):
    """Adds context to an alert. ``enrich`` must not raise; it returns ``unavailable``."""

    name: str

    async def enrich(self, alert: Alert) -> Enrichment: ...


@runtime_checkable
class KeyedEnricher(Enricher, Protocol):
    """An enricher that can also look up one key directly (a project id, an email, …).

    Expression functions such as ``getProjectDetails(id)`` call ``lookup``.
    """

    async def lookup(self, key: str) -> Enrichment: ...
