"""``secbot run`` as a real process: ready on /healthz, posts, drains on SIGTERM, exits 0,
logs JSON, and never logs a secret."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import httpx
from shipped import SHIPPED_RUN_ENV

from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

INDEX = ".alerts-security.alerts-default"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


def run_env(slack: SlackEmulator, port: int, **extra: str) -> dict[str, str]:
    """The environment of a ``secbot run`` process wired to the emulators."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECBOT_", "SLACK_"))}
    env.update(
        {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "SECBOT_SLACK_API_URL": slack.api_url,
            "SECBOT_DEFAULT_CHANNEL": "C0DEFAULT",
            "SECBOT_POLL_INTERVAL": "0.3",
            "SECBOT_HTTP_PORT": str(port),
            **SHIPPED_RUN_ENV,
            "SECBOT_REDIS_PREFIX": f"secbot-run:{uuid.uuid4().hex}:",
            **extra,
        }
    )
    return env


async def start_run(
    env: dict[str, str], cwd: Path, output: int | None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "secbot", "run", env=env, cwd=cwd, stdout=output, stderr=output
    )


async def test_run_serves_health_posts_and_drains_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    async with SlackEmulator.running() as slack, ElasticEmulator.running(api_key="c2VjcmV0") as es:
        env = run_env(
            slack,
            port,
            SECBOT_ELASTICSEARCH_URL=es.url,
            SECBOT_ELASTICSEARCH_API_KEY="c2VjcmV0",
            SECBOT_KIBANA_URL=es.kibana_url,
        )
        proc = await start_run(env, tmp_path, asyncio.subprocess.PIPE)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

                async def ready() -> bool:
                    try:
                        return (await http.get("/healthz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_for(ready)
                health = (await http.get("/healthz")).json()
                assert health["status"] == "ok"
                es.index_documents(
                    INDEX,
                    [
                        {
                            "@timestamp": "2026-11-01T10:00:00Z",
                            "kibana.alert.uuid": "run-1",
                            "kibana.alert.workflow_status": "open",
                            "kibana.alert.rule.name": "Odd",
                        }
                    ],
                )

                async def posted() -> bool:
                    return bool(slack.messages("C0DEFAULT"))

                await wait_for(posted)
                metrics = (await http.get("/metrics")).text
                assert 'secbot_alerts_posted_total{rule="(unmatched)"} 1.0' in metrics
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
        assert code == 0
        assert proc.stderr is not None
        logs = (await proc.stderr.read()).decode()
    lines = [json.loads(line) for line in logs.splitlines()]  # every line is a JSON object
    assert all(isinstance(entry, dict) for entry in lines)
    assert any(entry.get("event") == "stopped" for entry in lines)
    for secret in (slack.bot_token, slack.app_token, "c2VjcmV0"):
        assert secret not in logs


async def test_degraded_health_while_the_siem_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    async with SlackEmulator.running() as slack:
        env = run_env(slack, port, SECBOT_ELASTICSEARCH_URL=f"http://127.0.0.1:{free_port()}")
        proc = await start_run(env, tmp_path, asyncio.subprocess.DEVNULL)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

                async def answering() -> bool:
                    try:
                        return (await http.get("/healthz")).status_code == 503
                    except httpx.TransportError:
                        return False

                await wait_for(answering, timeout=40)
                body = (await http.get("/healthz")).json()
            assert body["status"] == "degraded"
            assert body["checks"]["siem"]["ok"] is False
            assert body["checks"]["socket_mode"]["ok"] is True
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
