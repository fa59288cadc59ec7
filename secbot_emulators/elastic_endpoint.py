"""Kibana's Elastic Defend response actions, as the emulator serves them.

``POST [/s/<space>]/api/endpoint/action/isolate`` and ``.../unisolate`` (Kibana's
"Isolate a host" / "Release a host" API): body ``{"endpoint_ids": [..], "comment"?,
"alert_ids"?, "case_ids"?, "agent_type"?}``; the answer is ``{"action": "<action id>",
"data": {"id", "agents", "command", "comment", "createdBy", "startedAt", "isCompleted",
"wasSuccessful", "status": "pending", "agentType": "endpoint", "hosts": {..}}}``.

Validation errors are Kibana's 400 body (``[request body.endpoint_ids]: …``). An agent id the
stand-in does not know (see :meth:`EndpointActions.add_endpoint`; with ``strict=False`` any id is
taken as an endpoint) is refused with 404 and the ids named. ``fail_next`` answers the next
calls with an error status (the same bodies as the detection-engine routes). The kbn-xsrf and
API-key checks are the Kibana app's middleware (``secbot_emulators/elastic.py``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from secbot_emulators.elastic_http import json_response


@dataclass
class EndpointAction:
    id: str
    command: str  # isolate | unisolate
    endpoint_ids: list[str]
    comment: str
    started_at: str


@dataclass
class EndpointActions:
    strict: bool = False
    endpoints: dict[str, str] = field(default_factory=dict)  # agent id -> host name
    isolated: set[str] = field(default_factory=set)
    actions: list[EndpointAction] = field(default_factory=list)
    _faults: list[int] = field(default_factory=list)

    def add_endpoint(self, agent_id: str, host_name: str) -> None:
        self.endpoints[agent_id] = host_name

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        self._faults.extend([status] * count)

    def routes(self) -> list[web.RouteDef]:
        out = []
        for prefix in ("", "/s/{space}"):
            out += [web.post(prefix + "/api/endpoint/action/isolate", self._isolate),
                    web.post(prefix + "/api/endpoint/action/unisolate", self._unisolate)]
        return out

    async def _isolate(self, request: web.Request) -> web.Response:
        return await self._act(request, "isolate")

    async def _unisolate(self, request: web.Request) -> web.Response:
        return await self._act(request, "unisolate")

    async def _act(self, request: web.Request, command: str) -> web.Response:
        if self._faults:
            status = self._faults.pop(0)
            return json_response({"statusCode": status, "error": "Internal Server Error"
                                  if status >= 500 else "Bad Request",
                                  "message": "emulated fault"}, status)
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            body = None
        problem = _invalid(body)
        if problem is not None:
            return json_response({"statusCode": 400, "error": "Bad Request",
                                  "message": problem}, 400)
        ids = [str(i) for i in body["endpoint_ids"]]
        unknown = [i for i in ids if self.strict and i not in self.endpoints]
        if unknown:
            return json_response({"statusCode": 404, "error": "Not Found",
                                  "message": f"Endpoint(s) not found: {', '.join(unknown)}"}, 404)
        action = EndpointAction(str(uuid.uuid4()), command, ids, str(body.get("comment") or ""),
                                datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        self.actions.append(action)
        for agent in ids:
            (self.isolated.add if command == "isolate" else self.isolated.discard)(agent)
        return json_response({"action": action.id, "data": self._data(action)})

    def _data(self, action: EndpointAction) -> dict[str, Any]:
        return {
            "id": action.id, "agents": action.endpoint_ids, "agentType": "endpoint",
            "hosts": {a: {"name": self.endpoints.get(a, "")} for a in action.endpoint_ids},
            "command": action.command, "comment": action.comment, "createdBy": "elastic",
            "startedAt": action.started_at, "isCompleted": False, "wasSuccessful": False,
            "isExpired": False, "status": "pending", "outputs": {},
            "agentState": {a: {"isCompleted": False, "wasSuccessful": False}
                           for a in action.endpoint_ids},
        }


def _invalid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "[request body]: expected a plain object value, but found [null] instead."
    ids = body.get("endpoint_ids")
    if not isinstance(ids, list):
        return ("[request body.endpoint_ids]: expected value of type [array] but got "
                f"[{type(ids).__name__ if ids is not None else 'undefined'}]")
    if not ids:
        return "[request body.endpoint_ids]: array size is [0], but cannot be smaller than [1]"
    if not all(isinstance(i, str) and i for i in ids):
        return "[request body.endpoint_ids.0]: value has length [0] but it must have a minimum "\
               "length of [1]."
    if "comment" in body and not isinstance(body["comment"], str):
        return "[request body.comment]: expected value of type [string]"
    return None
