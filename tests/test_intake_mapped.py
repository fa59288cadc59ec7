"""A mapped source end to end through the real service (issue 12, DESIGN.md §11).

``secbot run`` as a process against the Slack and Elastic stand-ins; Threat Stack-shaped
alerts pushed over HTTP to ``/v1/alerts/threatstack``:

- routed by ``rules/threatstack_host_alert.yaml`` (``match.source``), kept in SecBot's own
  alerts index ``secbot-alerts`` with Kibana's workflow fields, and closed from Slack with ✅:
  the status lands in that index (credited, with the reason), never in Kibana's API;
- an auto-close of a mapped alert closes it in the own index too;
- the same alert pushed again after it was closed is neither reposted nor reopened;
- a SIEM alert with the same title is not taken by the Threat Stack rule.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_harness import (
    INDEX,
    REPO,
    TRIAGER,
    alert_post_counts,
    bot_env,
    delete_prefix,
    free_port,
    posted_ts,
    reaped,
    start_bot,
    unique_prefix,
    utc_stamp,
    wait_until,
)

from secbot.siem.base import OWN_ALERTS_INDEX
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

pytestmark = pytest.mark.slow

TS_TOKEN = "push-token-threatstack-0123456789"
SHARED_REDIS = "redis://127.0.0.1:6379/0"
PRODSEC = "C0PRODSEC"  # where the Threat Stack rule posts


def threatstack_alert(ident: str, title: str, hostname: str, severity: int = 2) -> dict[str, Any]:
    """What Threat Stack's webhook sends for one alert (epoch-millis ``created_at``)."""
    return {"id": ident, "title": title, "severity": severity,
            "created_at": int(time.time() * 1000), "hostname": hostname,
            "server_or_region": "eu-west-1", "rule_id": "r-77", "organization_id": "org-1"}


async def push(url: str, alerts: list[dict[str, Any]]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.post(f"{url}/v1/alerts/threatstack", json={"alerts": alerts},
                               headers={"Authorization": f"Bearer {TS_TOKEN}"})


def own_doc(es: ElasticEmulator, uuid: str) -> dict[str, Any]:
    return es.document(OWN_ALERTS_INDEX, uuid) or {}


async def test_mapped_alert_routed_by_rule_kept_and_closed_from_slack(tmp_path: Path) -> None:
    prefix = unique_prefix("intake-mapped")
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        port, http_port = free_port(), free_port()
        url = f"http://127.0.0.1:{port}"
        env = bot_env(slack, es, http_port=http_port, prefix=prefix,
                      SECBOT_INTAKE_PORT=str(port),
                      SECBOT_INTAKE_TOKENS=f"threatstack={TS_TOKEN}",
                      SECBOT_SOURCES_DIR=str(REPO / "sources"))
        try:
            bot = await start_bot(env, tmp_path, "mapped")
            async with reaped(bot):
                await bot.wait_healthy()
                await _close_from_slack(slack, es, url, bot.log_tail)
                await _auto_close_and_resend(slack, es, url, bot.log_tail)
                await _siem_alert_is_not_the_sources(slack, es, bot.log_tail)
                await _metrics_and_health(url, f"http://127.0.0.1:{http_port}")
        finally:
            await delete_prefix(SHARED_REDIS, prefix)


async def _close_from_slack(slack: SlackEmulator, es: ElasticEmulator, url: str,
                            explain: Any) -> None:
    answer = await push(url, [threatstack_alert("ts-1", "Suspicious outbound connection",
                                                "web-prod-3")])
    assert (answer.status_code, answer.json()) == (202, {"accepted": 1})
    uuid = "threatstack:ts-1"

    async def message() -> str | None:
        return posted_ts(slack, PRODSEC).get(uuid)

    ts = await wait_until(message, timeout=10, what="Threat Stack alert in #prod-sec",
                          explain=explain)
    stored = own_doc(es, uuid)
    assert stored["kibana.alert.workflow_status"] == "open"
    assert stored["secbot.source"] == "threatstack"
    assert stored["kibana.alert.rule.name"] == "Suspicious outbound connection"
    assert es.document(INDEX, uuid) is None  # not in Kibana's alerts index

    kibana_before = [r for r in es.requests if r[0] == "kibana"]
    slack.user_reacts(TRIAGER, "white_check_mark", PRODSEC, ts)

    async def closed() -> bool:
        return own_doc(es, uuid).get("kibana.alert.workflow_status") == "closed"

    await wait_until(closed, timeout=10, what="✅ closing the alert in secbot-alerts",
                     explain=explain)
    doc = own_doc(es, uuid)
    assert doc["kibana.alert.workflow_reason"] == "benign_positive"
    assert doc["kibana.alert.workflow_user"] == TRIAGER
    assert doc["kibana.alert.workflow_status_updated_at"]

    async def tagged() -> bool:
        return any(str(t).startswith("closed_by:")
                   for t in own_doc(es, uuid).get("kibana.alert.workflow_tags") or [])

    await wait_until(tagged, timeout=10, what="closed_by tag", explain=explain)
    # Status and tags went to the own index; Kibana's detection API was never asked.
    kibana_after = [r for r in es.requests if r[0] == "kibana"]
    assert kibana_after == kibana_before

    async def edited() -> bool:
        found = [m for m in slack.messages(PRODSEC) if m.ts == ts]
        return bool(found) and "Closed by" in str(found[0].blocks)

    await wait_until(edited, timeout=10, what="message edited to Closed by", explain=explain)


async def _auto_close_and_resend(slack: SlackEmulator, es: ElasticEmulator, url: str,
                                 explain: Any) -> None:
    package = threatstack_alert("ts-2", "Package installed (libssl3)", "ci-runner-17", 3)
    assert (await push(url, [package])).status_code == 202
    uuid = "threatstack:ts-2"

    async def auto_closed() -> bool:
        doc = own_doc(es, uuid)
        return (doc.get("kibana.alert.workflow_status") == "closed"
                and alert_post_counts(slack)[uuid] == 1)

    await wait_until(auto_closed, timeout=10, what="auto-close in secbot-alerts", explain=explain)
    assert own_doc(es, uuid)["kibana.alert.workflow_reason"] == "automated_closure"
    # Threat Stack sends both again (a retry on its side): nothing reposted, nothing reopened.
    again = [package, threatstack_alert("ts-1", "Suspicious outbound connection", "web-prod-3")]
    assert (await push(url, again)).status_code == 202
    await asyncio.sleep(1.5)
    counts = alert_post_counts(slack)
    assert (counts["threatstack:ts-1"], counts[uuid]) == (1, 1), explain()
    assert own_doc(es, "threatstack:ts-1")["kibana.alert.workflow_status"] == "closed"
    assert own_doc(es, uuid)["kibana.alert.workflow_status"] == "closed"


async def _siem_alert_is_not_the_sources(slack: SlackEmulator, es: ElasticEmulator,
                                         explain: Any) -> None:
    siem_alert = {"@timestamp": utc_stamp(datetime.now(UTC)), "kibana.alert.uuid": "siem-same",
                  "kibana.alert.workflow_status": "open",
                  "kibana.alert.rule.name": "Suspicious outbound connection",
                  "kibana.alert.severity": "high", "title": "Suspicious outbound connection",
                  "hostname": "web-prod-3"}
    es.index_documents(INDEX, [siem_alert])

    async def in_default() -> bool:
        return "siem-same" in posted_ts(slack, "C0DEFAULT")

    await wait_until(in_default, timeout=10, what="SIEM alert in the default channel",
                     explain=explain)
    assert "siem-same" not in posted_ts(slack, PRODSEC)


async def _metrics_and_health(url: str, ops: str) -> None:
    """Intake answers on /metrics by source and code; the consumer's backlog on /healthz."""
    async with httpx.AsyncClient(timeout=5) as http:
        refused = await http.post(f"{url}/v1/alerts/threatstack", json={"id": "x"},
                                  headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401
        assert (await http.post(f"{url}/v1/alerts/no-such-source", json={})).status_code == 404
        metrics = (await http.get(f"{ops}/metrics")).text
        health = (await http.get(f"{ops}/healthz")).json()
    assert 'secbot_intake_requests_total{code="202",source="threatstack"} 3.0' in metrics
    assert 'secbot_intake_requests_total{code="401",source="threatstack"} 1.0' in metrics
    assert 'secbot_intake_requests_total{code="404",source="(unknown)"} 1.0' in metrics
    assert 'secbot_intake_alerts_accepted_total{source="threatstack"} 4.0' in metrics
    assert health["checks"]["intake"] == {"ok": True, "pending": 0}
