"""One contract for every built-in provider enricher, built the way production builds them.

Each case points :func:`build_enrichers` (through :class:`Settings`) at a real HTTP stand-in
(:class:`secbot_emulators.providers_http.ProviderServer`) and checks what a triager relies on:

- the provider's data comes back *available*;
- a provider that fails (HTTP 500, a body that is not JSON, connection refused) never makes
  ``enrich`` raise: the result is *unavailable* with a reason;
- a provider slower than the timeout gives *unavailable* within about that timeout.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment
from secbot.enrich.base import Enricher
from secbot.enrich.engine import EnrichmentEngine
from secbot.runtime.enrichers import build_enrichers
from secbot.runtime.settings import load_settings
from secbot_emulators.providers import rest_project
from secbot_emulators.providers_http import REFUSED_URL, ProviderServer

EMAIL = "sre@example.com"
IP = "45.155.204.7"
SA = "deployer@prod-payments.iam.gserviceaccount.com"
TIMEOUT = 1.0  # the per-provider timeout every case is built with


@dataclass(frozen=True)
class Case:
    """One provider enricher: its settings (given the stand-in URL), alert, canned API."""

    id: str
    name: str
    settings: Callable[[str], dict[str, Any]]
    alert: dict[str, Any]
    routes: dict[str, Any]
    expect: Callable[[Enrichment], bool]


def _malicious(provider: str) -> Callable[[Enrichment], bool]:
    return lambda r: r.data["verdict"] == "malicious" and [
        s["provider"] for s in r.data["sources"]] == [provider]


def _entitle_permission() -> dict[str, Any]:
    return {"permissionId": "p1", "createdAt": "2026-11-01T09:12:00.000Z",
            "account": {"id": "a1", "name": EMAIL, "email": EMAIL,
                        "integration": {"id": "i1", "name": "GCP prod"}},
            "role": {"id": "r1", "name": "roles/owner", "resource": {
                "id": "res1", "name": "prod-payments",
                "integration": {"id": "i1", "name": "GCP prod", "application": {"name": "gcp"}}}},
            "types": ["jit"], "path": "GCP prod/prod-payments"}


CASES = [
    Case("gcp_project", "gcp_project", lambda url: {"gcp_endpoint": url},
         {"cloud.project.id": "prod-payments"},
         {"/v3/projects/prod-payments": rest_project("prod-payments", "2002"),
          "/v3/projects:search": {"projects": [rest_project("prod-payments", "2002")]}},
         lambda r: r.data.get("project_number") == "2002"),
    Case("gcp_service_account", "gcp_service_account",
         lambda url: {"gcp_endpoint": url, "gcp_iam_url": url},
         {"gcp.audit.resource_name": f"projects/prod-payments/serviceAccounts/{SA}"},
         {f"/v1/projects/-/serviceAccounts/{SA}": {
             "name": f"projects/prod-payments/serviceAccounts/{SA}", "projectId": "prod-payments",
             "uniqueId": "1122", "email": SA, "displayName": "Deployer"}},
         lambda r: "Deployer" in r.data.values()),
    Case("jit_entitle", "jit_permissions",
         lambda url: {"entitle_url": url, "entitle_token": "t"}, {"user.email": EMAIL},
         {"/public/v1/permissions": {
             "pagination": {"page": 1, "perPage": 100, "totalResults": 1, "totalPages": 1},
             "result": [_entitle_permission()]}},
         lambda r: [g["permission"] for g in r.data["grants"]] == ["roles/owner"]),
    Case("jit_generic", "jit_permissions",
         lambda url: {"entitle_url": url, "jit_provider": "generic"}, {"user.email": EMAIL},
         {"/grants": {"grants": [{"permission": "roles/editor", "resource": "prod-payments",
                                  "granted_at": "2026-11-01T09:00:00Z",
                                  "expires_at": "2026-11-01T11:00:00Z"}]}},
         lambda r: r.data["grants"][0]["permission"] == "roles/editor"),
    Case("oncall_pagerduty", "oncall",
         lambda url: {"pagerduty_url": url, "pagerduty_token": "p"}, {"user.email": EMAIL},
         {"/users": {"users": [{"id": "PX1", "type": "user", "name": "Sam", "email": EMAIL}],
                     "limit": 25, "offset": 0, "more": False},
          "/oncalls": {"oncalls": [{
              "escalation_policy": {"id": "E1", "summary": "Platform"}, "escalation_level": 1,
              "schedule": {"id": "S1", "summary": "platform-primary"},
              "user": {"id": "PX1", "summary": "Sam"}, "start": "2026-11-01T00:00:00Z",
              "end": "2026-11-08T00:00:00Z"}], "more": False}},
         lambda r: r.data["on_call"] is True),
    Case("oncall_opsgenie", "oncall",
         lambda url: {"oncall_provider": "opsgenie", "opsgenie_url": url, "opsgenie_key": "k"},
         {"user.email": EMAIL},
         {f"/v2/users/{EMAIL}": {"data": {"id": "b5", "username": EMAIL, "fullName": "Sam"}},
          "/v2/schedules/on-calls": {"data": [{
              "_parent": {"id": "s1", "name": "platform-primary", "enabled": True},
              "onCallRecipients": [EMAIL]}]}},
         lambda r: r.data["on_call"] is True),
    Case("hr_hris", "hr", lambda url: {"hris_url": url, "hris_token": "h"},
         {"user.email": EMAIL},
         {f"/employees/{EMAIL}": {"workEmail": EMAIL, "displayName": "Sam Reyes",
                                  "department": "SRE", "jobTitle": "Engineer",
                                  "employmentStatus": "Active"}},
         lambda r: r.data.get("terminated") is False),
    Case("threat_intel_abuseipdb", "threat_intel",
         lambda url: {"abuseipdb_url": url, "abuseipdb_key": "k"}, {"source.ip": IP},
         {"/api/v2/check": {"data": {"ipAddress": IP, "isPublic": True, "ipVersion": 4,
                                     "abuseConfidenceScore": 100, "countryCode": "RU",
                                     "totalReports": 1520, "numDistinctUsers": 300,
                                     "lastReportedAt": "2026-10-31T12:00:00+00:00"}}},
         _malicious("abuseipdb")),
    Case("threat_intel_greynoise", "threat_intel",
         lambda url: {"greynoise_url": url, "greynoise_key": "k"}, {"source.ip": IP},
         {f"/v3/community/{IP}": {"ip": IP, "noise": True, "riot": False,
                                  "classification": "malicious", "name": "unknown",
                                  "last_seen": "2026-10-31", "message": "Success"}},
         _malicious("greynoise")),
    Case("threat_intel_virustotal", "threat_intel",
         lambda url: {"virustotal_url": url, "virustotal_key": "k"}, {"source.ip": IP},
         {f"/api/v3/ip_addresses/{IP}": {"data": {"id": IP, "type": "ip_address", "attributes": {
             "last_analysis_stats": {"harmless": 60, "malicious": 9, "suspicious": 1,
                                     "undetected": 8, "timeout": 0},
             "reputation": -40}}}},
         _malicious("virustotal")),
    Case("whois_rdap", "whois", lambda url: {"whois_enabled": True, "rdap_url": url},
         {"url.domain": "example.com"},
         {"/domain/example.com": {
             "objectClassName": "domain", "handle": "2336799_DOMAIN_COM-VRSN",
             "ldhName": "EXAMPLE.COM", "status": ["client transfer prohibited"],
             "events": [{"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
                        {"eventAction": "expiration", "eventDate": "2027-08-13T04:00:00Z"}]}},
         lambda r: r.data["created"] == "1995-08-14T04:00:00Z" and not r.data["young_domain"]),
]


@pytest.fixture(autouse=True)
def _no_secbot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SECBOT_")]:
        monkeypatch.delenv(name)


@dataclass
class Built:
    case: Case
    server: ProviderServer
    enricher: Enricher
    http: httpx.AsyncClient

    @property
    def alert(self) -> Alert:
        return Alert.from_hit({"kibana.alert.uuid": "u-1", "@timestamp": "2026-11-01T10:00:00Z",
                               **self.case.alert})


def _build(case: Case, url: str, http: httpx.AsyncClient) -> Enricher:
    # Only the case's provider is configured; retries stay (they are part of the contract's
    # timing), the cache stays in-process (no Redis: each test starts cold).
    values = {"whois_enabled": False, "enrich_provider_timeout": TIMEOUT, "enrich_retries": 1,
              **case.settings(url)}
    enrichers = build_enrichers(load_settings(**values), http=http)
    assert case.name in enrichers, f"{case.id}: not built from {values}"
    return enrichers[case.name]


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
async def built(request: pytest.FixtureRequest) -> AsyncIterator[Built]:
    case: Case = request.param
    async with ProviderServer(case.routes) as server, httpx.AsyncClient(
            timeout=httpx.Timeout(TIMEOUT)) as http:
        yield Built(case, server, _build(case, server.url, http), http)


async def test_data_from_the_provider_is_available(built: Built) -> None:
    result = await built.enricher.enrich(built.alert)
    assert result.available, f"{built.case.id}: {result.error} (asked {built.server.requests})"
    assert built.case.expect(result), dict(result.data)


@pytest.mark.parametrize("mode", ["error", "garbage"])
async def test_a_broken_provider_is_unavailable_with_a_reason(built: Built, mode: str) -> None:
    built.server.mode = mode  # type: ignore[assignment]
    result = await built.enricher.enrich(built.alert)
    assert not result.available and result.error, dict(result.data)
    assert built.server.requests, "the stand-in was never asked"


async def test_a_refused_connection_is_unavailable_with_a_reason(built: Built) -> None:
    enricher = _build(built.case, REFUSED_URL, built.http)
    result = await enricher.enrich(built.alert)
    assert not result.available and result.error


async def test_a_slow_provider_is_unavailable_within_about_the_timeout(built: Built) -> None:
    built.server.mode = "slow"
    built.server.delay = 10 * TIMEOUT
    engine = EnrichmentEngine({built.case.name: built.enricher}, timeout=TIMEOUT * 1.5)
    started = time.monotonic()
    results = await engine.enrich(built.alert, [built.case.name])
    elapsed = time.monotonic() - started
    result = results[built.case.name]
    assert not result.available and result.error
    assert elapsed < TIMEOUT * 1.5 + 1.0, f"{built.case.id} took {elapsed:.2f}s"
