"""``whois``: registration data for a domain or IP over RDAP (RFC 9083).

``GET {SECBOT_RDAP_URL}/domain/<name>`` or ``/ip/<address>``; the default ``https://rdap.org``
is a bootstrap service that redirects to the authoritative registry, so redirects are
followed. Domain: registrar (the entity with role ``registrar``, its vCard ``fn``), creation
date (event ``registration``), expiry, status, name servers; a domain registered less than
``young_days`` ago is flagged ``young_domain`` (fresh domains are a phishing staple). IP
network: owner (entity with role ``registrant``, else the network ``name``), handle, range,
country.

A host name that is not itself registered (``www.example.com``) is retried on its parent
domain, up to the last two labels. Non-public IP addresses are answered locally.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from secbot.domain.alert import parse_timestamp
from secbot.enrich.common import InvalidKeyError, NotFoundError, ProviderError, SourceBase
from secbot.enrich.http import RetryPolicy, get_json, join_url
from secbot.enrich.threat_intel import indicator_kind

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def vcard_name(entity: Mapping[str, Any]) -> str | None:
    """The ``fn`` (formatted name) of an RDAP entity's jCard (RFC 7095)."""
    card = entity.get("vcardArray")
    if not isinstance(card, list) or len(card) < 2 or not isinstance(card[1], list):
        return None
    for prop in card[1]:
        if isinstance(prop, list) and len(prop) >= 4 and prop[0] == "fn" and prop[3]:
            return str(prop[3])
    return None


def find_entity(node: Mapping[str, Any], role: str) -> Mapping[str, Any] | None:
    """The first entity (searching nested entities too) that has ``role``."""
    for entity in node.get("entities") or []:
        if not isinstance(entity, Mapping):
            continue
        if role in (entity.get("roles") or []):
            return entity
        nested = find_entity(entity, role)
        if nested is not None:
            return nested
    return None


def event_date(node: Mapping[str, Any], action: str) -> str | None:
    for event in node.get("events") or []:
        if isinstance(event, Mapping) and event.get("eventAction") == action:
            return str(event.get("eventDate")) if event.get("eventDate") else None
    return None


def parse_domain(
    body: Mapping[str, Any], query: str, now: datetime, young_days: int
) -> dict[str, Any]:
    registrar = find_entity(body, "registrar")
    created = event_date(body, "registration")
    created_at = parse_timestamp(created) if created else None
    age_days = (now - created_at).days if created_at else None
    return {
        "query": query,
        "kind": "domain",
        "domain": str(body.get("ldhName") or query).lower(),
        "registrar": vcard_name(registrar) if registrar else None,
        "created": created,
        "expires": event_date(body, "expiration"),
        "age_days": age_days,
        "young_domain": age_days is not None and age_days < young_days,
        "network_owner": None,
        "status": list(body.get("status") or []),
        "nameservers": [
            str(ns.get("ldhName")).lower()
            for ns in body.get("nameservers") or []
            if isinstance(ns, Mapping) and ns.get("ldhName")
        ],
    }


def parse_ip(body: Mapping[str, Any], query: str) -> dict[str, Any]:
    owner_entity = find_entity(body, "registrant") or find_entity(body, "administrative")
    owner = vcard_name(owner_entity) if owner_entity else None
    cidrs = [
        f"{c.get('v4prefix') or c.get('v6prefix')}/{c.get('length')}"
        for c in body.get("cidr0_cidrs") or []
        if isinstance(c, Mapping)
    ]
    return {
        "query": query,
        "kind": "ip",
        "registrar": None,
        "created": event_date(body, "registration"),
        "young_domain": False,
        "network_owner": owner or body.get("name"),
        "network_name": body.get("name"),
        "handle": body.get("handle"),
        "range": f"{body.get('startAddress')} - {body.get('endAddress')}",
        "cidrs": cidrs,
        "country": body.get("country"),
    }


class WhoisEnricher(SourceBase):
    """RDAP lookups for domains and IP addresses."""

    name = "whois"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = "https://rdap.org",
        fields: Iterable[str] = ("url.domain", "dns.question.name", "source.ip"),
        young_days: int = 30,
        policy: RetryPolicy | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self.fields = tuple(fields)
        self._http = http
        self._base = base_url
        self._young_days = young_days
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._headers = {"Accept": "application/rdap+json, application/json"}

    def normalize_key(self, key: str) -> str:
        return key.strip().lower().rstrip(".")

    async def _get(self, path: str, what: str) -> Mapping[str, Any]:
        body = await get_json(
            self._http,
            join_url(self._base, path),
            provider="RDAP",
            what=what,
            policy=self._policy,
            headers=self._headers,
        )
        if not isinstance(body, Mapping):
            raise ProviderError("RDAP: unexpected response shape")
        return body

    async def fetch(self, key: str) -> Mapping[str, Any]:
        kind = indicator_kind(key)
        if kind == "ip":
            if not ipaddress.ip_address(key).is_global:
                return {
                    "query": key,
                    "kind": "ip",
                    "registrar": None,
                    "created": None,
                    "young_domain": False,
                    "network_owner": "non-public address space",
                }
            return parse_ip(await self._get(f"ip/{quote(key)}", f"IP network for {key}"), key)
        if kind != "domain":
            raise InvalidKeyError(f"{key!r} (not a domain or IP address)")
        labels = key.split(".")
        # www.example.com is usually not registered itself: walk up to the registrable part.
        for start in range(0, max(1, len(labels) - 1)):
            name = ".".join(labels[start:])
            try:
                body = await self._get(f"domain/{quote(name)}", f"domain {key!r}")
            except NotFoundError:
                if start >= len(labels) - 2 or start >= 2:
                    raise
                continue
            return parse_domain(body, key, self._clock(), self._young_days)
        raise NotFoundError(f"domain {key!r}")


__all__ = ["WhoisEnricher", "find_entity", "parse_domain", "parse_ip", "vcard_name"]
