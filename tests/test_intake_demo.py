"""``secbot demo`` shows both paths (issue 12): polled SIEM alerts and Threat Stack-style
alerts pushed through the real HTTP intake, kept in the own store and closable with ✅; and it
pages and tickets through its PagerDuty and Jira stand-ins (issue 13).

Runs the demo as a process (no accounts; Redis on 127.0.0.1:6379 for the intake stream) and
reads the channels through the Slack emulator's page API, as the browser does.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_harness import REPO, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_process(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECBOT_", "SLACK_"))}
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "secbot", "demo", "--port", str(port), "--count", "6",
         "--interval", "0.5", "--duration", "40"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


async def _messages(http: httpx.AsyncClient, base: str, channel: str) -> list[dict[str, Any]]:
    try:
        answer = await http.get(f"{base}/_emulator/messages", params={"channel": channel})
    except httpx.TransportError:  # the demo is still starting
        return []
    return list(answer.json()["messages"]) if answer.status_code == 200 else []


def _uuid(message: dict[str, Any]) -> str:
    meta = message.get("metadata") or {}
    return str((meta.get("event_payload") or {}).get("alert_uuid") or "")


async def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with_result = await check()
        if with_result:
            return with_result
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_demo_pushes_threatstack_alerts_and_they_close_from_slack(
    demo_process: str,
) -> None:
    base = demo_process
    async with httpx.AsyncClient(timeout=5) as http:

        async def pushed() -> dict[str, Any] | None:
            for channel in ("C0PRODSEC", "C0SECCRIT"):
                for message in await _messages(http, base, channel):
                    status = json.dumps(message.get("blocks"))
                    if _uuid(message).startswith("threatstack:") and "Closed" not in status:
                        return {**message, "channel": channel}
            return None

        message = await _wait(pushed, 30, "a pushed Threat Stack alert in the demo")

        async def polled() -> bool:
            channels = ("C0PRODSEC", "C0SECCRIT", "C0IDENTITY", "C0SECALERTS", "C0ENDPOINT")
            for channel in channels:
                for found in await _messages(http, base, channel):
                    if _uuid(found) and not _uuid(found).startswith("threatstack:"):
                        return True
            return False

        assert await _wait(polled, 10, "a polled SIEM alert beside it")
        react = await http.post(f"{base}/_emulator/react", json={
            "user": "U0TRIAGER", "reaction": "white_check_mark",
            "channel": message["channel"], "ts": message["ts"]})
        assert react.status_code == 200

        async def closed() -> bool:
            for found in await _messages(http, base, message["channel"]):
                if found["ts"] == message["ts"]:
                    return "Closed by" in json.dumps(found.get("blocks"))
            return False

        assert await _wait(closed, 15, "the ✅ closing the pushed alert")


def _destinations_line(message: dict[str, Any]) -> str:
    for block in message.get("blocks") or []:
        if block.get("block_id") == "secbot_destinations":
            return " ".join(str(e.get("text", "")) for e in block.get("elements", []))
    return ""


async def test_demo_pages_and_tickets_the_terminated_employee(demo_process: str) -> None:
    """Terminated Bob's alerts match the shipped rules' ``escalate`` entries: the demo's
    PagerDuty stand-in has the incident (by the alert's uuid), its Jira stand-in the issue, and
    the message says ``🚨 paged · Jira SEC-n`` linking the issue's page; the demo page's header
    links both stand-ins' pages."""
    base = demo_process
    async with httpx.AsyncClient(timeout=5) as http:

        async def links() -> dict[str, str] | None:
            try:
                status = (await http.get(f"{base}/_emulator/status")).json()
            except httpx.TransportError:
                return None
            found = {link["label"]: link["url"] for link in status.get("links", [])}
            return found if len(found) == 2 else None

        pages = await _wait(links, 30, "the demo page's links to PagerDuty and Jira")
        pagerduty, jira = pages["PagerDuty incidents"], pages["Jira issues"]

        async def escalated() -> dict[str, Any] | None:
            for channel in ("C0SECALERTS", "C0SECCRIT", "C0PRODSEC"):
                for message in await _messages(http, base, channel):
                    line = _destinations_line(message)
                    if "🚨 paged · <" in line and "bob@example.com" in json.dumps(message):
                        return message
            return None

        message = await _wait(escalated, 30, "Bob's alert paged and ticketed in the message")
        line = _destinations_line(message)
        key = line.split("|Jira ", 1)[1].split(">", 1)[0]
        jira_base = jira.removesuffix("/issues/")
        assert f"<{jira_base}/browse/{key}|Jira {key}>" in line, line
        incidents = (await http.get(pagerduty)).text
        assert _uuid(message) in incidents and "triggered" in incidents
        issue = await http.get(f"{jira_base}/browse/{key}")
        assert issue.status_code == 200 and "bob@example.com" in issue.text
        assert " in Slack:" in issue.text  # the comment with the message's permalink
        assert f"/browse/{key}" in (await http.get(jira)).text
