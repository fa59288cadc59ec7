"""One enricher's result: the record that crosses from the enrichers into the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from secbot.domain.alert import freeze


class EnrichmentFailure(Enum):
    """Why an enrichment is unavailable. Only ``NOT_FOUND`` is an answer (the provider said the
    thing does not exist: cached briefly, never trips a breaker); the rest are failures."""

    NOT_FOUND = "not_found"
    NOT_CONFIGURED = "not_configured"
    TIMEOUT = "timeout"
    CIRCUIT_OPEN = "circuit_open"
    ERROR = "error"


@dataclass(frozen=True)
class Enrichment:
    """One enricher's result for one alert or key: data, or why there is none.

    ``error`` is the human reason shown in Slack; ``failure`` is its kind, for code to branch
    on (never parse ``error``).
    """

    name: str
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    error: str | None = None
    failure: EnrichmentFailure | None = None

    def __post_init__(self) -> None:
        if self.error is not None and self.failure is None:
            object.__setattr__(self, "failure", failure_of(self.error))

    @property
    def available(self) -> bool:
        return self.error is None

    @property
    def not_found(self) -> bool:
        """The provider answered that the looked-up thing does not exist."""
        return self.failure is EnrichmentFailure.NOT_FOUND

    @classmethod
    def ok(cls, name: str, data: Mapping[str, Any]) -> Enrichment:
        return cls(name=name, data=freeze(data))

    @classmethod
    def unavailable(
        cls, name: str, reason: str, failure: EnrichmentFailure | None = None
    ) -> Enrichment:
        """No data, with the human ``reason``; ``failure`` defaults to what the reason says."""
        return cls(name=name, error=reason or "unavailable", failure=failure)

    @classmethod
    def missing(cls, name: str, what: str) -> Enrichment:
        """The provider's definite "no such thing" (``"<what> not found"``)."""
        return cls.unavailable(name, f"{what} not found", EnrichmentFailure.NOT_FOUND)


def failure_of(reason: str) -> EnrichmentFailure:
    """The kind of a reason given without one: the wording every producer in this package
    uses (``… not found``, ``not configured``, ``timeout …``, ``circuit open …``). Producers
    should pass the kind; this keeps results rebuilt from text (the shared cache) typed."""
    text = reason.strip().lower()
    if text.endswith("not found"):
        return EnrichmentFailure.NOT_FOUND
    if text == "not configured":
        return EnrichmentFailure.NOT_CONFIGURED
    if text.startswith("circuit open"):
        return EnrichmentFailure.CIRCUIT_OPEN
    if text.startswith("timeout") or text.endswith("timed out"):
        return EnrichmentFailure.TIMEOUT
    return EnrichmentFailure.ERROR
