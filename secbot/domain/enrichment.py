"""One enricher's result: the record that crosses from the enrichers into the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from secbot.domain.alert import freeze


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
