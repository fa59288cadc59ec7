"""Kibana 9.2+ closing reasons: defaults, custom reasons in rules, and what happens when Kibana
refuses one. Through the real app against the Elastic stand-in, which models 9.2: the
documented reasons, a custom reason only when listed in the advanced settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from stack_support import INDEX, REPO, TRIAGER, Stack, eventually, posted, running_stack

from secbot.domain.status import AuditAction
from secbot.rules.loader import load_rules
from secbot.runtime.settings import load_settings
from secbot.runtime.siem_clients import build_elastic_siem
from secbot.siem.base import SiemError
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

CUSTOM = "corporate_vpn_exit"


def rule_text(rule_id: str, reason: str | None) -> str:
    reason_line = f"\n  reason: {json.dumps(reason)}" if reason is not None else ""
    return f"""id: {rule_id}
name: VPN sign-in
match: {{rule_name: VPN Sign-In {rule_id}}}
fields: [source.ip]
route: {{channel: C0IDENTITY}}
auto_close:
  when: 'cidr_match(IncludedFields["source.ip"], "192.0.2.0/24")'{reason_line}
"""


def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "vpn_custom.yaml").write_text(rule_text("vpn_custom", CUSTOM))
    (tmp_path / "vpn_default.yaml").write_text(rule_text("vpn_default", None))
    return tmp_path


def vpn_alert(uid: str, rule_id: str) -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-01T10:00:00.000Z",
        "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open",
        "kibana.alert.rule.name": f"VPN Sign-In {rule_id}",
        "source": {"ip": "192.0.2.10"},
    }


async def audit_of(stack: Stack, uid: str) -> list[tuple[AuditAction, str]]:
    store = RedisStore.from_url(stack.settings.redis_url, stack.settings.redis_prefix)
    try:
        return [(e.action, e.reason) for e in await store.read_audit(uid)]
    finally:
        await store.close()


async def closed(stack: Stack, uid: str) -> bool:
    return stack.es_doc(uid).get("kibana.alert.workflow_status") == "closed"


async def test_auto_close_and_check_mark_use_the_documented_defaults(tmp_path: Path) -> None:
    async with running_stack(load_rules(rules_dir(tmp_path))) as stack:
        stack.elastic.index_documents(INDEX, [vpn_alert("cr-1", "vpn_default"),
                                              {**vpn_alert("cr-2", "vpn_default"),
                                               "source": {"ip": "198.51.100.1"}}])
        messages = await posted(stack, "C0IDENTITY", count=2)
        await eventually(lambda: closed(stack, "cr-1"))
        assert stack.es_doc("cr-1")["kibana.alert.workflow_reason"] == "automated_closure"
        assert await audit_of(stack, "cr-1") == [(AuditAction.CLOSED, "automated_closure")]
        [person] = [m for m in messages if "cr-2" in json.dumps(m.blocks)]
        stack.slack.user_reacts(TRIAGER, "white_check_mark", "C0IDENTITY", person.ts)
        await eventually(lambda: closed(stack, "cr-2"))
        assert stack.es_doc("cr-2")["kibana.alert.workflow_reason"] == "benign_positive"


async def test_a_custom_reason_kibana_knows_closes_with_it(tmp_path: Path) -> None:
    def configure(_slack: SlackEmulator, es: ElasticEmulator) -> None:
        es.kibana.custom_reasons = [CUSTOM]  # securitySolution:detectionsCloseReasons

    rules = load_rules(rules_dir(tmp_path))
    async with running_stack(rules, before_start=configure) as stack:
        stack.elastic.index_documents(INDEX, [vpn_alert("cr-3", "vpn_custom")])
        await posted(stack, "C0IDENTITY")
        await eventually(lambda: closed(stack, "cr-3"))
        assert stack.es_doc("cr-3")["kibana.alert.workflow_reason"] == CUSTOM
        assert await audit_of(stack, "cr-3") == [(AuditAction.CLOSED, CUSTOM)]


async def test_a_custom_reason_kibana_refuses_leaves_the_alert_open_and_says_so(
    tmp_path: Path,
) -> None:
    async with running_stack(load_rules(rules_dir(tmp_path))) as stack:
        stack.elastic.index_documents(INDEX, [vpn_alert("cr-4", "vpn_custom")])
        [message] = await posted(stack, "C0IDENTITY")

        async def corrected() -> str | None:
            shown = stack.slack.message("C0IDENTITY", message.ts)
            text = json.dumps(shown.blocks)
            done = "auto-close failed" in text and "white_check_mark" not in shown.reactions
            return text if done else None

        text = await eventually(corrected)
        # The person reading the message learns it is open, why, and what would fix it.
        assert "left open" in text and CUSTOM in text
        assert "securitySolution:detectionsCloseReasons" in text
        assert stack.es_doc("cr-4")["kibana.alert.workflow_status"] == "open"
        trail = await audit_of(stack, "cr-4")
        assert [a for a, _ in trail] == [AuditAction.CLOSED, AuditAction.OPEN]
        assert trail[0][1] == CUSTOM and "invalid closing reason" in trail[1][1]
        # A refused *value* did not switch reasons off: a person's ✅ still carries one.
        stack.slack.user_reacts(TRIAGER, "white_check_mark", "C0IDENTITY", message.ts)
        await eventually(lambda: closed(stack, "cr-4"))
        assert stack.es_doc("cr-4")["kibana.alert.workflow_reason"] == "benign_positive"


async def test_a_refused_reason_value_is_an_error_not_a_close_without_reason() -> None:
    # Kibana's body schema refuses a reason over 1024 characters with a 400 that mentions
    # "reason". Only "Unrecognized key ... 'reason'" means an older Kibana without reasons.
    async with ElasticEmulator.running() as es:
        es.index_documents(INDEX, [vpn_alert("cr-5", "x")])
        siem = build_elastic_siem(load_settings(elasticsearch_url=es.url,
                                                kibana_url=es.kibana_url))
        try:
            with pytest.raises(SiemError, match="HTTP 400"):
                await siem.set_status(["cr-5"], "closed", reason="r" * 1025, user="U0TRIAGER")
            assert (es.document(INDEX, "cr-5") or {})["kibana.alert.workflow_status"] == "open"
            await siem.set_status(["cr-5"], "closed", reason="false_positive", user="U0TRIAGER")
            doc = es.document(INDEX, "cr-5") or {}
            assert doc["kibana.alert.workflow_reason"] == "false_positive"
        finally:
            await siem.close()


def validate(tmp_path: Path, reason: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "vpn_custom.yaml").write_text(rule_text("vpn_custom", reason))
    return subprocess.run([sys.executable, "-m", "secbot", "rules", "validate", str(tmp_path)],
                          cwd=REPO, text=True, capture_output=True, timeout=120)


def test_rules_validate_takes_any_reason_of_1_to_1024_characters(tmp_path: Path) -> None:
    for good in (CUSTOM, "true_positive", "Closed: known scanner (see RUNBOOK-12)", "x" * 1024):
        result = validate(tmp_path, good)
        assert result.returncode == 0, result.stdout + result.stderr
    for bad in ("", "   ", "x" * 1025):
        result = validate(tmp_path, bad)
        assert result.returncode == 1
        assert f"{tmp_path / 'vpn_custom.yaml'}:8:" in result.stdout + result.stderr
