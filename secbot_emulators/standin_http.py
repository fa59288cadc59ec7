"""A small aiohttp server base for the destination stand-ins (PagerDuty Events, Jira, a
webhook receiver): ephemeral port on 127.0.0.1, ``running()`` as an async context manager,
and switchable faults every stand-in shares.

``fail_next(status, count, retry_after)`` makes the next ``count`` requests answer ``status``
(429 and 5xx carry ``Retry-After`` when given); ``down()`` / ``up()`` switch between refusing
every request with 503 and answering normally; ``delay`` answers late, *after* doing what
was asked (a caller killed meanwhile never learns it succeeded). Faults are the services'
documented error answers, not closed sockets: a closed socket is :meth:`stop`.

:class:`AppServer` is only the serving part (start on an ephemeral port, stop, ``running()``),
for the stand-ins whose faults follow their own service's rules (Okta, GCP IAM).
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status,
                        content_type="application/json", headers=headers)



def html_page(title: str, body: str) -> web.Response:
    """A demo page (no login, plain HTML); ``body`` is HTML already escaped."""
    return web.Response(text=f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}"
                        f"</title>{body}", content_type="text/html")


def table_page(title: str, heading: str, columns: Sequence[str],
               rows: Iterable[Sequence[str]]) -> web.Response:
    """A demo page with one table; ``rows`` are cells of HTML already escaped."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return html_page(title, f"<h1>{html.escape(heading)}</h1><table border=1 cellpadding=4>"
                            f"<tr>{head}</tr>{cells}</table>")

class AppServer:
    """Serves :meth:`app` on 127.0.0.1 (an ephemeral port unless given); ``url`` once started."""

    url: str = ""
    _runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @classmethod
    @asynccontextmanager
    async def running(cls, *args: Any, **kwargs: Any) -> AsyncIterator[Self]:
        server = cls(*args, **kwargs)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[Self]:
        """This instance, started (ephemeral port), stopped on exit."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()


class StandIn(AppServer):
    """Base: subclasses add routes in :meth:`routes` and give :meth:`fault_body`."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self._runner = None
        self._faults: list[tuple[int, float | None]] = []
        self._down: tuple[int, float | None] | None = None
        self.delay = 0.0  # seconds between doing what was asked and answering (a slow link)
        # called with each handled request's path after it was done, before the answer goes
        # out (a test kills the caller there: the work is done, the caller never hears of it)
        self.after: Callable[[str], None] | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def fault_body(self, status: int) -> Any:
        return {"error": f"injected {status}"}

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """The next ``count`` requests answer ``status``."""
        self._faults.extend([(status, retry_after)] * count)

    def down(self, status: int = 503, retry_after: float | None = None) -> None:
        """Every request answers ``status`` until :meth:`up`."""
        self._down = (status, retry_after)

    def up(self) -> None:
        self._down = None
        self._faults.clear()

    @web.middleware
    async def _faulty(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        fault = self._faults.pop(0) if self._faults else self._down
        if fault is not None:
            status, retry_after = fault
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            return json_response(self.fault_body(status), status, headers)
        response = await handler(request)
        if self.after is not None:
            self.after(request.path)
        if self.delay:
            await asyncio.sleep(self.delay)
        return response

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faulty])
        self.routes(app)
        return app
