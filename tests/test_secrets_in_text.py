"""Credentials never leave SecBot in text people read: the Slack status line of a failed
auto-close, the audit stream, ``secbot audit`` output and its errors.

The leak these guard against: a Kibana or Redis URL with userinfo (``http://user:pass@host``)
ends up in an error message, and the error message is shown to people.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from stack_support import INDEX, REPO, eventually, posted, running_stack

from secbot.domain.status import AuditAction
from secbot.store.base import AuditEntry
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

KIBANA_PASSWORD = "Kib4na-Pa55word"
REDIS_PASSWORD = "R3dis-Pa55word"


def vpn_login(uid: str) -> dict[str, Any]:
    """Closed automatically by rules/okta_login_new_country.yaml (corporate VPN egress, and HR
    — the alert's enriched_employee fields — knows the person is employed)."""
    return {
        "@timestamp": "2026-11-01T10:00:00.000Z",
        "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "medium",
        "kibana.alert.rule.name": "Okta Sign-In From New Country",
        "user": {"email": "traveller@example.com"},
        "source": {"ip": "192.0.2.10"},
        "enriched_employee": {"employment_status": "active"},
    }


async def test_a_failed_auto_close_tells_slack_and_the_audit_why_without_the_kibana_password(
) -> None:
    def refuse_once(_slack: SlackEmulator, es: ElasticEmulator) -> dict[str, str]:
        # Not retried: a 403 is an answer. The SiemError then names the Kibana URL.
        es.fail_next(1, status=403, target="kibana")
        return {"kibana_url": es.kibana_url.replace("://", f"://secbot:{KIBANA_PASSWORD}@", 1)}

    async with running_stack(before_start=refuse_once) as stack:
        assert KIBANA_PASSWORD in str(stack.settings.kibana_url)  # userinfo really configured
        stack.elastic.index_documents(INDEX, [vpn_login("sec-1")])
        [message] = await posted(stack, "C0IDENTITY")

        async def corrected() -> Any:
            shown = json.dumps(stack.slack.message("C0IDENTITY", message.ts).blocks)
            return shown if "auto-close failed" in shown else None

        shown = await eventually(corrected)
        assert "left open" in shown and "403" in shown and "[REDACTED]" in shown
        sent = json.dumps([call.params for call in stack.slack.calls])
        assert KIBANA_PASSWORD not in sent and "secbot:" not in sent
        assert stack.es_doc("sec-1")["kibana.alert.workflow_status"] == "open"
        store = RedisStore.from_url(stack.settings.redis_url, stack.settings.redis_prefix)
        try:
            trail = await store.read_audit("sec-1")
        finally:
            await store.close()
        assert [e.action for e in trail] == [AuditAction.CLOSED, AuditAction.OPEN]
        assert "auto-close failed" in trail[1].reason
        assert all(KIBANA_PASSWORD not in e.reason for e in trail)


def secbot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SECBOT_")}
    return subprocess.run([sys.executable, "-m", "secbot", *args], cwd=REPO, text=True,
                          capture_output=True, env={**full, **env}, timeout=120)


async def test_secbot_audit_prints_no_secret_from_entries_or_from_its_own_errors() -> None:
    prefix = f"secbot-secrets:{uuid.uuid4().hex}:"
    store = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix)
    try:
        # An entry written by an older SecBot, before notes were redacted at the source.
        await store.append_audit(AuditEntry(
            alert_uuid="sec-2", actor="secbot", action=AuditAction.OPEN,
            reason=f"auto-close failed: Kibana at http://secbot:{KIBANA_PASSWORD}@kb:5601 said 403",
            at=datetime.now(UTC), rule_id="r1",
            extra={"why": f"GET http://kb:5601/x?api_key={KIBANA_PASSWORD}"},
        ))
        env = {"SECBOT_REDIS_PREFIX": prefix}
        as_json = secbot("audit", "sec-2", "--json", env=env)
        table = secbot("audit", "sec-2", env=env)
    finally:
        await store._client.delete(*[k async for k in store._client.scan_iter(prefix + "*")])
        await store.close()
    assert as_json.returncode == 0 and table.returncode == 0, as_json.stderr + table.stderr
    [row] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert row["what"] == "open" and "auto-close failed" in row["why"]
    assert "[REDACTED]" in row["why"] and "[REDACTED]" in row["extra"]["why"]
    assert "[REDACTED]" in table.stdout  # rich shows it instead of reading it as markup
    for output in (as_json.stdout, table.stdout):
        assert KIBANA_PASSWORD not in output

    down = secbot("audit", env={"SECBOT_REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"})
    assert down.returncode == 1
    assert "unavailable" in down.stderr and "[REDACTED]" in down.stderr
    assert REDIS_PASSWORD not in down.stdout + down.stderr
