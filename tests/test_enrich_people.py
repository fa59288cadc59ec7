"""oncall (PagerDuty REST v2), jit_permissions (Entitle public API), hr (alert fields / HRIS)."""

from __future__ import annotations

from datetime import UTC, datetime

from enrich_support import FAST, alert

from secbot.enrich.hr import HrEnricher
from secbot.enrich.jit_permissions import (
    EntitleAdapter,
    GenericJitAdapter,
    JitPermissionsEnricher,
)
from secbot.enrich.oncall import OnCallEnricher, PagerDutyAdapter
from secbot_emulators.providers import Script, json_reply, timeout_reply

NOW = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)

# PagerDuty -----------------------------------------------------------------------------------

PD_USERS = {
    "users": [
        {"id": "PXPGF42", "type": "user", "name": "Sam Reyes", "email": "sre@example.com"},
        {"id": "PEVIL01", "type": "user", "name": "Sam", "email": "sre@example.com.evil"},
    ],
    "limit": 25,
    "offset": 0,
    "more": False,
}
PD_ONCALLS = {
    "oncalls": [
        {
            "escalation_policy": {
                "id": "PT20YPA",
                "type": "escalation_policy_reference",
                "summary": "Platform",
            },
            "escalation_level": 1,
            "schedule": {
                "id": "PI7DH85",
                "type": "schedule_reference",
                "summary": "platform-primary",
            },
            "user": {"id": "PXPGF42", "type": "user_reference", "summary": "Sam Reyes"},
            "start": "2026-11-01T08:00:00Z",
            "end": "2026-11-02T08:00:00Z",
        }
    ],
    "limit": 25,
    "offset": 0,
    "more": False,
}


def oncall(script: Script) -> OnCallEnricher:
    adapter = PagerDutyAdapter("https://pd.local", "pd-token", policy=FAST, clock=lambda: NOW)
    return OnCallEnricher(script.client(), adapter)


async def test_oncall_success_sends_the_pagerduty_shape() -> None:
    script = (
        Script().on("/users", json_reply(200, PD_USERS)).on("/oncalls", json_reply(200, PD_ONCALLS))
    )
    result = await oncall(script).enrich(alert(user={"email": "SRE@example.com"}))
    assert result.available, result.error
    assert result.data["on_call"] is True
    assert list(result.data["schedules"]) == ["platform-primary"]
    users, oncalls = script.requests
    assert users.headers["Authorization"] == "Token token=pd-token"
    assert users.headers["Accept"] == "application/vnd.pagerduty+json;version=2"
    assert users.url.params["query"] == "sre@example.com"
    assert oncalls.url.params.get_list("user_ids[]") == ["PXPGF42"]
    assert oncalls.url.params["since"] == "2026-11-01T10:00:00Z"
    assert oncalls.url.params["until"] == "2026-11-01T10:00:01Z"


async def test_oncall_off_shift_and_unknown_user() -> None:
    script = (
        Script()
        .on("/users", json_reply(200, PD_USERS))
        .on("/oncalls", json_reply(200, {"oncalls": [], "more": False}))
    )
    off = await oncall(script).lookup("sre@example.com")
    assert off.data["on_call"] is False and list(off.data["schedules"]) == []
    # Substring matches ("sre@example.com.evil" for "sre@example.co") never count.
    unknown = await oncall(script).lookup("sre@example.co")
    assert unknown.error == "PagerDuty user 'sre@example.co' not found"


async def test_oncall_401_429_timeout() -> None:
    script = Script().on("/users", json_reply(401, {"error": {"message": "Unauthorized"}}))
    assert "401" in ((await oncall(script).lookup("sre@example.com")).error or "")
    script.on("/users", json_reply(429, {}, **{"Retry-After": "0"}), json_reply(200, PD_USERS))
    script.on("/oncalls", json_reply(200, PD_ONCALLS))
    assert (await oncall(script).lookup("sre@example.com")).data["on_call"] is True
    script.on("/users", json_reply(429, {}))
    assert "429" in ((await oncall(script).lookup("sre@example.com")).error or "")
    assert script.count("/users") >= 2 + 3
    script.on("/users", timeout_reply)
    assert (await oncall(script).lookup("sre@example.com")).error == "provider timed out"


async def test_oncall_without_email_field() -> None:
    result = await oncall(Script()).enrich(alert(**{"host.name": "x"}))
    assert not result.available and "user.email" in (result.error or "")


# Entitle -------------------------------------------------------------------------------------


def entitle_permission(email: str, role: str, types: list[str]) -> dict[str, object]:
    return {
        "permissionId": "7f3c0a4e-0000-4000-8000-000000000001",
        "createdAt": "2026-11-01T09:12:00.000Z",
        "account": {
            "id": "a1",
            "name": email,
            "euid": email,
            "email": email,
            "createdAt": "2024-01-01T00:00:00.000Z",
            "integration": {"id": "i1", "name": "GCP prod"},
        },
        "role": {
            "id": "r1",
            "name": role,
            "resource": {
                "id": "res1",
                "name": "prod-payments",
                "integration": {"id": "i1", "name": "GCP prod", "application": {"name": "gcp"}},
            },
        },
        "types": types,
        "path": "direct",
    }


def jit(script: Script) -> JitPermissionsEnricher:
    return JitPermissionsEnricher(
        script.client(), EntitleAdapter("https://entitle.local", "ent-token", policy=FAST)
    )


async def test_entitle_grants_paginated_and_exact_account() -> None:
    page1 = {
        "pagination": {"page": 1, "perPage": 100, "totalResults": 3, "totalPages": 2},
        "result": [
            entitle_permission("dev@example.com", "roles/owner", ["jit"]),
            entitle_permission("dev@example.com.au", "roles/viewer", ["policy"]),
        ],
    }
    page2 = {
        "pagination": {"page": 2, "perPage": 100, "totalResults": 3, "totalPages": 2},
        "result": [entitle_permission("dev@example.com", "roles/viewer", ["policy"])],
    }
    script = Script().on("/public/v1/permissions", json_reply(200, page1), json_reply(200, page2))
    result = await jit(script).enrich(alert(user={"email": "dev@example.com"}))
    assert result.available, result.error
    grants = result.data["grants"]
    assert [g["permission"] for g in grants] == ["roles/owner", "roles/viewer"]
    assert grants[0]["resource"] == "prod-payments"
    assert grants[0]["granted_at"] == "2026-11-01T09:12:00.000Z"
    assert result.data["jit_active"] is True
    first = script.requests[0]
    assert first.headers["Authorization"] == "Bearer ent-token"
    assert first.url.params["search"] == "dev@example.com"


async def test_entitle_errors() -> None:
    script = Script().on("/public/v1/permissions", json_reply(401, {"message": "Unauthorized"}))
    assert "401" in ((await jit(script).lookup("dev@example.com")).error or "")
    script.on("/public/v1/permissions", json_reply(429, {}))
    assert "429" in ((await jit(script).lookup("dev@example.com")).error or "")
    empty = {
        "pagination": {"page": 1, "perPage": 100, "totalResults": 0, "totalPages": 0},
        "result": [],
    }
    script.on("/public/v1/permissions", json_reply(503, {}), json_reply(200, empty))
    assert list((await jit(script).lookup("dev@example.com")).data["grants"]) == []
    script.on("/public/v1/permissions", timeout_reply)
    assert (await jit(script).lookup("dev@example.com")).error == "provider timed out"
    assert (await jit(script).lookup("not-an-email")).error == (
        "'not-an-email' (not an email address) not found"
    )


async def test_generic_jit_adapter_carries_justification() -> None:
    body = {
        "grants": [
            {
                "permission": "roles/iam.serviceAccountKeyAdmin",
                "resource": "projects/prod-payments",
                "granted_at": "2026-11-01T09:00:00Z",
                "expires_at": "2026-11-01T11:00:00Z",
                "justification": "INC-4411 rotate deployer key",
            }
        ]
    }
    script = Script().on("/grants", json_reply(200, body))
    enricher = JitPermissionsEnricher(
        script.client(), GenericJitAdapter("https://jit.local", "t", policy=FAST)
    )
    result = await enricher.lookup("Dev@Example.com")
    assert result.data["grants"][0]["justification"] == "INC-4411 rotate deployer key"
    assert script.requests[0].url.params["user"] == "dev@example.com"
    script.on("/grants", json_reply(404, {}))
    assert (await enricher.lookup("x@example.com")).error == "JIT user 'x@example.com' not found"


# HR ------------------------------------------------------------------------------------------

HRIS_BOB = {
    "workEmail": "bob@example.com",
    "displayName": "Bob Ortiz",
    "department": "Sales",
    "jobTitle": "AE",
    "manager": {"email": "pat@example.com", "name": "Pat"},
    "employmentStatus": "Terminated",
    "terminationDate": "2026-10-01",
}


def hr(script: Script | None = None) -> HrEnricher:
    if script is None:
        return HrEnricher()
    return HrEnricher(script.client(), base_url="https://hris.local/api", token="h", policy=FAST)


async def test_hr_from_alert_fields_without_hris() -> None:
    a = alert(
        user={"email": "dev@example.com"},
        enriched_employee={"division": "Platform", "title": "SRE"},
    )
    result = await hr().enrich(a)
    assert result.data["division"] == "Platform" and result.data["email"] == "dev@example.com"
    assert result.data["terminated"] is False and result.data["source"] == "alert"
    missing = await hr().enrich(alert(user={"email": "dev@example.com"}))
    assert not missing.available and "no HRIS" in (missing.error or "")


async def test_hr_terminated_employee_from_hris_is_flagged() -> None:
    script = Script().on("/api/employees/bob@example.com", json_reply(200, HRIS_BOB))
    # Partial alert data (division only) defers to the HRIS when one is configured.
    result = await hr(script).enrich(
        alert(user={"email": "bob@example.com"}, enriched_employee={"division": "Sales"})
    )
    assert result.available, result.error
    assert result.data["terminated"] is True and "TERMINATED" in result.data["warning"]
    assert result.data["manager"] == "pat@example.com" and result.data["source"] == "hris"
    assert script.requests[0].headers["Authorization"] == "Bearer h"


async def test_hr_complete_alert_record_needs_no_call() -> None:
    script = Script()
    a = alert(
        user={"email": "x@example.com"},
        enriched_employee={"division": "Research", "employment_status": "active"},
    )
    assert (await hr(script).enrich(a)).data["division"] == "Research"
    assert script.requests == []


async def test_hr_errors() -> None:
    path = "/api/employees/bob@example.com"
    script = Script().on(path, json_reply(404, {"error": "no such employee"}))
    assert (await hr(script).lookup("bob@example.com")).error == (
        "employee 'bob@example.com' not found"
    )
    script.on(path, json_reply(401, {}))
    assert "401" in ((await hr(script).lookup("bob@example.com")).error or "")
    script.on(path, json_reply(429, {}), json_reply(200, HRIS_BOB))
    assert (await hr(script).lookup("bob@example.com")).available
    script.on(path, json_reply(429, {}))
    assert "429" in ((await hr(script).lookup("bob@example.com")).error or "")
    script.on(path, timeout_reply)
    assert (await hr(script).lookup("bob@example.com")).error == "provider timed out"
