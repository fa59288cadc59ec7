"""The DESIGN.md auto-close expression, end to end, with REAL enrichers behind stand-ins.

Rule ``gcp_sa_key_created`` (rules/) auto-closes when::

    (getProjectDetails(IncludedFields["cloud.project.id"]).Labels["instance-type"] == "internal"
    || (isUserOnCall(IncludedFields["user.email"])
        && IncludedFields["enriched_employee.division"] == "Platform"))
    && enrichments["hr"]["terminated"] == False

``gcp_project`` is the real google-cloud-resource-manager client against a local REST server,
``oncall`` the real PagerDuty enricher, ``hr`` the real HRIS enricher, all built by
``build_enrichers`` (cache + breaker + cap) and run by ``EnrichmentEngine`` inside ``Pipeline``.

The division comes from the alert, the terminated flag from ``hr``: a key created by someone
the HRIS lists as terminated never closes, and an unavailable ``hr`` blocks the close (nobody is
known to be employed then). A variant rule that also takes the division from ``hr`` shows the
same for both.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from secbot.domain.alert import Alert
from secbot.enrich.engine import EnrichmentEngine
from secbot.pipeline.decision import Decision
from secbot.pipeline.pipeline import Pipeline
from secbot.rules.lists import load_lists
from secbot.rules.loader import load_rules
from secbot.runtime.enrichers import build_enrichers
from secbot.store.memory import MemoryStore
from secbot_emulators.providers import GcpStandIn, Script, json_reply, rest_project

RULES = Path(__file__).resolve().parents[1] / "rules"
PD_USERS = {
    "users": [
        {"id": "PSRE001", "name": "Sam Reyes", "email": "sre@example.com"},
        {"id": "PDEV001", "name": "Dana Evans", "email": "dev@example.com"},
    ]
}
ON_CALL = {
    "oncalls": [
        {
            "user": {"id": "PSRE001"},
            "escalation_level": 1,
            "schedule": {"id": "S1", "summary": "platform-primary"},
            "escalation_policy": {"id": "E1", "summary": "Platform"},
            "start": "2026-11-01T00:00:00Z",
            "end": "2099-01-01T00:00:00Z",
        }
    ]
}
EMPLOYEES = {
    "sre@example.com": {
        "email": "sre@example.com",
        "name": "Sam Reyes",
        "department": "Platform",
        "title": "SRE",
        "status": "active",
    },
    "dev@example.com": {
        "email": "dev@example.com",
        "name": "Dana Evans",
        "department": "Research",
        "title": "Engineer",
        "status": "active",
    },
}


@pytest.fixture(autouse=True)
def _no_secbot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SECBOT_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def gcp() -> AsyncIterator[GcpStandIn]:
    projects = [
        rest_project("sandbox-tools", "1001", {"instance-type": "internal"}),
        rest_project("prod-payments", "2002", {"instance-type": "customer"}),
    ]
    async with GcpStandIn(projects) as server:
        yield server


def providers() -> Script:
    """PagerDuty + HRIS stand-ins on one transport (paths do not overlap)."""
    script = Script().on(
        "/users",
        lambda r: json_reply(
            200, {"users": [u for u in PD_USERS["users"] if u["email"] == r.url.params["query"]]}
        ),
    )
    script.on(
        "/oncalls",
        lambda r: json_reply(
            200, ON_CALL if r.url.params.get_list("user_ids[]") == ["PSRE001"] else {"oncalls": []}
        ),
    )
    for email, record in EMPLOYEES.items():
        script.on(f"/hris/employees/{email}", json_reply(200, record))
    return script


def pipeline(gcp: GcpStandIn, script: Script, rules: Path = RULES) -> Pipeline:
    from secbot.runtime.settings import load_settings

    settings = load_settings(
        gcp_endpoint=gcp.url,
        pagerduty_url="http://pagerduty.local",
        pagerduty_token="pd-token",
        hris_url="http://hris.local/hris",
        hris_token="hris-token",
        whois_enabled=False,
        enrich_retries=0,
        # Roomy: the first GCP call builds the google client in a thread, which took > 3 s
        # once on a 2-core machine running the whole suite (a timeout here tests nothing).
        enrich_provider_timeout=15,
    )
    engine = EnrichmentEngine(build_enrichers(settings, http=script.client()), timeout=20)
    lists = load_lists(rules.parent / "lists") if (rules.parent / "lists").is_dir() else None
    return Pipeline(load_rules(rules, lists=lists), engine, MemoryStore(),
                    default_channel="C0DEFAULT")


def key_alert(uuid: str, project: str, email: str, division: str) -> Alert:
    return Alert.from_hit(
        {
            "kibana.alert.uuid": uuid,
            "@timestamp": "2026-11-01T10:00:00Z",
            "kibana.alert.rule.name": "GCP Service Account Key Creation",
            "cloud": {"project": {"id": project}},
            "user": {"email": email},
            "enriched_employee": {"division": division},
            "gcp.audit.resource_name": f"projects/{project}/serviceAccounts/ci@{project}.iam.x",
        }
    )


def available(decision: Decision) -> dict[str, Any]:
    return {name: e.available for name, e in decision.enrichments.items()}


async def test_internal_project_closes_with_real_results(gcp: GcpStandIn) -> None:
    decision = await pipeline(gcp, providers()).process(
        key_alert("a-1", "sandbox-tools", "dev@example.com", "Research")
    )
    assert decision.auto_close is True and decision.close_reason == "automated_closure"
    assert available(decision) == {"gcp_project": True, "oncall": True, "hr": True}
    assert decision.enrichments["hr"].data["division"] == "Research"


async def test_on_call_platform_engineer_closes_in_customer_project(gcp: GcpStandIn) -> None:
    decision = await pipeline(gcp, providers()).process(
        key_alert("a-2", "prod-payments", "sre@example.com", "Platform")
    )
    assert decision.auto_close is True and decision.channel == "C0PRODSEC"
    assert decision.enrichments["oncall"].data["schedules"] == ("platform-primary",)


async def test_off_call_engineer_in_customer_project_stays_open(gcp: GcpStandIn) -> None:
    decision = await pipeline(gcp, providers()).process(
        key_alert("a-3", "prod-payments", "dev@example.com", "Platform")
    )
    assert decision.auto_close is False and available(decision)["oncall"] is True


async def test_gcp_unavailable_blocks_the_close(gcp: GcpStandIn) -> None:
    # Right-hand side alone would close (on call + Platform); the failed lookup forbids it.
    gcp.failures = [(503, "UNAVAILABLE", {})] * 20
    decision = await pipeline(gcp, providers()).process(
        key_alert("a-4", "prod-payments", "sre@example.com", "Platform")
    )
    assert decision.auto_close is False
    assert available(decision)["gcp_project"] is False
    assert "gcp_project" in decision.explanation


async def test_oncall_unavailable_blocks_the_close(gcp: GcpStandIn) -> None:
    script = providers().on("/users", json_reply(401, {"error": {"message": "Unauthorized"}}))
    decision = await pipeline(gcp, script).process(
        key_alert("a-5", "prod-payments", "sre@example.com", "Platform")
    )
    assert decision.auto_close is False
    assert available(decision)["oncall"] is False and "oncall" in decision.explanation


async def test_hr_unavailable_blocks_the_close(gcp: GcpStandIn) -> None:
    # The project alone would close it; without an HR answer the creator may be a leaver.
    script = providers().on("/hris/employees/dev@example.com", json_reply(500, {}))
    decision = await pipeline(gcp, script).process(
        key_alert("a-6", "sandbox-tools", "dev@example.com", "Research")
    )
    assert available(decision)["hr"] is False
    assert decision.auto_close is False and "hr" in decision.explanation


async def test_terminated_employees_key_in_an_internal_project_stays_open(
    gcp: GcpStandIn,
) -> None:
    # The demo's first alert: before the fix the internal project closed it regardless.
    script = providers().on(
        "/hris/employees/dev@example.com",
        json_reply(200, {**EMPLOYEES["dev@example.com"], "status": "terminated"}),
    )
    decision = await pipeline(gcp, script).process(
        key_alert("a-8", "sandbox-tools", "dev@example.com", "Research")
    )
    assert decision.enrichments["hr"].data["terminated"] is True
    assert decision.auto_close is False and decision.close_reason is None


def hr_rule_dir(tmp_path: Path) -> Path:
    """The DESIGN rule with the division (and terminated flag) taken from the hr enricher."""
    text = (RULES / "gcp_sa_key_created.yaml").read_text(encoding="utf-8")
    text = text.split("\ntests:")[0].replace("id: gcp_sa_key_created", "id: gcp_sa_key_hr")
    old = 'IncludedFields["enriched_employee.division"] == "Platform")'
    new = 'enrichments["hr"]["division"] == "Platform" && !enrichments["hr"]["terminated"])'
    assert old in text
    (tmp_path / "gcp_sa_key_hr.yaml").write_text(text.replace(old, new), encoding="utf-8")
    return tmp_path


async def test_hr_backed_variant_closes_and_hr_unavailable_blocks(
    gcp: GcpStandIn,
    tmp_path: Path,
) -> None:
    rules = hr_rule_dir(tmp_path)
    alert = key_alert("a-7", "prod-payments", "sre@example.com", "Sales")  # alert says Sales
    closed = await pipeline(gcp, providers(), rules).process(alert)
    assert closed.auto_close is True  # the HRIS says Platform, and sre is on call
    failing = providers().on("/hris/employees/sre@example.com", json_reply(503, {}))
    blocked = await pipeline(gcp, failing, rules).process(alert)
    assert blocked.auto_close is False and available(blocked)["hr"] is False
    terminated = providers().on(
        "/hris/employees/sre@example.com",
        json_reply(200, {**EMPLOYEES["sre@example.com"], "status": "terminated"}),
    )
    left = await pipeline(gcp, terminated, rules).process(alert)
    assert left.auto_close is False and left.enrichments["hr"].data["terminated"] is True
