"""The enricher contract (DESIGN.md §2).

An enricher fetches context for an alert. It never raises into the pipeline: failures come
back as ``Enrichment.unavailable(reason)``. Results are plain mappings so that a rule's inline
test can give ``enrichments.<name>`` exactly as the enricher would return it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from secbot.alert import Alert, freeze


@dataclass(frozen=True)
class Enrichment:
    """One enricher's result for one alert or key: data, or why there is none."""

    name: str
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.error is None

    @classmethod
    def ok(cls, name: str, data: Mapping[str, Any]) -> Enrichment:
        return cls(name=name, data=freeze(data))

    @classmethod
    def unavailable(cls, name: str, reason: str) -> Enrichment:
        return cls(name=name, error=reason or "unavailable")


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
