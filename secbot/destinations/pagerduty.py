"""PagerDuty Events API v2 (DESIGN.md §12): ``POST {events_url}/v2/enqueue``.

One incident per alert: every event carries ``dedup_key`` = the alert uuid, so a trigger the
outbox repeats after a crash joins the incident already open instead of paging twice, and
``acknowledge`` / ``resolve`` find it without SecBot keeping PagerDuty's incident id.

Severities: PagerDuty takes ``critical | error | warning | info``; SecBot's ``high`` is
``error``, ``medium`` is ``warning``, ``low`` and ``info`` are ``info``. PagerDuty answers 202
once the event is queued; 400 (an invalid event) is permanent, 429 and 5xx are retried.
A reopened alert is not re-triggered: PagerDuty has no "unresolve", and a new page for an alert
people already looked at is a person's decision (``@SecBot page``), not a side effect.
"""

from __future__ import annotations

from typing import Any

import httpx

from secbot.destinations.base import (
    DestinationError,
    EscalationRequest,
    Receipt,
    StatusUpdate,
)
from secbot.destinations.http import json_body, send

SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info",
            "info": "info"}
ACTION = {"acknowledged": "acknowledge", "closed": "resolve"}
_SUMMARY_MAX = 1024  # PagerDuty's limit for payload.summary
_SERVICE = "PagerDuty"


def trigger_event(routing_key: str, request: EscalationRequest) -> dict[str, Any]:
    """The ``trigger`` event for ``request`` (pure, so tests and the docs can show it)."""
    details: dict[str, Any] = {"alert_uuid": request.alert_uuid, "rule": request.rule_id,
                               "severity": request.severity, **dict(request.details)}
    if request.why:
        details["why"] = request.why
    payload: dict[str, Any] = {
        "summary": (request.summary or request.title)[:_SUMMARY_MAX],
        "severity": SEVERITY.get(request.severity, "warning"),
        "source": request.source or "secbot",
        "custom_details": details,
    }
    if request.rule_id:
        payload["component"] = request.rule_id
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": request.alert_uuid,
        "client": "SecBot",
        "payload": payload,
        "links": [{"href": link.href, "text": link.text} for link in request.links],
    }


class PagerDutyDestination:
    """Pages through one PagerDuty service's integration (its routing key)."""

    def __init__(self, client: httpx.AsyncClient, events_url: str, routing_key: str, *,
                 name: str = "pagerduty") -> None:
        self._client = client
        self._url = events_url.rstrip("/") + "/v2/enqueue"
        self._key = routing_key
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def _enqueue(self, event: dict[str, Any], what: str) -> str:
        response = await send(self._client, _SERVICE, what, "POST", self._url, json=event)
        body = json_body(response, _SERVICE, what)
        dedup = body.get("dedup_key") if isinstance(body, dict) else None
        return str(dedup or event["dedup_key"])

    async def open(self, request: EscalationRequest) -> Receipt:
        dedup = await self._enqueue(trigger_event(self._key, request), "refused the page")
        return Receipt(destination=self._name, reference=dedup, text="🚨 paged")

    async def update(self, update: StatusUpdate, receipt: Receipt) -> None:
        action = ACTION.get(update.status)
        if action is None:
            return  # reopened: see the module docstring
        event = {"routing_key": self._key, "event_action": action,
                 "dedup_key": receipt.reference or update.alert_uuid}
        await self._enqueue(event, f"refused to {action}")


__all__ = ["ACTION", "SEVERITY", "DestinationError", "PagerDutyDestination", "trigger_event"]
