"""``secbot demo`` never writes outside its own Redis key prefix (README Quick start: the Redis
answering on the default URL may be a real deployment's).

The demo runs as a user runs it (``python -m secbot demo``) against a real, private
``redis-server`` — private so that *every* key in it is the demo's: the shared Redis on 6379 has
other writers. The service's own ``SECBOT_REDIS_PREFIX`` is set, to show the demo ignores it.
A triager's ✅ and a thread command are sent through the emulator's page API, so the
status-change and command paths write their keys too, not only the poller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from reliability_harness import PrivateRedis, free_port, wait_until

REPO = Path(__file__).resolve().parents[1]
DEMO_PREFIX = "secbot-demo:"  # README / secbot.demo.app.DEMO_PREFIX
SERVICE_PREFIX = "secbot-prod:"

pytestmark = pytest.mark.skipif(not PrivateRedis.available(), reason="needs redis-server")


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


def demo_env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECBOT_", "SLACK_"))}
    env.update({"SECBOT_REDIS_URL": redis_url, "SECBOT_REDIS_PREFIX": SERVICE_PREFIX})
    return env


async def all_keys(url: str) -> list[str]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted([key async for key in client.scan_iter(match="*", count=1000)])
    finally:
        await client.aclose()


def assert_one_demo_prefix(keys: list[str]) -> None:
    assert keys, "the demo wrote nothing to Redis: the test would prove nothing"
    outside = [k for k in keys if not k.startswith(DEMO_PREFIX)]
    assert outside == [], f"keys outside {DEMO_PREFIX!r}: {outside[:10]}"
    # One run, one prefix (secbot-demo:<run id>:), so a run never sees another's markers.
    runs = {k[len(DEMO_PREFIX):].split(":", 1)[0] for k in keys}
    assert len(runs) == 1, runs


async def _first_alert(page: httpx.AsyncClient, channel: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        try:
            body = (await page.get("/_emulator/messages", params={"channel": channel})).json()
        except httpx.HTTPError:
            return None
        alerts = [m for m in body.get("messages", []) if m.get("metadata")]
        return alerts[0] if alerts else None

    return await wait_until(found, timeout=60, what=f"an alert message in {channel}")


async def _triage_through_the_page(page: httpx.AsyncClient) -> None:
    """alice (a triager) closes one alert with ✅ and asks ``alert`` in its thread."""
    message = await _first_alert(page, "C0SECALERTS")  # also waits for the demo to listen
    users = (await page.get("/_emulator/users")).json()["users"]
    alice = next(u["id"] for u in users if u["name"] == "alice")
    react = {"user": alice, "reaction": "white_check_mark", "channel": "C0SECALERTS",
             "ts": message["ts"]}
    assert (await page.post("/_emulator/react", json=react)).json()["ok"]
    mention = {"user": alice, "text": "<@U0SECBOT> alert", "channel": "C0SECALERTS",
               "thread_ts": message["ts"]}
    assert (await page.post("/_emulator/mention", json=mention)).json()["ok"]

    async def answered() -> bool:
        calls = (await page.get("/_emulator/calls", params={"method": "chat.update"})).json()
        return bool(calls.get("calls"))

    await wait_until(answered, timeout=30, what="the ✅ to edit the alert message")


async def test_the_web_demo_writes_only_under_its_own_prefix(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "secbot", "demo", "--port", str(port), "--interval", "1",
        "--duration", "60", cwd=REPO, env=demo_env(private_redis.url), stdout=log,
        stderr=log, start_new_session=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as page:
            await _triage_through_the_page(page)
        await asyncio.sleep(2)  # a couple more polls and new alerts
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()[-3000:]
    keys = await all_keys(private_redis.url)
    assert_one_demo_prefix(keys)
    assert any(":audit" in k for k in keys), keys  # the ✅ really reached the store


async def test_the_console_demo_writes_only_under_its_own_prefix(
    private_redis: PrivateRedis,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "secbot", "demo", "--console", "--count", "12", cwd=REPO,
        env=demo_env(private_redis.url), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "auto-closed" in out.decode()
    assert_one_demo_prefix(await all_keys(private_redis.url))
