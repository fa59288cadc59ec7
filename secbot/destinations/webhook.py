"""Signed webhooks for a SOAR (Cortex XSOAR) or anything else (DESIGN.md §12).

The body is XSOAR's incident shape, ``{name, type, severity, details, labels: [{type, value}],
rawJSON}``, so an XSOAR generic webhook integration creates an incident from it unchanged:
``severity`` is XSOAR's number (0.5 info, 1 low, 2 medium, 3 high, 4 critical) and ``rawJSON``
the whole request as a JSON string, for the integration's mapper.

A status update is sent the same way, to the same URL: ``type`` is ``SecBot status``,
``name`` says what happened ("SecBot alert <uuid> closed"), the labels carry ``secbot_uuid``,
``status``, ``reason`` and ``actor``, and ``rawJSON`` holds ``{"alert_uuid", "status",
"reason", "actor", "reference"}`` so the receiver can find the incident it made.

Headers: ``X-SecBot-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`` under the
webhook's secret, and ``Idempotency-Key`` — ``<uuid>:open`` or
``<uuid>:status:<status>:<epoch ms of the change>`` — the same on every repeat of one change,
so a receiver sees one delivery however often the outbox retries, and a second close after a
reopen as new.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from secbot.destinations.base import EscalationRequest, Receipt, StatusUpdate
from secbot.destinations.http import send

XSOAR_SEVERITY = {"info": 0.5, "low": 1, "medium": 2, "high": 3, "critical": 4}
SIGNATURE_HEADER = "X-SecBot-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _labels(*pairs: tuple[str, str | None]) -> list[dict[str, str]]:
    return [{"type": t, "value": v} for t, v in pairs if v]


def open_body(request: EscalationRequest) -> dict[str, Any]:
    raw = {"alert_uuid": request.alert_uuid, "rule": request.rule_id, "title": request.title,
           "summary": request.summary, "severity": request.severity, "source": request.source,
           "kind": request.kind, "why": request.why, "fields": dict(request.details),
           "links": [{"text": link.text, "href": link.href} for link in request.links]}
    return {
        "name": request.summary or request.title,
        "type": "SecBot alert",
        "severity": XSOAR_SEVERITY.get(request.severity, 2),
        "details": "\n".join([request.summary, request.why,
                              *(f"{k}: {v}" for k, v in request.details.items())]).strip(),
        "labels": _labels(("secbot_uuid", request.alert_uuid), ("rule", request.rule_id),
                          ("source", request.source), ("severity", request.severity),
                          *((f"field:{k}", v) for k, v in request.details.items()),
                          *((link.text, link.href) for link in request.links)),
        "rawJSON": json.dumps(raw, sort_keys=True),
    }


def update_body(update: StatusUpdate, receipt: Receipt) -> dict[str, Any]:
    raw = {"alert_uuid": update.alert_uuid, "status": update.status, "reason": update.reason,
           "actor": update.actor, "reference": receipt.reference}
    return {
        "name": f"SecBot alert {update.alert_uuid} {update.status}",
        "type": "SecBot status",
        "severity": 0,
        "details": f"{update.status} by {update.actor}"
                   + (f" ({update.reason})" if update.reason else ""),
        "labels": _labels(("secbot_uuid", update.alert_uuid), ("status", update.status),
                          ("reason", update.reason), ("actor", update.actor)),
        "rawJSON": json.dumps(raw, sort_keys=True),
    }


class WebhookDestination:
    """One ``SECBOT_WEBHOOKS`` entry."""

    def __init__(self, client: httpx.AsyncClient, name: str, url: str, secret: str) -> None:
        self._client = client
        self._name = name
        self._url = url
        self._secret = secret

    @property
    def name(self) -> str:
        return self._name

    async def _post(self, body: dict[str, Any], key: str, what: str) -> httpx.Response:
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, raw),
                   "Idempotency-Key": key}
        return await send(self._client, f"Webhook {self._name}", what, "POST", self._url,
                          content=raw, headers=headers)

    async def open(self, request: EscalationRequest) -> Receipt:
        key = f"{request.alert_uuid}:open"
        response = await self._post(open_body(request), key, "refused the alert")
        reference = key
        try:
            answer = response.json()
            if isinstance(answer, dict) and answer.get("id") is not None:
                reference = str(answer["id"])
        except ValueError:
            pass  # any 2xx is a delivery; the id is a nicety
        return Receipt(destination=self._name, reference=reference, text=f"sent to {self._name}")

    async def update(self, update: StatusUpdate, receipt: Receipt) -> None:
        key = f"{update.alert_uuid}:status:{update.status}"
        if update.at:
            key += f":{int(update.at * 1000)}"  # a later change of the same status is new
        await self._post(update_body(update, receipt), key, f"refused the {update.status} status")


__all__ = ["SIGNATURE_HEADER", "XSOAR_SEVERITY", "WebhookDestination", "open_body", "sign",
           "update_body"]
