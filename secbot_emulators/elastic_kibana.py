"""Kibana's detection-engine alert routes, as the emulator serves them.

``POST [/s/<space>]/api/detection_engine/signals/status`` and ``.../signals/tags`` behave like
Kibana's route handlers: the xsrf/version-header check, body validation with Kibana's error
bodies, closing-reason validation, then the same ``_update_by_query`` (status or tags painless
script, ``terms`` on ``_id``) on ``.alerts-security.alerts-<space>``, returning the raw ES body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from secbot_emulators.elastic_http import json_response, read_json, update_by_query_body
from secbot_emulators.elastic_query import QueryError, compile_query
from secbot_emulators.elastic_store import DocumentStore
from secbot_emulators.elastic_values import js_iso, now_millis

#: The user profile uid Kibana writes as ``workflow_user`` for the API key's user.
PROFILE_UID = "u_mGBROF_q5bmFCATbLXAcCwKa0k8JvONAwSruelyKA5E_0"

#: AlertStatus (``common/api/model/alert.schema.yaml``).
STATUSES = ("open", "closed", "acknowledged", "in-progress")
#: The closing reasons Kibana 9.2+ documents for ``signals/status``, then the ones an earlier
#: draft of the same enum used (kept so clients written against it stay accepted).
DOCUMENTED_REASONS = ("false_positive", "duplicate", "true_positive", "benign_positive",
                      "automated_closure", "other")
OLDER_REASONS = ("issue_resolved", "acceptable_risk", "expected_activity", "low_severity",
                 "investigation_required")
#: Besides the enum, the body schema takes any string of 1 to 1024 characters; the route then
#: accepts it only when it is one of the custom reasons set in the advanced settings
#: (``securitySolution:detectionsCloseReasons``, each 1..1024 characters).
MAX_CUSTOM_REASON = 1024

#: The painless Kibana sends for a status change (``update_alerts_workflow_status.ts``): the
#: status, user, time and reason change only when the status does; a non-closing change
#: (``reason`` null) removes an earlier reason; legacy ``signal.status`` follows along.
STATUS_SCRIPT = """
if (ctx._source['kibana.alert.workflow_status'] != null && ctx._source['kibana.alert.workflow_status'] != params.status) {
  ctx._source['kibana.alert.workflow_status'] = params.status;
  ctx._source['kibana.alert.workflow_user'] = params.workflowUser;
  ctx._source['kibana.alert.workflow_status_updated_at'] = params.updatedAt;
  if (params.reason != null) {
    ctx._source['kibana.alert.workflow_reason'] = params.reason;
  } else {
    ctx._source.remove('kibana.alert.workflow_reason');
  }
}
if (ctx._source.signal != null && ctx._source.signal.status != null) {
  ctx._source.signal.status = params.status
}"""  # noqa: E501

#: The painless of ``set_alert_tags_route.ts``: keep existing order minus removed, append new.
TAGS_SCRIPT = """List newTagsArray = [];
        if (ctx._source["kibana.alert.workflow_tags"] != null) {
          for (tag in ctx._source["kibana.alert.workflow_tags"]) {
            if (!params.tagsToRemove.contains(tag)) {
              newTagsArray.add(tag);
            }
          }
          for (tag in params.tagsToAdd) {
            if (!newTagsArray.contains(tag)) {
              newTagsArray.add(tag)
            }
          }
          ctx._source["kibana.alert.workflow_tags"] = newTagsArray;
        } else {
          ctx._source["kibana.alert.workflow_tags"] = params.tagsToAdd;
        }
        """


class KibanaError(Exception):
    """A Kibana error response (body already in Kibana's shape)."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = dict(body)


def bad_request(message: str) -> KibanaError:
    """Kibana core's (platform) error body, used for request validation failures."""
    return KibanaError(400, {"statusCode": 400, "error": "Bad Request", "message": message})


def siem_error(status: int, message: str) -> KibanaError:
    """The security solution's ``buildSiemResponse`` error body."""
    return KibanaError(status, {"message": message, "status_code": status})


def _ids(body: Mapping[str, Any], key: str) -> list[str]:
    ids = body.get(key)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise bad_request(f"[request body]: {key}: Array must contain at least 1 element(s)"
                          if isinstance(ids, list) else f"[request body]: {key}: Required")
    return ids


Route = Literal["status", "tags"]

#: Kibana's bodies for the statuses a route fault may answer with (a Kibana without the route
#: answers 404 like any unknown path).
_FAULT_BODIES: dict[int, dict[str, Any]] = {
    404: {"statusCode": 404, "error": "Not Found", "message": "Not Found"},
    500: {"statusCode": 500, "error": "Internal Server Error",
          "message": "An internal server error occurred."},
}


@dataclass
class RouteFault:
    """A fault on one route: wait ``hang`` seconds, then answer ``status`` (None: handle the
    request normally after the wait), for ``remaining`` requests (None: until cleared), once
    ``after`` requests have passed untouched (a Kibana failing in the middle of a bulk change).
    """

    status: int | None
    hang: float = 0.0
    remaining: int | None = None
    after: int = 0


class KibanaApi:
    """Kibana routes over the emulator's documents.

    ``supports_reason = False`` models a Kibana whose schema rejects the ``reason`` key
    (400 naming it), so clients can be tested against older deployments. ``custom_reasons``
    is the advanced setting listing extra closing reasons (empty, as on a fresh deployment).
    """

    def __init__(self, store: DocumentStore, spaces: Sequence[str],
                 profile_uid: str = PROFILE_UID) -> None:
        self.store = store
        self.spaces = set(spaces)
        self.profile_uid = profile_uid
        self.supports_reason = True
        self.custom_reasons: list[str] = []
        self.version = "9.1.0"
        self.route_faults: dict[Route, RouteFault] = {}

    def fail_route(self, route: Route, *, status: int | None = 500, hang: float = 0.0,
                   times: int | None = None, after: int = 0) -> None:
        """Fault only ``signals/<route>``: ``status=404`` is a Kibana without the route,
        ``status=None, hang=s`` a slow one (the change still applies, after the wait);
        ``after=n`` lets the next ``n`` requests through first (fail the n+1-th call)."""
        self.route_faults[route] = RouteFault(status, hang, times, after)

    async def _route_fault(self, route: Route) -> None:
        fault = self.route_faults.get(route)
        if fault is None:
            return
        if fault.after > 0:
            fault.after -= 1
            return
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self.route_faults[route]
        if fault.hang:
            await asyncio.sleep(fault.hang)
        if fault.status is not None:
            body = _FAULT_BODIES.get(fault.status, {"statusCode": fault.status,
                                                    "message": "emulated fault"})
            raise KibanaError(fault.status, body)

    def routes(self) -> list[web.RouteDef]:
        routes = [web.get("/api/status", self.status_page)]
        for prefix in ("", "/s/{space}"):
            routes += [
                web.post(prefix + "/api/detection_engine/signals/status", self.set_status),
                web.post(prefix + "/api/detection_engine/signals/tags", self.set_tags),
            ]
        return routes

    async def status_page(self, request: web.Request) -> web.Response:
        return json_response({"name": "secbot-emulator", "version": {"number": self.version},
                              "status": {"overall": {"level": "available"}}})

    def _alerts_index(self, request: web.Request) -> str:
        space = request.match_info.get("space", "default")
        if space not in self.spaces:
            raise KibanaError(404, {"statusCode": 404, "error": "Not Found",
                                    "message": f"Saved object [space/{space}] not found"})
        return f".alerts-security.alerts-{space}"

    def _reason(self, body: Mapping[str, Any], status: str) -> str | None:
        if "reason" in body and not self.supports_reason:
            raise bad_request("[request body]: Unrecognized key(s) in object: 'reason'")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str)
                                   or not 1 <= len(reason) <= MAX_CUSTOM_REASON):
            # The body schema: an enum value or a custom string of 1..1024 characters.
            raise bad_request("[request body]: reason: Expected one of the closing reasons or "
                              f"a string of 1 to {MAX_CUSTOM_REASON} characters")
        if status != "closed" or reason is None:
            return None  # validateClosingReason: only a closing status keeps a reason
        if reason not in (*DOCUMENTED_REASONS, *OLDER_REASONS, *self.custom_reasons):
            raise siem_error(400, f"{reason} is an invalid closing reason.")
        return reason

    async def set_status(self, request: web.Request) -> web.Response:
        await self._route_fault("status")
        started = time.monotonic()
        index = self._alerts_index(request)
        body = await self._body(request)
        status = body.get("status")
        if status not in STATUSES:
            raise bad_request(f"[request body]: status: Invalid enum value. Expected "
                              f"{' | '.join(repr(s) for s in STATUSES)}, received '{status}'")
        reason = self._reason(body, str(status))
        if "signal_ids" in body:
            query: Any = {"bool": {"filter": {"terms": {"_id": _ids(body, "signal_ids")}}}}
        elif isinstance(body.get("query"), Mapping):
            query = {"bool": {"filter": body["query"]}}
        else:
            raise bad_request("[request body]: signal_ids: Required, query: Required")
        script = {"source": STATUS_SCRIPT, "lang": "painless", "params": {
            "status": status, "workflowUser": self.profile_uid,
            "updatedAt": js_iso(datetime.now(UTC)), "reason": reason}}
        return self._update(index, query, script, started)

    async def set_tags(self, request: web.Request) -> web.Response:
        await self._route_fault("tags")
        started = time.monotonic()
        index = self._alerts_index(request)
        body = await self._body(request)
        ids = _ids(body, "ids")
        tags = body.get("tags")
        if not isinstance(tags, Mapping):
            raise bad_request("[request body]: tags: Required")
        add = list(dict.fromkeys(tags.get("tags_to_add") or []))
        remove = list(dict.fromkeys(tags.get("tags_to_remove") or []))
        if set(add) & set(remove):
            raise siem_error(400, "[request body].tags: cannot add and remove the same tag in "
                             "a single request")
        script = {"source": TAGS_SCRIPT, "lang": "painless",
                  "params": {"tagsToAdd": add, "tagsToRemove": remove}}
        return self._update(index, {"bool": {"filter": {"terms": {"_id": ids}}}}, script,
                            started)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            return await read_json(request)
        except QueryError as exc:
            raise bad_request(f"[request body]: {exc.reason}") from exc

    def _update(self, index: str, query: Any, script: Mapping[str, Any], started: float
                ) -> web.Response:
        now_ms = now_millis()
        try:
            indices = self.store.resolve(index, ignore_unavailable=True)
            count = self.store.update_by_query(indices, compile_query(query, now_ms), script,
                                               None)
        except QueryError as exc:  # Kibana's transformError: ES status + reason
            raise siem_error(exc.status, f"{exc.error_type}: {exc.reason}") from exc
        return json_response(update_by_query_body(count, started))
