"""Stand-in enrichers for the demo and the bundled backtest, from ``data/demo_enrichments.yaml``.

Every built-in enricher has demo data, so every thread command answers in the demo. A table
is keyed by what the provider looks up; besides exact keys it may hold CIDR ranges (an IP
inside one gets that entry, as a network lookup would) and a ``"*"`` entry for anything else
(threat intel's "no provider has seen it"). Entries are returned with their lookup key filled
in (``indicator`` / ``query``), as the real providers do.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment
from secbot.enrich.base import Enricher
from secbot.enrich.common import first_value

#: Which alert fields each stand-in looks up, in order, when asked to enrich a whole alert
#: (the real enrichers' defaults, docs/enrichers.md).
ALERT_KEYS: Mapping[str, tuple[str, ...]] = {
    "gcp_project": ("cloud.project.id",),
    "gcp_service_account": ("gcp.audit.resource_name", "user.email"),
    "oncall": ("user.email",),
    "hr": ("user.email",),
    "jit_permissions": ("user.email",),
    "threat_intel": (
        "source.ip",
        "destination.ip",
        "url.domain",
        "dns.question.name",
        "file.hash.sha256",
    ),
    "whois": ("url.domain", "dns.question.name", "destination.domain", "source.ip"),
}
#: The field of a result that names what was looked up.
KEY_FIELD: Mapping[str, str] = {"threat_intel": "indicator", "whois": "query"}
WILDCARD = "*"
#: Keys whose answers each stand-in remembers before starting over.
MEMO_MAX = 4096
#: IPv4 or IPv6 characters only (a superset: ip_address() still decides).
_MAY_BE_ADDRESS = re.compile(r"[0-9A-Fa-f.:]+(%\w+)?")


def demo_enrichment_data() -> dict[str, dict[str, Any]]:
    text = resources.files("secbot").joinpath("data/demo_enrichments.yaml").read_text("utf-8")
    data: dict[str, dict[str, Any]] = yaml.safe_load(text)
    return data


def _networks(table: Mapping[str, Any]) -> list[tuple[Any, Mapping[str, Any]]]:
    out = []
    for key, entry in table.items():
        if "/" in key and isinstance(entry, Mapping):
            out.append((ipaddress.ip_network(key), entry))
    return out


class DemoEnricher:
    """A keyed stand-in: exact key, then containing CIDR range, then ``"*"``; else not found.

    Answers are remembered per key (up to :data:`MEMO_MAX` keys): the table never changes and an
    :class:`Enrichment` is immutable, so a repeated key costs one dict lookup, as a real
    enricher's cache hit does — the stand-ins stay "instant" in the pipeline benchmark.
    """

    def __init__(self, name: str, table: Mapping[str, Any], fields: tuple[str, ...]) -> None:
        self.name = name
        self.fields = fields
        self._table = table
        self._networks = _networks(table)
        self._memo: dict[str, Enrichment] = {}

    def _find(self, key: str) -> Mapping[str, Any] | None:
        found = self._table.get(key)
        if isinstance(found, Mapping):
            return found
        # Only something shaped like an address is parsed: a failed ip_address() (an email, a
        # hash) raises, and exceptions are the slow path.
        if self._networks and _MAY_BE_ADDRESS.fullmatch(key):
            try:
                address = ipaddress.ip_address(key)
            except ValueError:
                address = None
            if address is not None:
                for network, entry in self._networks:
                    if address in network:
                        return entry
        default = self._table.get(WILDCARD)
        return default if isinstance(default, Mapping) else None

    async def enrich(self, alert: Alert) -> Enrichment:
        key = first_value(alert, self.fields)
        if key is None:
            return Enrichment.unavailable(
                self.name, f"alert has no value to look up ({', '.join(self.fields)})"
            )
        return await self.lookup(key)

    async def lookup(self, key: str) -> Enrichment:
        answer = self._memo.get(key)
        if answer is None:
            if len(self._memo) >= MEMO_MAX:
                self._memo.clear()  # the demo runs for hours on random addresses: stay bounded
            answer = self._memo[key] = self._answer(key)
        return answer

    def _answer(self, key: str) -> Enrichment:
        # IAM audit logs name a service account by resource path; IAM looks up the email.
        key = key.rsplit("/serviceAccounts/", 1)[-1]
        found = self._find(key)
        if found is None:
            return Enrichment.unavailable(self.name, f"{key!r} not found")
        named = KEY_FIELD.get(self.name)
        return Enrichment.ok(self.name, {**found, named: key} if named else found)


def demo_enrichers() -> dict[str, Enricher]:
    """One stand-in per enricher in the demo data; any other stays unconfigured (unavailable)."""
    return {
        name: DemoEnricher(name, table, ALERT_KEYS.get(name, ()))
        for name, table in demo_enrichment_data().items()
    }
