"""threat_intel (AbuseIPDB + GreyNoise Community + VirusTotal) and whois (RDAP, RFC 9083)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from enrich_support import FAST, alert

from secbot.domain.enrichment import Enrichment
from secbot.enrich.threat_intel import (
    AbuseIpDb,
    GreyNoiseCommunity,
    Provider,
    ThreatIntelEnricher,
    VirusTotal,
    indicator_kind,
)
from secbot.enrich.whois import WhoisEnricher
from secbot.runtime.enrichers import build_enrichers
from secbot.runtime.settings import load_settings
from secbot_emulators.providers import Script, json_reply, timeout_reply
from secbot_emulators.providers_http import ProviderServer

IP = "203.0.113.50"  # TEST-NET-3 is not "global"; use a public-looking address for lookups
PUBLIC_IP = "45.155.205.233"

ABUSE = {
    "data": {
        "ipAddress": PUBLIC_IP,
        "isPublic": True,
        "ipVersion": 4,
        "isWhitelisted": False,
        "abuseConfidenceScore": 100,
        "countryCode": "RU",
        "usageType": "Data Center/Web Hosting/Transit",
        "isp": "Example Hosting",
        "domain": "example.net",
        "totalReports": 1520,
        "numDistinctUsers": 300,
        "lastReportedAt": "2026-10-31T23:00:00+00:00",
    }
}
GREYNOISE = {
    "ip": PUBLIC_IP,
    "noise": True,
    "riot": False,
    "classification": "malicious",
    "name": "unknown",
    "link": f"https://viz.greynoise.io/ip/{PUBLIC_IP}",
    "last_seen": "2026-10-31",
    "message": "Success",
}
GREYNOISE_404 = {
    "ip": PUBLIC_IP,
    "noise": False,
    "riot": False,
    "message": "IP not observed scanning the internet or contained in RIOT data set.",
}
VT_DOMAIN = {
    "data": {
        "id": "example.com",
        "type": "domain",
        "attributes": {
            "last_analysis_stats": {
                "harmless": 66,
                "malicious": 0,
                "suspicious": 0,
                "undetected": 8,
                "timeout": 0,
            },
            "reputation": 12,
        },
    }
}


def ti(script: Script, timeout: float = 1.0) -> ThreatIntelEnricher:
    providers: list[Provider] = [
        AbuseIpDb("https://abuse.local", "ak", policy=FAST),
        GreyNoiseCommunity("https://gn.local", "gk", policy=FAST),
        VirusTotal("https://vt.local", "vk", policy=FAST),
    ]
    return ThreatIntelEnricher(script.client(), providers, provider_timeout=timeout)


def test_indicator_kinds() -> None:
    assert indicator_kind(PUBLIC_IP) == "ip" and indicator_kind("2001:db8::1") == "ip"
    assert indicator_kind("d41d8cd98f00b204e9800998ecf8427e") == "hash"
    assert indicator_kind("login.example.com") == "domain"
    assert indicator_kind("not an indicator") is None


async def test_ip_verdict_merges_providers_with_sources() -> None:
    vt_ip = {"data": {"attributes": {"last_analysis_stats": {"malicious": 5, "harmless": 60}}}}
    script = (
        Script()
        .on("/api/v2/check", json_reply(200, ABUSE))
        .on(f"/v3/community/{PUBLIC_IP}", json_reply(200, GREYNOISE))
        .on(f"/api/v3/ip_addresses/{PUBLIC_IP}", json_reply(200, vt_ip))
    )
    result = await ti(script).enrich(alert(source={"ip": PUBLIC_IP}))
    assert result.available, result.error
    assert result.data["verdict"] == "malicious" and result.data["partial"] is False
    by = {s["provider"]: s for s in result.data["sources"]}
    assert by["abuseipdb"]["details"]["score"] == 100
    assert by["greynoise"]["verdict"] == "malicious"
    headers = {r.url.host: r.headers for r in script.requests}
    assert headers["abuse.local"]["Key"] == "ak" and headers["gn.local"]["key"] == "gk"
    assert headers["vt.local"]["x-apikey"] == "vk"


async def test_not_observed_is_an_answer_and_one_failure_is_partial() -> None:
    script = (
        Script()
        .on("/api/v2/check", json_reply(401, {"errors": [{"detail": "bad key"}]}))
        .on(f"/v3/community/{PUBLIC_IP}", json_reply(404, GREYNOISE_404))
        .on(
            f"/api/v3/ip_addresses/{PUBLIC_IP}",
            json_reply(404, {"error": {"code": "NotFoundError", "message": "not found"}}),
        )
    )
    result = await ti(script).lookup(PUBLIC_IP)
    assert result.available and result.data["verdict"] == "unknown"
    assert result.data["partial"] is True
    abuse = next(s for s in result.data["sources"] if s["provider"] == "abuseipdb")
    assert abuse["verdict"] == "unavailable" and "401" in abuse["error"]


async def test_domain_goes_to_virustotal_only() -> None:
    script = Script().on("/api/v3/domains/example.com", json_reply(200, VT_DOMAIN))
    result = await ti(script).lookup("Example.COM.")
    assert result.data["verdict"] == "benign"
    assert [s["provider"] for s in result.data["sources"]] == ["virustotal"]


async def test_all_failed_429_then_retry_and_timeout() -> None:
    script = (
        Script()
        .on("/api/v2/check", json_reply(429, {}))
        .on(f"/v3/community/{PUBLIC_IP}", json_reply(429, {}))
        .on(f"/api/v3/ip_addresses/{PUBLIC_IP}", json_reply(503, {}))
    )
    failed = await ti(script).lookup(PUBLIC_IP)
    assert not failed.available and "all threat-intel providers failed" in (failed.error or "")
    assert script.count("/api/v2/check") == 3  # retried, then exhausted
    script.on("/api/v2/check", json_reply(429, {}, **{"Retry-After": "0"}), json_reply(200, ABUSE))
    assert (await ti(script).lookup(PUBLIC_IP)).data["verdict"] == "malicious"

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1)
        return json_reply(200, GREYNOISE)

    vt_clean = {"data": {"attributes": {"last_analysis_stats": {"harmless": 70}}}}
    script.on(f"/v3/community/{PUBLIC_IP}", slow).on("/api/v2/check", timeout_reply)
    script.on(f"/api/v3/ip_addresses/{PUBLIC_IP}", json_reply(200, vt_clean))
    result = await ti(script, timeout=0.1).lookup(PUBLIC_IP)
    errors = {s["provider"]: s.get("error") for s in result.data["sources"]}
    assert errors == {
        "abuseipdb": "provider timed out",
        "greynoise": "timeout after 0.1s",
        "virustotal": None,
    }
    assert result.data["verdict"] == "benign" and result.data["partial"] is True


async def test_private_addresses_never_leave() -> None:
    script = Script()
    result = await ti(script).lookup("10.1.2.3")
    assert result.available and result.data["verdict"] == "unknown"
    assert script.requests == []


# RDAP ----------------------------------------------------------------------------------------

RDAP_DOMAIN = {
    "objectClassName": "domain",
    "handle": "2336799_DOMAIN_COM-VRSN",
    "ldhName": "EXAMPLE.COM",
    "status": ["client delete prohibited", "client transfer prohibited"],
    "events": [
        {"eventAction": "registration", "eventDate": "2026-10-20T18:01:00Z"},
        {"eventAction": "expiration", "eventDate": "2027-10-20T18:01:00Z"},
    ],
    "entities": [
        {
            "objectClassName": "entity",
            "handle": "376",
            "roles": ["registrar"],
            "publicIds": [{"type": "IANA Registrar ID", "identifier": "376"}],
            "vcardArray": [
                "vcard",
                [
                    ["version", {}, "text", "4.0"],
                    ["fn", {}, "text", "RESERVED-Internet Assigned Numbers Authority"],
                ],
            ],
        }
    ],
    "nameservers": [{"objectClassName": "nameserver", "ldhName": "A.IANA-SERVERS.NET"}],
}
RDAP_IP = {
    "objectClassName": "ip network",
    "handle": "NET-45-155-204-0-1",
    "startAddress": "45.155.204.0",
    "endAddress": "45.155.205.255",
    "ipVersion": "v4",
    "name": "EXAMPLE-HOSTING",
    "country": "NL",
    "cidr0_cidrs": [{"v4prefix": "45.155.204.0", "length": 23}],
    "events": [{"eventAction": "registration", "eventDate": "2019-06-01T00:00:00Z"}],
    "entities": [
        {
            "objectClassName": "entity",
            "roles": ["registrant"],
            "vcardArray": ["vcard", [["fn", {}, "text", "Example Hosting B.V."]]],
        }
    ],
}


def whois(script: Script) -> WhoisEnricher:
    return WhoisEnricher(
        script.client(),
        base_url="https://rdap.local",
        policy=FAST,
        clock=lambda: datetime(2026, 11, 1, tzinfo=UTC),
    )


async def test_rdap_domain_follows_bootstrap_redirect_and_flags_young() -> None:
    redirect = httpx.Response(
        302, headers={"Location": "https://rdap.verisign.local/com/v1/domain/example.com"}
    )
    script = (
        Script()
        .on("/domain/example.com", redirect)
        .on("/com/v1/domain/example.com", json_reply(200, RDAP_DOMAIN))
    )
    result = await whois(script).enrich(alert(url={"domain": "example.com"}))
    assert result.available, result.error
    assert result.data["registrar"] == "RESERVED-Internet Assigned Numbers Authority"
    assert result.data["created"] == "2026-10-20T18:01:00Z"
    assert result.data["young_domain"] is True and result.data["age_days"] == 11


async def test_rdap_subdomain_walks_up_and_unknown_is_not_found() -> None:
    script = (
        Script()
        .on("/domain/www.example.com", json_reply(404, {"errorCode": 404}))
        .on("/domain/example.com", json_reply(200, RDAP_DOMAIN))
    )
    assert (await whois(script).lookup("www.example.com")).data["domain"] == "example.com"
    script = Script().on("/domain/nope.example", json_reply(404, {"errorCode": 404}))
    assert (await whois(script).lookup("nope.example")).error == "domain 'nope.example' not found"


async def test_rdap_ip_network_owner() -> None:
    script = Script().on(f"/ip/{PUBLIC_IP}", json_reply(200, RDAP_IP))
    result = await whois(script).lookup(PUBLIC_IP)
    assert result.data["network_owner"] == "Example Hosting B.V."
    assert list(result.data["cidrs"]) == ["45.155.204.0/23"]


async def test_rdap_401_429_timeout() -> None:
    script = Script().on("/domain/example.com", json_reply(401, {}))
    assert "401" in ((await whois(script).lookup("example.com")).error or "")
    script.on("/domain/example.com", json_reply(429, {}), json_reply(200, RDAP_DOMAIN))
    assert (await whois(script).lookup("example.com")).available
    script.on("/domain/example.com", json_reply(429, {}))
    assert "429" in ((await whois(script).lookup("example.com")).error or "")
    script.on("/domain/example.com", timeout_reply)
    assert (await whois(script).lookup("example.com")).error == "provider timed out"


# --- API keys and redirects -------------------------------------------------------------------

KEYS: dict[str, Any] = {"abuseipdb_key": "abuse-secret-key-1", "greynoise_key": "gn-secret-key-22",
        "virustotal_key": "vt-secret-key-333"}
VT_IP = {"data": {"attributes": {"last_analysis_stats": {"malicious": 5, "harmless": 60}}}}
PROVIDER_PATHS = {"/api/v2/check": ABUSE, f"/v3/community/{PUBLIC_IP}": GREYNOISE,
                  f"/api/v3/ip_addresses/{PUBLIC_IP}": VT_IP}


async def _lookup_through(redirecting: ProviderServer) -> Enrichment:
    """The threat_intel enricher as production builds it (its own httpx client), every
    provider's base URL pointing at ``redirecting``."""
    settings = load_settings(
        abuseipdb_url=redirecting.url, greynoise_url=redirecting.url,
        virustotal_url=redirecting.url, whois_enabled=False, enrich_retries=0, **KEYS,
    )
    built = build_enrichers(settings)
    try:
        return await built["threat_intel"].enrich(alert(source={"ip": PUBLIC_IP}))
    finally:
        await built.aclose()


def _sent_keys(server: ProviderServer) -> list[str]:
    return [f"{path}: {name}" for path, headers in server.received
            for name, value in headers.items() if value in KEYS.values()]


async def test_api_keys_do_not_follow_a_redirect_to_another_origin() -> None:
    # httpx drops only Authorization on a cross-origin redirect; AbuseIPDB's Key, VirusTotal's
    # x-apikey and GreyNoise's key would reach whoever the provider (or an attacker on its
    # path) points us at.
    async with ProviderServer(PROVIDER_PATHS) as elsewhere, ProviderServer(
        {}, redirects={path: elsewhere.url + path for path in PROVIDER_PATHS}
    ) as provider:
        result = await _lookup_through(provider)
        assert _sent_keys(elsewhere) == []
        assert sorted(p for p, _ in elsewhere.received) == sorted(PROVIDER_PATHS)
        assert len(_sent_keys(provider)) == 3  # the provider itself did get its keys
    assert result.available, result.error  # the redirect was still followed, keyless
    assert result.data["verdict"] == "malicious"


async def test_a_same_origin_redirect_keeps_the_key() -> None:
    moved = {path + "/v2": body for path, body in PROVIDER_PATHS.items()}
    async with ProviderServer(moved) as provider:
        provider.redirects = {path: provider.url + path + "/v2" for path in PROVIDER_PATHS}
        result = await _lookup_through(provider)
        keyed = {path for path, headers in provider.received
                 if set(headers.values()) & set(KEYS.values())}
    assert result.available, result.error
    assert keyed == set(PROVIDER_PATHS) | set(moved)
