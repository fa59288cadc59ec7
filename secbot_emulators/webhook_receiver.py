"""A webhook receiver (a SOAR such as Cortex XSOAR behind a generic webhook): records every
body (exact bytes) and its headers, answers ``200 {"id": ...}``, and lets a test check the
signature as a receiver would: ``X-SecBot-Signature: sha256=<hex HMAC-SHA256 of the body>``.

Like a careful receiver it treats a repeated ``Idempotency-Key`` as the same delivery: the
answer repeats the first one, and ``unique`` counts each key once. Faults as in
:class:`StandIn` (429/5xx, down).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from secbot_emulators.standin_http import StandIn, json_response


@dataclass(frozen=True)
class Delivery:
    path: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)

    def verifies(self, secret: str) -> bool:
        """The signature header matches an HMAC-SHA256 of the exact body under ``secret``."""
        sent = self.headers.get("X-SecBot-Signature", "")
        digest = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(sent, f"sha256={digest}")


class WebhookReceiver(StandIn):
    """``POST`` on any path; ``deliveries`` in arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[Delivery] = []
        self._answers: dict[str, str] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        delivery = Delivery(request.path, await request.read(), dict(request.headers))
        self.deliveries.append(delivery)
        key = request.headers.get("Idempotency-Key", "")
        incident = self._answers.setdefault(key, str(len(self._answers) + 1)) if key else "0"
        return json_response({"id": incident})

    def unique(self) -> dict[str, Delivery]:
        """The first delivery of each ``Idempotency-Key``."""
        out: dict[str, Delivery] = {}
        for d in self.deliveries:
            out.setdefault(d.headers.get("Idempotency-Key", ""), d)
        return out
