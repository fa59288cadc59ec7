"""Stand-in enrichers for the demo and the bundled backtest, from ``data/demo_enrichments.yaml``."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from secbot.enrich.base import Enricher
from secbot.enrich.fixture import FixtureEnricher

#: Which alert field each keyed stand-in looks up when asked to enrich a whole alert.
ALERT_KEYS = {"gcp_project": "cloud.project.id", "oncall": "user.email", "hr": "user.email"}


def demo_enrichment_data() -> dict[str, dict[str, Any]]:
    text = resources.files("secbot").joinpath("data/demo_enrichments.yaml").read_text("utf-8")
    data: dict[str, dict[str, Any]] = yaml.safe_load(text)
    return data


def demo_enrichers() -> dict[str, Enricher]:
    """Keyed fixture enrichers; enrichers without demo data stay unconfigured (unavailable)."""
    return {
        name: FixtureEnricher(name, table, by_key=True, alert_key=ALERT_KEYS.get(name))
        for name, table in demo_enrichment_data().items()
    }
