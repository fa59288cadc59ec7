"""An enricher that returns given data: rule tests, backtests and the demo use it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment


class FixtureEnricher:
    """Returns ``data`` for every alert and every key (a rule test's ``enrichments.<name>``).

    ``data`` may also be keyed by lookup key when ``by_key`` is True, e.g. for the demo:
    ``{"prod-payments": {...project...}}``; an unknown key is then unavailable ("not found").
    """

    def __init__(
        self,
        name: str,
        data: Mapping[str, Any],
        *,
        by_key: bool = False,
        alert_key: str | None = None,
    ) -> None:
        self.name = name
        self._data = data
        self._by_key = by_key
        self._alert_key = alert_key

    async def enrich(self, alert: Alert) -> Enrichment:
        if not self._by_key:
            return Enrichment.ok(self.name, self._data)
        key = alert.get_field(self._alert_key) if self._alert_key else None
        if key is None:
            return Enrichment.unavailable(self.name, "alert has no value to look up")
        return await self.lookup(str(key))

    async def lookup(self, key: str) -> Enrichment:
        if not self._by_key:
            return Enrichment.ok(self.name, self._data)
        found = self._data.get(key)
        if not isinstance(found, Mapping):
            return Enrichment.unavailable(self.name, f"{key!r} not found")
        return Enrichment.ok(self.name, found)
