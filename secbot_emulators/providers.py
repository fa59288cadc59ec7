"""Local stand-ins for enrichment providers, speaking their real API shapes.

Imports nothing from secbot: a stand-in restates the provider's documented behaviour.

* :class:`Script` — an ``httpx.MockTransport`` handler: per-path queues of canned responses
  (the last one repeats), every request recorded. Used for PagerDuty, Entitle, HRIS, IAM,
  AbuseIPDB, GreyNoise, VirusTotal and RDAP.
* :class:`GcpStandIn` — an aiohttp server answering Resource Manager v3 REST
  (``GET /v3/projects/{id-or-number}``, ``GET /v3/projects:search``) so the REAL
  google-cloud-resource-manager client can be pointed at it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
from aiohttp import web

Reply = httpx.Response | Callable[[httpx.Request], Any]


def json_reply(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


def timeout_reply(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("read timed out", request=request)


class Script:
    """Canned answers by URL path; ``calls`` records (method, path, params, headers)."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = defaultdict(list)
        self.requests: list[httpx.Request] = []
        self.delay = 0.0

    def on(self, path: str, *replies: Reply) -> Script:
        self.routes[path] = list(replies)
        return self

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.url.path == path)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        queue = self.routes.get(request.url.path)
        if not queue:
            return json_reply(404, {"error": "no such route in stand-in"})
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, httpx.Response):
            # Responses are single-use objects; hand out a fresh copy each time.
            return httpx.Response(reply.status_code, content=reply.content, headers=reply.headers)
        result = reply(request)
        response = await result if asyncio.iscoroutine(result) else result
        assert isinstance(response, httpx.Response)
        return response

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self), base_url="http://standin")


def alert_source(**fields: Any) -> dict[str, Any]:
    """A minimal alert ``_source`` (uuid and timestamp) carrying ``fields``."""
    return {"kibana.alert.uuid": "u-1", "@timestamp": "2026-11-01T10:00:00Z", **fields}


def rest_project(
    project_id: str,
    number: str,
    labels: dict[str, str] | None = None,
    *,
    display_name: str = "",
    parent: str = "folders/42",
) -> dict[str, Any]:
    """A Project resource as the v3 REST API returns it (camelCase JSON)."""
    return {
        "name": f"projects/{number}",
        "parent": parent,
        "projectId": project_id,
        "state": "ACTIVE",
        "displayName": display_name or project_id,
        "createTime": "2024-02-01T09:30:00.123Z",
        "updateTime": "2024-02-02T09:30:00Z",
        "etag": 'W/"abc"',
        "labels": labels or {},
    }


def _error(status: int, reason: str, message: str) -> web.Response:
    body = {"error": {"code": status, "message": message, "status": reason}}
    return web.json_response(body, status=status)


class GcpStandIn:
    """Resource Manager v3 REST over HTTP on 127.0.0.1 (random port)."""

    def __init__(self, projects: list[dict[str, Any]]) -> None:
        self.projects = projects
        self.failures: list[tuple[int, str, dict[str, str]]] = []  # served before real answers
        self.delay = 0.0
        self.hits: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> GcpStandIn:
        app = web.Application()
        app.router.add_get("/v3/projects:search", self._search)
        app.router.add_get("/v3/projects/{name}", self._get)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _fault(self, request: web.Request) -> web.Response | None:
        self.hits.append(str(request.rel_url))
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.headers.get("Authorization"):
            return _error(400, "INVALID_ARGUMENT", "stand-in expects anonymous credentials")
        if self.failures:
            status, reason, headers = self.failures.pop(0)
            response = _error(status, reason, f"injected {status}")
            response.headers.update(headers)
            return response
        return None

    async def _search(self, request: web.Request) -> web.Response:
        if fault := await self._fault(request):
            return fault
        query = request.query.get("query", "")
        wanted = query.split(":", 1)[1].lower() if query.startswith("id:") else None
        found = [p for p in self.projects if wanted and p["projectId"].lower() == wanted]
        return web.json_response({"projects": found} if found else {})

    async def _get(self, request: web.Request) -> web.Response:
        if fault := await self._fault(request):
            return fault
        name = request.match_info["name"]
        for project in self.projects:
            if name in (project["projectId"], project["name"].split("/")[1]):
                return web.json_response(project)
        # Like GCP: 403 for projects that do not exist (or that the caller may not see).
        return _error(403, "PERMISSION_DENIED", f"Permission denied on resource {name}")
