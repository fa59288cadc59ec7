"""``threat_intel``: one verdict for an IP, domain or file hash, merged from several providers.

Providers (each enabled by its key; each base URL overridable):

* AbuseIPDB v2 — ``GET /api/v2/check?ipAddress=&maxAgeInDays=90``, header ``Key``:
  ``{data: {abuseConfidenceScore, totalReports, isWhitelisted, countryCode, isp, usageType,
  lastReportedAt}}``. Score ≥ 75 malicious, ≥ 25 suspicious; whitelisted benign.
* GreyNoise Community — ``GET /v3/community/{ip}``, header ``key``: ``{ip, noise, riot,
  classification, name, link, last_seen}``; 404 means "not observed" (an answer: unknown).
* VirusTotal v3 — ``GET /api/v3/{ip_addresses|domains|files}/{id}``, header ``x-apikey``:
  ``{data: {attributes: {last_analysis_stats: {malicious, suspicious, harmless, …},
  reputation}}}``; 404 means "unknown to VirusTotal".

Providers run concurrently, each with its own timeout and circuit breaker, so one dead
provider neither slows nor blanks the others. The merged verdict is the worst one reported
(malicious > suspicious > benign > unknown); ``sources`` lists every provider, failures
included. Only when every provider failed is the enrichment unavailable. Private, loopback and
other non-public addresses are never sent to third parties.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

import httpx

from secbot.enrich.breaker import CircuitBreaker
from secbot.enrich.common import InvalidKeyError, NotFoundError, ProviderError, SourceBase
from secbot.enrich.http import RetryPolicy, get_json, join_url

VERDICT_RANK = {"unknown": 0, "benign": 1, "suspicious": 2, "malicious": 3}
_HASH = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def indicator_kind(value: str) -> str | None:
    """``ip``, ``hash``, ``domain`` or None."""
    try:
        ipaddress.ip_address(value)
        return "ip"
    except ValueError:
        pass
    if _HASH.match(value):
        return "hash"
    return "domain" if _DOMAIN.match(value) else None


class Provider(Protocol):
    """One threat-intel source: ``check`` returns ``{verdict, details}``."""

    name: str
    kinds: frozenset[str]

    async def check(self, http: httpx.AsyncClient, indicator: str, kind: str) -> dict[str, Any]: ...


class AbuseIpDb:
    """AbuseIPDB v2 ``check``."""

    name = "abuseipdb"
    kinds = frozenset({"ip"})

    def __init__(self, base_url: str, key: str, *, policy: RetryPolicy | None = None) -> None:
        self._base = base_url
        self._headers = {"Key": key, "Accept": "application/json"}
        self._policy = policy or RetryPolicy()

    async def check(self, http: httpx.AsyncClient, indicator: str, kind: str) -> dict[str, Any]:
        body = await get_json(
            http,
            join_url(self._base, "api/v2/check"),
            provider="AbuseIPDB",
            what=indicator,
            policy=self._policy,
            headers=self._headers,
            params={"ipAddress": indicator, "maxAgeInDays": 90},
        )
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, Mapping):
            raise ProviderError("AbuseIPDB: unexpected response shape")
        score = int(data.get("abuseConfidenceScore") or 0)
        if data.get("isWhitelisted"):
            verdict = "benign"
        else:
            verdict = "malicious" if score >= 75 else "suspicious" if score >= 25 else "unknown"
        details = {
            "score": score,
            "total_reports": data.get("totalReports"),
            "country": data.get("countryCode"),
            "isp": data.get("isp"),
            "usage_type": data.get("usageType"),
            "last_reported_at": data.get("lastReportedAt"),
        }
        return {"verdict": verdict, "details": details}


class GreyNoiseCommunity:
    """GreyNoise Community API v3."""

    name = "greynoise"
    kinds = frozenset({"ip"})

    def __init__(
        self, base_url: str, key: str | None = None, *, policy: RetryPolicy | None = None
    ) -> None:
        self._base = base_url
        self._headers = {"Accept": "application/json", **({"key": key} if key else {})}
        self._policy = policy or RetryPolicy()

    async def check(self, http: httpx.AsyncClient, indicator: str, kind: str) -> dict[str, Any]:
        try:
            body = await get_json(
                http,
                join_url(self._base, f"v3/community/{quote(indicator)}"),
                provider="GreyNoise",
                what=indicator,
                policy=self._policy,
                headers=self._headers,
            )
        except NotFoundError:
            return {"verdict": "unknown", "details": {"observed": False}}
        if not isinstance(body, Mapping):
            raise ProviderError("GreyNoise: unexpected response shape")
        classification = str(body.get("classification") or "unknown")
        if classification == "malicious":
            verdict = "malicious"
        elif classification == "benign" or body.get("riot"):
            verdict = "benign"
        else:
            verdict = "suspicious" if body.get("noise") else "unknown"
        keys = ("noise", "riot", "classification", "name", "last_seen", "link")
        return {"verdict": verdict, "details": {k: body.get(k) for k in keys}}


class VirusTotal:
    """VirusTotal API v3 object reports."""

    name = "virustotal"
    kinds = frozenset({"ip", "domain", "hash"})
    _PATHS: ClassVar[dict[str, str]] = {"ip": "ip_addresses", "domain": "domains", "hash": "files"}

    def __init__(self, base_url: str, key: str, *, policy: RetryPolicy | None = None) -> None:
        self._base = base_url
        self._headers = {"x-apikey": key, "Accept": "application/json"}
        self._policy = policy or RetryPolicy()

    async def check(self, http: httpx.AsyncClient, indicator: str, kind: str) -> dict[str, Any]:
        path = f"api/v3/{self._PATHS[kind]}/{quote(indicator)}"
        try:
            body = await get_json(
                http,
                join_url(self._base, path),
                provider="VirusTotal",
                what=indicator,
                policy=self._policy,
                headers=self._headers,
            )
        except NotFoundError:
            return {"verdict": "unknown", "details": {"known": False}}
        attributes = (
            (body.get("data") or {}).get("attributes") if isinstance(body, Mapping) else None
        )
        if not isinstance(attributes, Mapping):
            raise ProviderError("VirusTotal: unexpected response shape")
        stats = attributes.get("last_analysis_stats") or {}
        malicious = int(stats.get("malicious") or 0)
        suspicious = int(stats.get("suspicious") or 0)
        if malicious >= 3:
            verdict = "malicious"
        elif malicious or suspicious:
            verdict = "suspicious"
        else:
            verdict = "benign" if int(stats.get("harmless") or 0) > 0 else "unknown"
        return {
            "verdict": verdict,
            "details": {"stats": dict(stats), "reputation": attributes.get("reputation")},
        }


def _not_public(indicator: str) -> bool:
    address = ipaddress.ip_address(indicator)
    return not address.is_global


class ThreatIntelEnricher(SourceBase):
    """Merged verdict for one indicator from several :class:`Provider` s."""

    name = "threat_intel"

    def __init__(
        self,
        http: httpx.AsyncClient,
        providers: Sequence[Provider],
        *,
        fields: Iterable[str] = ("source.ip", "destination.ip", "url.domain"),
        provider_timeout: float = 3.0,
        breaker_threshold: int = 5,
        breaker_window: float = 60.0,
    ) -> None:
        if not providers:
            raise ValueError("threat_intel needs at least one provider")
        self.fields = tuple(fields)
        self._http = http
        self._providers = tuple(providers)
        self._timeout = provider_timeout
        self._breakers = {
            p.name: CircuitBreaker(breaker_threshold, breaker_window) for p in providers
        }

    def normalize_key(self, key: str) -> str:
        return key.strip().lower().rstrip(".")

    async def _one(self, provider: Provider, indicator: str, kind: str) -> dict[str, Any]:
        breaker = self._breakers[provider.name]
        permit = breaker.acquire()
        if permit is None:
            return {
                "provider": provider.name,
                "verdict": "unavailable",
                "error": f"circuit open, next try in {breaker.retry_in():.0f}s",
            }
        try:
            result = await asyncio.wait_for(
                provider.check(self._http, indicator, kind), self._timeout
            )
        except asyncio.CancelledError:
            breaker.release(permit)
            raise
        except TimeoutError:
            error = f"timeout after {self._timeout:g}s"
        except httpx.TimeoutException:
            error = "provider timed out"
        except (ProviderError, httpx.HTTPError, ValueError, TypeError) as exc:
            error = str(exc) or type(exc).__name__
        else:
            breaker.record(permit, failed=False)
            return {"provider": provider.name, **result}
        breaker.record(permit, failed=True)
        return {"provider": provider.name, "verdict": "unavailable", "error": error}

    async def fetch(self, key: str) -> Mapping[str, Any]:
        kind = indicator_kind(key)
        if kind is None:
            raise InvalidKeyError(f"{key!r} (not an IP, domain or hash)")
        if kind == "ip" and _not_public(key):
            return {
                "indicator": key,
                "kind": kind,
                "verdict": "unknown",
                "sources": [],
                "note": "non-public address: not sent to threat-intel providers",
            }
        usable = [p for p in self._providers if kind in p.kinds]
        if not usable:
            raise InvalidKeyError(f"{key!r} ({kind}: no configured provider handles it)")
        sources = await asyncio.gather(*(self._one(p, key, kind) for p in usable))
        answered = [s for s in sources if s["verdict"] != "unavailable"]
        if not answered:
            reasons = "; ".join(f"{s['provider']}: {s.get('error')}" for s in sources)
            raise ProviderError(f"all threat-intel providers failed ({reasons})")
        verdict = max((s["verdict"] for s in answered), key=lambda v: VERDICT_RANK.get(v, 0))
        return {
            "indicator": key,
            "kind": kind,
            "verdict": verdict,
            "sources": list(sources),
            "partial": len(answered) < len(sources),
        }


__all__ = [
    "AbuseIpDb",
    "GreyNoiseCommunity",
    "Provider",
    "ThreatIntelEnricher",
    "VirusTotal",
    "indicator_kind",
]
