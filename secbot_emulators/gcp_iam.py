"""GCP IAM stand-in: service-account keys, disabled and enabled again.

``POST /v1/projects/{project}/serviceAccounts/{account}/keys/{key}:disable`` (``:enable``) —
IAM's ``projects.serviceAccounts.keys.disable`` / ``enable``: an empty JSON object on success;
an unknown key is 404 with Google's error body ``{"error": {"code", "message", "status":
"NOT_FOUND"}}``; a name that is not a key's resource name is 400 ``INVALID_ARGUMENT``.
``fail_next`` answers the next calls with 503 ``UNAVAILABLE``. No credentials are checked (the
product sends none to an ``http://`` IAM URL).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from aiohttp import web

from secbot_emulators.standin_http import AppServer

KEY_NAME = re.compile(r"^projects/[^/]+/serviceAccounts/[^/]+/keys/[^/:]+$")


def _error(code: int, status: str, message: str) -> web.Response:
    return web.Response(text=json.dumps({"error": {"code": code, "message": message,
                                                   "status": status}}),
                        status=code, content_type="application/json")


@dataclass
class IamStandIn(AppServer):
    keys: dict[str, bool] = field(default_factory=dict)  # key name -> disabled
    requests: list[tuple[str, str]] = field(default_factory=list)
    _faults: int = 0

    def add_key(self, name: str) -> None:
        self.keys[name] = False

    def fail_next(self, count: int = 1) -> None:
        self._faults += count

    async def _post(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        self.requests.append(("POST", f"/v1/{tail}"))
        if self._faults:
            self._faults -= 1
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        name, _, verb = tail.rpartition(":")
        if verb not in ("disable", "enable") or not KEY_NAME.match(name):
            return _error(400, "INVALID_ARGUMENT", f"Invalid resource name: {tail}")
        if name not in self.keys:
            return _error(404, "NOT_FOUND", f"Service account key {name} does not exist.")
        self.keys[name] = verb == "disable"
        return web.json_response({})

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.post("/v1/{tail:.+}", self._post)])
        return app
