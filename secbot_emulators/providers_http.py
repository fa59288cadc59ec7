"""A real HTTP stand-in for the enrichment providers, with switchable failure modes.

:class:`ProviderServer` listens on 127.0.0.1 (random port) and answers ``GET`` on the paths it
was given with their JSON bodies (404 ``{"error": ...}`` elsewhere), so an enricher built by
production wiring can be pointed at it by URL. ``mode`` switches every answer at once:

- ``"ok"``: the canned bodies;
- ``"error"``: HTTP 500 with a JSON error body (what a broken provider returns);
- ``"garbage"``: HTTP 200 whose body is not JSON (a proxy's HTML page, a truncated write);
- ``"slow"``: the canned body, but only after ``delay`` seconds.

``redirects`` maps a path to an absolute URL answered with ``302 Location`` (a provider moving an
endpoint, or a hostile one pointing elsewhere); ``received`` records each request's path and
headers, so a second server used as the redirect target shows what a client sent it.

After :meth:`stop` (or for :data:`REFUSED_URL`) connections are refused.

Provider paths, as their public APIs document them: GCP Resource Manager ``/v3/projects/{id}``
and ``/v3/projects:search``, IAM ``/v1/projects/-/serviceAccounts/{email}``, Entitle
``/public/v1/permissions``, a generic JIT service ``/grants``, PagerDuty ``/users`` and
``/oncalls``, Opsgenie ``/v2/users/{email}`` and ``/v2/schedules/on-calls``, an HRIS
``/employees/{email}``, AbuseIPDB ``/api/v2/check``, GreyNoise ``/v3/community/{ip}``,
VirusTotal ``/api/v3/{ip_addresses|domains|files}/{id}``, RDAP ``/domain/{name}``, ``/ip/{ip}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping
from typing import Any, Literal

from aiohttp import web

Mode = Literal["ok", "error", "garbage", "slow"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: A URL nothing listens on: the port was free a moment ago and nobody binds it on purpose.
REFUSED_URL = f"http://127.0.0.1:{_free_port()}"


class ProviderServer:
    """Canned JSON by path over real HTTP; ``requests`` records every path asked for."""

    def __init__(self, routes: Mapping[str, Any],
                 redirects: Mapping[str, str] | None = None) -> None:
        self.routes = dict(routes)
        self.redirects = dict(redirects or {})
        self.received: list[tuple[str, dict[str, str]]] = []
        self.mode: Mode = "ok"
        self.delay = 5.0
        self.requests: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> ProviderServer:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            self._stopping.set()  # release "slow" answers, or cleanup waits for each of them
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ProviderServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append(path)
        self.received.append((path, dict(request.headers)))
        if path in self.redirects:
            raise web.HTTPFound(self.redirects[path])
        if self.mode == "error":
            return web.json_response({"error": {"code": 500, "message": "internal error"}},
                                     status=500)
        if self.mode == "garbage":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>",
                                content_type="application/json")
        if self.mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.delay)
            if self._stopping.is_set():
                return web.json_response({"error": "shutting down"}, status=503)
        if path not in self.routes:
            return web.json_response({"error": f"no such route in stand-in: {path}"},
                                     status=404)
        return web.json_response(self.routes[path])
