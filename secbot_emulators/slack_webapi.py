"""HTTP transport of the emulated Slack Web API: ``/api/<method>``.

Faithful to how slack_sdk talks to Slack (``protocols/slack_web_api.md``):

- parameters are merged from the query string (the async client's ``params`` even on POST),
  a form body (the sync client) and a JSON body (``chat.postMessage``/``chat.update``…);
- every method answers both GET and POST (the sync client always POSTs);
- the token comes from ``Authorization: Bearer …``; a ``token`` form/query parameter is also
  accepted like Slack's legacy form, but never from a JSON body and never for
  ``apps.connections.open``; missing → ``not_authed``, unknown → ``invalid_auth``, the wrong
  kind (``xapp-`` vs ``xoxb-``) → ``not_allowed_token_type``;
- errors are HTTP 200 ``{"ok": false, "error": …}``; only injected rate limits (429 +
  integer ``Retry-After``) and outages (5xx) change the status.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from secbot_emulators.slack_methods import Params, WebMethods
from secbot_emulators.slack_state import JsonDict, SlackError

# the scopes of slack-app-manifest.yaml; bolt reads them from this header after auth.test
BOT_SCOPES = ("app_mentions:read,chat:write,reactions:read,reactions:write,channels:history,"
              "groups:history,users:read,users:read.email,usergroups:read,im:write,im:history")


@dataclass
class ApiCall:
    """One recorded Web API request (answered or not)."""

    method: str
    params: dict[str, Any]
    http_method: str
    token: str | None
    at: float
    status: int = 200
    error: str | None = None  # Slack error code when ``ok`` was false
    content_type: str = ""  # how the body was encoded (JSON vs form), for fidelity asserts

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass
class Fault:
    """An injected failure for the next ``remaining`` calls of ``method`` (``"*"``: any)."""

    method: str
    remaining: int
    status: int
    retry_after: int | None = None
    hits: list[float] = field(default_factory=list)


def _json(body: JsonDict, status: int = 200, headers: dict[str, str] | None = None
          ) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, headers=headers,
                        content_type="application/json", charset="utf-8")


async def read_params(request: web.Request) -> dict[str, Any]:
    """Merge query-string, form-body and JSON-body parameters (later ones win)."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        raw = await request.text()
        if raw.strip():
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise SlackError("invalid_json")
            body.pop("token", None)  # Slack ignores a token inside a JSON body
            params.update(body)
    elif request.method == "POST" and request.body_exists:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


class WebApi:
    """Authentication, fault injection, call recording and dispatch to :class:`WebMethods`."""

    def __init__(self, methods: WebMethods, *, bot_token: str, app_token: str) -> None:
        self.methods = methods
        self.bot_token = bot_token
        self.app_token = app_token
        self.calls: list[ApiCall] = []
        self.faults: list[Fault] = []

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.method in (method, "*"):
                fault.remaining -= 1
                fault.hits.append(time.time())
                return fault
        return None

    def _token(self, request: web.Request, params: dict[str, Any], method: str) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[len("Bearer "):].strip() or None
        # Slack refuses the app token as a parameter for apps.connections.open
        if method == "apps.connections.open":
            return None
        token = params.get("token")
        return token if isinstance(token, str) and token else None

    def _auth_error(self, token: str | None, kind: str) -> str | None:
        if token is None:
            return "not_authed"
        if token not in (self.bot_token, self.app_token):
            return "invalid_auth"
        expected = self.bot_token if kind == "bot" else self.app_token
        return None if token == expected else "not_allowed_token_type"

    def _fault_response(self, fault: Fault) -> web.Response:
        if fault.status == 429:
            return _json({"ok": False, "error": "ratelimited"}, 429,
                         {"Retry-After": str(fault.retry_after or 0)})
        return _json({"ok": False, "error": "internal_error"}, fault.status)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``/api/{method}`` for every method (GET or POST)."""
        method = request.match_info["method"]
        try:
            params = await read_params(request)
        except (ValueError, SlackError):
            params = dict(request.query)
            call = self._record(request, method, params)
            call.error = "invalid_json"
            return _json({"ok": False, "error": "invalid_json"})
        call = self._record(request, method, params)
        fault = self._take_fault(method)
        if fault is not None:
            call.status = fault.status
            call.error = "ratelimited" if fault.status == 429 else "internal_error"
            return self._fault_response(fault)
        body = self._dispatch(request, method, params, call)
        call.error = None if body.get("ok") else str(body.get("error"))
        headers = {"X-Slack-Req-Id": uuid.uuid4().hex}
        if call.token == self.bot_token:
            headers["X-OAuth-Scopes"] = BOT_SCOPES
        return _json(body, headers=headers)

    def _record(self, request: web.Request, method: str, params: dict[str, Any]) -> ApiCall:
        token = self._token(request, params, method)
        shown = {k: v for k, v in params.items() if k != "token"}
        call = ApiCall(method, shown, request.method, token, time.time(),
                       content_type=request.content_type if request.body_exists else "")
        self.calls.append(call)
        return call

    def _dispatch(self, request: web.Request, method: str, params: dict[str, Any],
                  call: ApiCall) -> JsonDict:
        entry = self.methods.table.get(method)
        if entry is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        handler, kind = entry
        error = self._auth_error(call.token, kind)
        if error is not None:
            return {"ok": False, "error": error}
        try:
            return handler(Params(params, host=request.host))
        except SlackError as exc:
            return {"ok": False, "error": exc.error, **exc.extra}
