"""A stand-in for the PagerDuty Events API v2 (``POST /v2/enqueue``), as PagerDuty documents it.

Validation and answers:

- ``202 {"status": "success", "message": "Event processed", "dedup_key": ...}`` for a valid
  event (a trigger without ``dedup_key`` gets one generated);
- ``400 {"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``:
  ``routing_key`` not 32 characters or not the integration's, ``event_action`` not one of
  trigger / acknowledge / resolve, a trigger without ``payload.summary`` / ``payload.source`` or
  with a ``payload.severity`` outside critical / error / warning / info, ``dedup_key`` over 255
  characters, ``links`` entries without ``href``; a body that is not a JSON object is 400 too;
- injectable ``429`` (throttled) and ``5xx`` with ``Retry-After`` (:class:`StandIn` faults).

Incidents are kept by ``dedup_key``: a trigger opens one (or joins the open one with that key:
PagerDuty deduplicates), ``acknowledge`` / ``resolve`` move it; an event for an unknown or
resolved key is accepted and changes nothing, as PagerDuty does. ``pages`` counts incidents
opened, which is what a person on call would notice twice.
"""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from secbot_emulators.standin_http import StandIn, json_response, table_page

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
DEFAULT_ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"  # 32 characters, like a real one


@dataclass
class Incident:
    """One incident by dedup key: its state and the events it received."""

    dedup_key: str
    summary: str
    severity: str
    source: str
    state: str = "triggered"  # triggered | acknowledged | resolved
    custom_details: Any = None
    links: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _trigger_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors = []
    for name in ("summary", "source"):
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip():
            errors.append(f"'payload.{name}' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' is invalid (must be one of the following: "
                      "'critical', 'warning', 'error' or 'info')")
    return errors


class PagerDutyEvents(StandIn):
    """``POST /v2/enqueue``; ``incidents`` by dedup key, ``events`` every accepted event."""

    def __init__(self, routing_key: str = DEFAULT_ROUTING_KEY) -> None:
        super().__init__()
        self.routing_key = routing_key
        self.incidents: dict[str, Incident] = {}
        self.events: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.pages = 0

    @property
    def events_url(self) -> str:
        return self.url

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/enqueue", self._enqueue)
        app.router.add_get("/", self._page)

    async def _page(self, request: web.Request) -> web.Response:
        """What the on-call would see: the incidents, newest first (a demo page)."""
        return table_page("PagerDuty stand-in", "Incidents",
                          ("state", "severity", "summary", "dedup key", "events"),
                          ((html.escape(i.state), html.escape(i.severity), html.escape(i.summary),
                            f"<code>{html.escape(i.dedup_key)}</code>", str(len(i.events)))
                           for i in reversed(list(self.incidents.values()))))

    def fault_body(self, status: int) -> Any:
        if status == 400:
            return {"status": "invalid event", "message": "Event object is invalid",
                    "errors": ["injected"]}
        if status == 429:
            return {"status": "throttle event",
                    "message": "Requests for this service are arriving too quickly."}
        return {"status": "error", "message": "Internal server error"}

    def _errors(self, event: dict[str, Any]) -> list[str]:
        errors = []
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        elif key != self.routing_key:
            errors.append("Invalid routing key")
        action = event.get("event_action")
        if action not in ACTIONS:
            errors.append("'event_action' is invalid (must be one of the following: "
                          "'trigger', 'acknowledge' or 'resolve')")
        dedup = event.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dedup:
            errors.append("'dedup_key' is missing or blank")
        if action == "trigger":
            errors += _trigger_errors(event.get("payload"))
        links = event.get("links", [])
        if not isinstance(links, list) or any(
                not isinstance(x, dict) or not x.get("href") for x in links):
            errors.append("'links' must be a list of objects with an 'href'")
        return errors

    async def _enqueue(self, request: web.Request) -> web.Response:
        try:
            event = json.loads(await request.read())
        except ValueError:
            event = None
        if not isinstance(event, dict):
            return self._invalid(["Event object is not valid JSON"], {})
        errors = self._errors(event)
        if errors:
            return self._invalid(errors, event)
        dedup = event.get("dedup_key") or uuid.uuid4().hex
        self.events.append(event)
        self._apply(event, dedup)
        return json_response({"status": "success", "message": "Event processed",
                              "dedup_key": dedup}, 202)

    def _invalid(self, errors: list[str], event: dict[str, Any]) -> web.Response:
        self.rejected.append(event)
        return json_response({"status": "invalid event", "message": "Event object is invalid",
                              "errors": errors}, 400)

    def _apply(self, event: dict[str, Any], dedup: str) -> None:
        action = event["event_action"]
        current = self.incidents.get(dedup)
        if action == "trigger":
            if current is None or current.state == "resolved":
                payload = event["payload"]
                current = Incident(dedup, payload["summary"][:1024], payload["severity"],
                                   payload["source"], custom_details=payload.get(
                                       "custom_details"), links=list(event.get("links", [])))
                self.incidents[dedup] = current
                self.pages += 1
        elif current is not None and current.state != "resolved":
            if action == "resolve":
                current.state = "resolved"
            elif current.state == "triggered":
                current.state = "acknowledged"
        if current is not None:
            current.events.append(event)

    def state(self, dedup_key: str) -> str | None:
        incident = self.incidents.get(dedup_key)
        return incident.state if incident else None
