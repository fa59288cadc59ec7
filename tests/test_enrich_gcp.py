"""gcp_project (the real google-cloud-resource-manager client against a local REST stand-in)
and gcp_service_account (IAM REST shape over httpx)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from enrich_support import FAST, alert

from secbot.enrich.breaker import GuardedEnricher
from secbot.enrich.gcp_project import GcpProjectEnricher, default_projects_client
from secbot.enrich.gcp_service_account import GcpServiceAccountEnricher, service_account_key
from secbot_emulators.providers import GcpStandIn, Script, json_reply, rest_project, timeout_reply

PROJECTS = [
    rest_project("sandbox-tools", "1001", {"instance-type": "internal", "team": "devex"}),
    rest_project("prod-payments", "2002", {"instance-type": "customer"}, parent="folders/7"),
]


@pytest.fixture
async def gcp() -> AsyncIterator[GcpStandIn]:
    async with GcpStandIn([dict(p) for p in PROJECTS]) as server:
        yield server


def enricher(server: GcpStandIn, timeout: float = 2.0) -> GcpProjectEnricher:
    return GcpProjectEnricher(
        lambda: default_projects_client(server.url), policy=FAST, request_timeout=timeout
    )


async def test_project_by_id_uses_search_and_has_the_fixed_shape(gcp: GcpStandIn) -> None:
    result = await enricher(gcp).lookup("sandbox-tools")
    assert result.available, result.error
    data = result.data
    assert {k: data[k] for k in ("project_id", "project_number", "parent", "state")} == {
        "project_id": "sandbox-tools",
        "project_number": "1001",
        "parent": "folders/42",
        "state": "ACTIVE",
    }
    assert dict(data["labels"]) == {"instance-type": "internal", "team": "devex"}
    assert data["display_name"] == "sandbox-tools"
    assert gcp.hits[0].startswith("/v3/projects:search?query=id%3Asandbox-tools")


async def test_project_by_number_and_resource_name(gcp: GcpStandIn) -> None:
    e = enricher(gcp)
    by_number = await e.lookup("2002")
    assert by_number.available and by_number.data["project_id"] == "prod-payments"
    assert gcp.hits[-1].startswith("/v3/projects/2002")
    a = alert(**{"gcp.audit.resource_name": "projects/prod-payments/serviceAccounts/x@y.com"})
    assert e.key_for(a) == "prod-payments"
    assert (await e.enrich(a)).data["project_number"] == "2002"


async def test_unknown_project_is_not_found_after_search_and_get(gcp: GcpStandIn) -> None:
    result = await enricher(gcp).lookup("ghost-project")
    assert not result.available
    assert result.error == "project 'ghost-project' not found"
    assert len(gcp.hits) == 2  # search (empty), then GetProject → 403 as GCP does


async def test_garbage_key_is_never_sent(gcp: GcpStandIn) -> None:
    result = await enricher(gcp).lookup("x OR labels.env:prod")
    assert result.error is not None and result.error.endswith("not found")
    assert gcp.hits == []


async def test_401_is_unavailable(gcp: GcpStandIn) -> None:
    gcp.failures = [(401, "UNAUTHENTICATED", {})]
    result = await enricher(gcp).lookup("2002")
    assert not result.available and "unauthorized" in (result.error or "")


async def test_429_is_retried_then_succeeds(gcp: GcpStandIn) -> None:
    gcp.failures = [(429, "RESOURCE_EXHAUSTED", {"Retry-After": "0"})] * 2
    result = await enricher(gcp).lookup("2002")
    assert result.available
    assert len(gcp.hits) == 3


async def test_429_exhausted_is_unavailable(gcp: GcpStandIn) -> None:
    gcp.failures = [(429, "RESOURCE_EXHAUSTED", {})] * 5
    result = await enricher(gcp).lookup("2002")
    assert not result.available and "429" in (result.error or "")
    assert len(gcp.hits) == 3  # 1 + FAST.retries


async def test_timeout_is_unavailable(gcp: GcpStandIn) -> None:
    gcp.delay = 1.0
    result = await enricher(gcp, timeout=0.2).lookup("2002")
    assert not result.available and "timed out" in (result.error or "")
    guarded = GuardedEnricher(enricher(gcp, timeout=5.0), timeout=0.2)
    result = await guarded.lookup("2002")
    assert result.error == "timeout after 0.2s"


async def test_no_credentials_is_unavailable_not_a_crash() -> None:
    def broken() -> object:
        raise RuntimeError("no ADC")

    result = await GcpProjectEnricher(broken).lookup("prod-payments")  # type: ignore[arg-type]
    assert not result.available and "GCP client unavailable" in (result.error or "")


# gcp_service_account -----------------------------------------------------------------------

SA_EMAIL = "deployer@prod-payments.iam.gserviceaccount.com"
SA_PATH = f"/v1/projects/-/serviceAccounts/{SA_EMAIL}"
SA_BODY = {
    "name": f"projects/prod-payments/serviceAccounts/{SA_EMAIL}",
    "projectId": "prod-payments",
    "uniqueId": "112233445566778899001",
    "email": SA_EMAIL,
    "displayName": "Deployer",
    "etag": "MDEwMjE5MjA=",
    "description": "CI deploys payments services with this account",
    "oauth2ClientId": "112233445566778899001",
}


def sa(script: Script) -> GcpServiceAccountEnricher:
    return GcpServiceAccountEnricher(script.client(), base_url="http://iam.local", policy=FAST)


def test_service_account_key_extraction() -> None:
    assert service_account_key(f"projects/p/serviceAccounts/{SA_EMAIL.upper()}") == SA_EMAIL
    assert service_account_key("projects/p/serviceAccounts/112233445566778899001") == (
        "112233445566778899001"
    )
    assert service_account_key("alice@example.com") is None


async def test_service_account_success_from_alert() -> None:
    script = Script().on(SA_PATH, json_reply(200, SA_BODY))
    a = alert(**{"user.email": "alice@example.com", "gcp.audit.resource_name": SA_BODY["name"]})
    result = await sa(script).enrich(a)
    assert result.available, result.error
    assert result.data["description"] == SA_BODY["description"]
    assert result.data["display_name"] == "Deployer" and result.data["disabled"] is False


async def test_service_account_not_found_401_429_timeout() -> None:
    err = {"error": {"code": 404, "message": "Unknown service account", "status": "NOT_FOUND"}}
    script = Script().on(SA_PATH, json_reply(404, err))
    assert (await sa(script).lookup(SA_EMAIL)).error == f"service account {SA_EMAIL!r} not found"
    script.on(SA_PATH, json_reply(401, {"error": {"code": 401}}))
    assert "401" in ((await sa(script).lookup(SA_EMAIL)).error or "")
    script.on(SA_PATH, json_reply(429, {}), json_reply(429, {}), json_reply(200, SA_BODY))
    assert (await sa(script).lookup(SA_EMAIL)).available
    script.on(SA_PATH, json_reply(429, {}))
    assert "429" in ((await sa(script).lookup(SA_EMAIL)).error or "")
    script.on(SA_PATH, timeout_reply)
    assert (await sa(script).lookup(SA_EMAIL)).error == "provider timed out"
