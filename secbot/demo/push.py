"""The demo's push path: Threat Stack-style alerts sent to the real intake over HTTP.

Beside the alerts the embedded SIEM keeps producing (the poll path), the demo plays Threat
Stack's webhook: every few seconds one alert is POSTed to ``/v1/alerts/threatstack`` with a
per-run demo token, exactly as a real sender would. It then goes through the durable intake
stream, SecBot's own alerts store and ``rules/threatstack_host_alert.yaml``, so both paths
are visible in the channels (a ✅ on it closes it in the own store).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import time
from dataclasses import dataclass
from itertools import count as counter
from pathlib import Path
from typing import Any

import httpx
import structlog
from pydantic import SecretStr

from secbot.intake.sources import SourceLoadError, load_source

log = structlog.stdlib.get_logger(__name__)

SOURCE = "threatstack"
#: (title, hostname, Threat Stack severity 1-3): production findings stay open, package
#: installs on CI runners are closed by the rule, a root login is critical.
SCENARIOS = (
    ("Suspicious outbound connection", "web-prod-3", 2),
    ("Package installed (libssl3)", "ci-runner-17", 3),
    ("Root login from a new address", "db-prod-1", 1),
    ("Package installed (netcat)", "web-prod-4", 3),
    ("Unexpected process: xmrig", "batch-prod-2", 1),
)


@dataclass(frozen=True)
class DemoIntake:
    """Where the demo's intake listens and the token its pusher uses (fresh per run)."""

    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/alerts/{SOURCE}"


def intake_settings(intake: DemoIntake | None) -> dict[str, Any]:
    """The settings update that opens the demo's intake, or keeps it closed (a developer's
    exported ``SECBOT_INTAKE_TOKENS`` must not open a port in the demo)."""
    if intake is None:
        return {"intake_port": 0}
    return {"intake_port": intake.port, "intake_tokens": {SOURCE: SecretStr(intake.token)}}


def demo_intake(sources_dir: Path) -> DemoIntake | None:
    """A free port and a new token, or None when ``sources_dir`` maps no Threat Stack source
    (the demo then shows the poll path only)."""
    try:
        load_source(sources_dir / f"{SOURCE}.yaml")
    except (OSError, SourceLoadError):
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return DemoIntake(port=port, token=secrets.token_urlsafe(24))


def threatstack_alert(seq: int, rng: random.Random, now_ms: int) -> dict[str, Any]:
    """One alert shaped like Threat Stack's webhook payload."""
    title, hostname, severity = SCENARIOS[rng.randrange(len(SCENARIOS))]
    return {"id": f"demo-{seq}-{rng.randrange(16**6):06x}", "title": title,
            "severity": severity, "created_at": now_ms, "hostname": hostname,
            "server_or_region": "eu-west-1", "organization_id": "demo-org",
            "rule_id": f"r-{abs(hash(title)) % 1000:03d}"}


async def push_alerts(intake: DemoIntake, interval: float) -> None:
    """POST one alert every ``interval`` seconds until cancelled; failures are logged, the
    next one tried (a demo must not stop because one request did)."""
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {intake.token}"}
    async with httpx.AsyncClient(timeout=5) as http:
        for seq in counter(1):
            await asyncio.sleep(interval)
            alert = threatstack_alert(seq, rng, int(time.time() * 1000))
            try:
                answer = await http.post(intake.url, json=alert, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("demo_push_failed", kind=type(exc).__name__)
                continue
            if answer.status_code != 202:
                log.warning("demo_push_refused", status=answer.status_code)


__all__ = ["SOURCE", "DemoIntake", "demo_intake", "intake_settings", "push_alerts",
           "threatstack_alert"]
