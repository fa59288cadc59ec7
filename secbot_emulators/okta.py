"""Okta stand-in: the Users and User Lifecycle endpoints SecBot's response actions use.

- ``GET /api/v1/users/{id}`` — ``id`` is the user's id, login, or login shortname; the User
  object (``id``, ``status``, ``created``, ``statusChanged``, ``profile.login`` …, ``_links``).
- ``POST /api/v1/users/{id}/lifecycle/suspend`` — only for an ``ACTIVE`` user; → ``SUSPENDED``.
- ``POST /api/v1/users/{id}/lifecycle/unsuspend`` — only for a ``SUSPENDED`` user; → ``ACTIVE``.
  Both answer ``200`` with an empty JSON object.

Errors are Okta's error object ``{errorCode, errorSummary, errorLink, errorId, errorCauses}``:
no or a wrong ``Authorization: SSWS <token>`` → 401 ``E0000011`` "Invalid token provided";
unknown user → 404 ``E0000007``; a lifecycle call in the wrong state → 400 ``E0000001`` "Api
validation failed" with the cause; injected faults (:meth:`OktaStandIn.fail_next`) → 429
``E0000047`` with ``X-Rate-Limit-Reset`` / 500 ``E0000009``. ``lifecycle_delay`` answers a
lifecycle call late, *after* changing the status (a caller killed meanwhile never learns it).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from secbot_emulators.standin_http import AppServer

DEFAULT_TOKEN = "00okta-emulator-token"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class OktaUser:
    id: str
    login: str
    first: str
    last: str
    status: str = "ACTIVE"
    status_changed: float = field(default_factory=time.time)

    def to_api(self, base: str) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "created": "2024-01-01T00:00:00.000Z",
            "activated": "2024-01-01T00:00:00.000Z", "statusChanged": _iso(self.status_changed),
            "lastLogin": None, "lastUpdated": _iso(self.status_changed),
            "passwordChanged": None, "type": {"id": "oty0000000000000000"},
            "profile": {"firstName": self.first, "lastName": self.last, "mobilePhone": None,
                        "secondEmail": None, "login": self.login, "email": self.login},
            "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": {"href": f"{base}/api/v1/users/{self.id}"}},
        }


def _error(status: int, code: str, summary: str, causes: list[str] | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    body = {"errorCode": code, "errorSummary": summary, "errorLink": code,
            "errorId": "oae" + uuid.uuid4().hex[:19],
            "errorCauses": [{"errorSummary": c} for c in causes or []]}
    return web.Response(text=json.dumps(body), status=status, content_type="application/json",
                        headers=headers)


class OktaStandIn(AppServer):
    """Users by id and login; every request recorded as (method, path)."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self.users: dict[str, OktaUser] = {}
        self.requests: list[tuple[str, str]] = []
        self._faults: list[int] = []
        self.lifecycle_delay = 0.0  # seconds between changing the status and answering

    def add_user(self, login: str, first: str = "Test", last: str = "User",
                 status: str = "ACTIVE") -> OktaUser:
        user = OktaUser("00u" + uuid.uuid4().hex[:17], login, first, last, status)
        self.users[user.id] = user
        return user

    def user(self, ref: str) -> OktaUser | None:
        if ref in self.users:
            return self.users[ref]
        ref = ref.lower()
        return next((u for u in self.users.values()
                     if u.login.lower() == ref or u.login.lower().split("@")[0] == ref), None)

    def fail_next(self, status: int, count: int = 1) -> None:
        self._faults.extend([status] * count)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self._faults:
            status = self._faults.pop(0)
            if status == 429:
                reset = {"X-Rate-Limit-Reset": str(int(time.time()) + 1)}
                return _error(429, "E0000047", "API call exceeded rate limit due to too many "
                              "requests.", headers=reset)
            return _error(status, "E0000009", "Internal Server Error")
        if request.headers.get("Authorization") != f"SSWS {self.token}":
            return _error(401, "E0000011", "Invalid token provided")
        response: web.StreamResponse = await handler(request)
        return response

    async def _get(self, request: web.Request) -> web.Response:
        user = self.user(request.match_info["id"])
        if user is None:
            return _error(404, "E0000007",
                          f"Not found: Resource not found: {request.match_info['id']} (User)")
        return web.json_response(user.to_api(self.url))

    async def _lifecycle(self, request: web.Request) -> web.Response:
        user = self.user(request.match_info["id"])
        verb = request.match_info["verb"]
        if user is None:
            return _error(404, "E0000007",
                          f"Not found: Resource not found: {request.match_info['id']} (User)")
        needed, after = {"suspend": ("ACTIVE", "SUSPENDED"),
                         "unsuspend": ("SUSPENDED", "ACTIVE")}[verb]
        if user.status != needed:
            cause = ("Cannot suspend a user that is not active" if verb == "suspend"
                     else "Cannot unsuspend a user that is not suspended")
            return _error(400, "E0000001", f"Api validation failed: {verb}", [cause])
        user.status, user.status_changed = after, time.time()
        if self.lifecycle_delay:
            await asyncio.sleep(self.lifecycle_delay)
        return web.json_response({})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes([
            web.get("/api/v1/users/{id}", self._get),
            web.post("/api/v1/users/{id}/lifecycle/{verb:suspend|unsuspend}", self._lifecycle),
        ])
        return app
