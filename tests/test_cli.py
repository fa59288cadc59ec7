"""The command-line contract (DESIGN.md §3), run as a user would: ``python -m secbot``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "secbot" / "data" / "sample_alerts.ndjson"


def secbot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SECBOT_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "secbot", *args],
        cwd=REPO,
        text=True,
        capture_output=True,
        env=full_env,
        timeout=120,
    )


def test_validate_passes_on_shipped_rules() -> None:
    result = secbot("rules", "validate", "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules OK" in result.stdout


def test_validate_fails_with_path_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "id: bad\nname: Bad\nmatch: {rule_name: x}\nauto_close:\n  when: alert.__class__\n"
    )
    result = secbot("rules", "validate", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:5: " in result.stdout


def test_rules_test_ends_with_counts_line() -> None:
    result = secbot("rules", "test", "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    passed, failed = (int(part.split()[0]) for part in last.split(", "))
    assert failed == 0 and passed >= 10
    assert last == f"{passed} passed, 0 failed"


def test_rules_test_reports_a_failing_expectation(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "id: r\nname: R\nmatch: {rule_name: X}\nroute: {channel: C0X}\ntests:\n"
        "  - name: wrong expectation\n    alert: {kibana.alert.rule.name: Y}\n"
        "    expect: {matched: true}\n"
    )
    result = secbot("rules", "test", str(tmp_path))
    assert result.returncode == 1
    assert "expected matched=True, got False" in result.stdout
    assert result.stdout.strip().endswith("0 passed, 1 failed")


def expected_backtest() -> dict[str, dict[str, Any]]:
    """Independent count of what the bundled samples should give, from the raw data."""
    gcp = {"matched": 0, "auto": 0, "seen": set(), "dedup": 0, "risky": 0}
    for line in SAMPLES.read_text().splitlines():
        hit = json.loads(line)
        src = hit["_source"]
        if src["kibana.alert.rule.name"] != "GCP Service Account Key Creation":
            continue
        gcp["matched"] += 1
        key = (src["user"]["email"], src["cloud"]["project"]["id"])
        gcp["dedup"] += key in gcp["seen"]
        gcp["seen"].add(key)
        enr = hit.get("enrichments", {})
        internal = enr["gcp_project"]["labels"].get("instance-type") == "internal"
        oncall = enr["oncall"]["on_call"] and src["enriched_employee"]["division"] == "Platform"
        # A leaver's key never closes, and without an HR answer nobody is known to be employed.
        employed = (enr.get("hr") or {}).get("terminated") is False
        if (internal or oncall) and employed:
            gcp["auto"] += 1
            gcp["risky"] += src["kibana.alert.workflow_status"] == "acknowledged"
    okta = {"matched": 0, "auto": 0}
    for line in SAMPLES.read_text().splitlines():
        hit = json.loads(line)
        src = hit["_source"]
        if src["kibana.alert.rule.name"] != "Okta Sign-In From New Country":
            continue
        okta["matched"] += 1
        vpn = src["source"]["ip"].startswith("192.0.2.")
        # A VPN sign-in closes only for someone HR knows to be employed: no HR answer, no close.
        okta["auto"] += vpn and (hit.get("enrichments", {}).get("hr") or {}).get(
            "terminated"
        ) is False
    return {"gcp_sa_key_created": gcp, "okta_login_new_country": okta}


def test_backtest_json_counts_match_the_data() -> None:
    result = secbot("rules", "backtest", "--alerts", str(SAMPLES), "rules", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["rule_id"]: row for row in report["rules"]}
    assert report["alerts"] == len(SAMPLES.read_text().splitlines())
    assert sum(r["matched"] for r in rows.values()) == report["alerts"]  # nothing dropped
    want = expected_backtest()["gcp_sa_key_created"]
    got = rows["gcp_sa_key_created"]
    assert got["matched"] == want["matched"] > 0
    assert got["deduplicated"] == want["dedup"]
    assert got["would_post"] == want["matched"] - want["dedup"]
    assert got["would_auto_close"] == want["auto"] > 0
    assert len(got["risky_auto_closes"]) == want["risky"]
    okta, okta_want = rows["okta_login_new_country"], expected_backtest()["okta_login_new_country"]
    assert okta["matched"] == okta_want["matched"] > 0
    # The bundled Okta samples carry no HR answer: none of their VPN sign-ins may close (a
    # terminated employee's among them), so no risky auto-close either.
    assert okta["would_auto_close"] == okta_want["auto"]
    assert okta["risky_auto_closes"] == []
    assert rows["threat_intel_match"]["matched"] >= 2  # the two real 8.1.0 alerts
    assert rows["endpoint_malware"]["matched"] >= 1  # the real 8.8.0 alert


def test_backtest_table_for_people() -> None:
    result = secbot("rules", "backtest", "--alerts", str(SAMPLES), "rules")
    assert result.returncode == 0, result.stderr
    assert "gcp_sa_key_created" in result.stdout and "would auto-close" in result.stdout


def test_backtest_bad_input_names_file_and_line(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.ndjson"
    alerts.write_text('{"kibana.alert.uuid": "a"}\nnot json\n')
    result = secbot("rules", "backtest", "--alerts", str(alerts), "rules")
    assert result.returncode == 1
    assert f"{alerts}:2:" in result.stderr


def test_schema_is_json() -> None:
    result = secbot("rules", "schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "SecBot rule"


def test_demo_runs_the_whole_loop_on_embedded_defaults() -> None:
    result = secbot("demo", "--console", "--count", "12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "auto-closed" in result.stdout
    assert "gcp_sa_key_created" in result.stdout and "Demo summary" in result.stdout


async def test_audit_prints_an_alerts_trail() -> None:
    from datetime import UTC, datetime
    from uuid import uuid4

    from secbot.domain.status import AuditAction
    from secbot.store.base import AuditEntry
    from secbot.store.redis import RedisStore

    prefix = f"secbot-audit-test:{uuid4().hex}:"
    store = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix)
    try:
        for actor, action in (("secbot", AuditAction.CLOSED), ("alice@example.com",
                                                                AuditAction.OPEN)):
            await store.append_audit(AuditEntry(
                alert_uuid="au-1", actor=actor, action=action, reason="r",
                at=datetime.now(UTC), rule_id="rule-x"))
        await store.append_audit(AuditEntry(alert_uuid="au-2", actor="bob",
                                            action=AuditAction.CLOSED,
                                            reason="r", at=datetime.now(UTC)))
        result = secbot("audit", "au-1", "--json", env={"SECBOT_REDIS_PREFIX": prefix})
        table = secbot("audit", "au-1", env={"SECBOT_REDIS_PREFIX": prefix})
    finally:
        client = store._client
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await store.close()
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    # The enum is printed as the plain status string (DESIGN.md §3).
    assert [(r["who"], r["what"]) for r in rows] == [("secbot", "closed"),
                                                      ("alice@example.com", "open")]
    assert all(type(r["what"]) is str for r in rows)
    assert "alice@example.com" in table.stdout and "au-2" not in table.stdout


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: A password with rich markup in it: shown literally it would read "[bold]"; as markup it
#: would vanish (or, for a closing tag, crash the command with a traceback).
MARKED_PASSWORD = "S3cret[bold]Pa55"
#: What a URL carries (userinfo brackets must be percent-encoded there).
URL_PASSWORD = "S3cret-Pa55"


def test_an_unreachable_redis_with_a_password_fails_without_showing_it() -> None:
    url = f"redis://:{URL_PASSWORD}@127.0.0.1:{free_port()}/0"
    result = secbot("audit", env={"SECBOT_REDIS_URL": url})
    assert result.returncode == 1, result.stderr
    assert "S3cret" not in result.stderr + result.stdout
    assert "error: Redis at redis://[REDACTED]@127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_error_is_redacted_and_shown_literally() -> None:
    # A settings error quotes the value it refused: a Redis URL typed into the wrong variable
    # must not show its password, and its brackets must neither vanish nor break the line.
    url = f"redis://:{MARKED_PASSWORD}@cache.internal:6379/0 [/]"
    for args in (("audit",), ("send", "--source", "elastic")):
        result = secbot(*args, env={"SECBOT_POLL_INTERVAL": url})
        assert result.returncode == 2, (args, result.stderr)
        assert "S3cret" not in result.stderr, args
        assert "SECBOT_POLL_INTERVAL" in result.stderr and "[REDACTED]" in result.stderr, args
        assert "@cache.internal:6379/0 [/]" in result.stderr, args  # brackets as typed
        assert "Traceback" not in result.stderr, args


def test_a_missing_alerts_file_is_named_literally() -> None:
    result = secbot("rules", "backtest", "--alerts", "alerts-[red]2026[/red].ndjson", "rules")
    assert result.returncode == 1
    assert "error: alerts-[red]2026[/red].ndjson: no such alerts file" in result.stderr
