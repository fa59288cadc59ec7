"""``secbot demo`` shows both paths (issue 12): polled SIEM alerts and Threat Stack-style
alerts pushed through the real HTTP intake, kept in the own store and closable with ✅.

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
