"""Elastic Security emulator: Elasticsearch + Kibana's alert API on two local ports.

Usage in tests::

    async with ElasticEmulator.running(api_key="k") as emu:
        emu.index_documents(".alerts-security.alerts-default", alerts)
        emu.fail_for(2.0, status=503)          # fault injection
        ... AsyncElasticsearch(emu.url, api_key="k") / httpx.AsyncClient(base_url=emu.kibana_url)

From a shell: ``python -m secbot_emulators.elastic --port 9200 --seed alerts.ndjson``.

Every Elasticsearch response carries ``X-Elastic-Product: Elasticsearch`` (the 9.x client
refuses a 2xx without it); errors use ES's ``{"error": {"root_cause": ...}, "status": N}``
body. The alias ``.alerts-security.alerts-<space>`` resolves to the backing index
``.internal.alerts-security.alerts-<space>-000001``, which search hits report as ``_index``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from secbot_emulators.elastic_endpoint import EndpointActions
from secbot_emulators.elastic_http import EsApi, es_error, json_response
from secbot_emulators.elastic_kibana import PROFILE_UID, KibanaApi, KibanaError
from secbot_emulators.elastic_query import QueryError
from secbot_emulators.elastic_store import DocumentStore
from secbot_emulators.elastic_values import id_and_source, json_values

Target = Literal["es", "kibana", "all"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_WWW_AUTH = 'ApiKey, Basic realm="security", charset="UTF-8"'
_AUTH_REASON = ("unable to authenticate with provided credentials and anonymous access is not "
                "allowed for this request")


@dataclass
class Fault:
    """One injected fault: an error status, or a hang, for a count of requests or a period."""

    kind: Literal["status", "hang"]
    target: Target
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    remaining: int | None = None
    until: float | None = None

    def live(self, now: float) -> bool:
        return (self.remaining is None or self.remaining > 0) and (
            self.until is None or now < self.until)


class FaultInjector:
    """Faults applied in order of injection to matching requests."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.injected = 0  # requests that got a fault, for assertions

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def take(self, target: Literal["es", "kibana"]) -> Fault | None:
        now = time.monotonic()
        self.faults = [f for f in self.faults if f.live(now)]
        for fault in self.faults:
            if fault.target in (target, "all"):
                if fault.remaining is not None:
                    fault.remaining -= 1
                self.injected += 1
                return fault
        return None


class ElasticEmulator:
    """Elasticsearch (``url``) and Kibana (``kibana_url``) stand-ins over one document store.

    ``api_key`` (if set) must arrive as ``Authorization: ApiKey <api_key>`` on both, else
    401 ``security_exception``. ``kibana.supports_reason = False`` emulates a Kibana that
    rejects the closing ``reason``.
    """

    def __init__(self, *, api_key: str | None = None, spaces: Sequence[str] = ("default",),
                 version: str = "9.1.0", profile_uid: str = PROFILE_UID) -> None:
        self.store = DocumentStore(spaces)
        self.es = EsApi(self.store, version=version)
        self.kibana = KibanaApi(self.store, spaces, profile_uid)
        self.endpoint = EndpointActions()  # Elastic Defend response actions (isolate/release)
        self.faults = FaultInjector()
        self.api_key = api_key
        self.requests: list[tuple[str, str, str]] = []  # (app, method, path?query)
        self.url = ""
        self.kibana_url = ""
        self._runners: list[web.AppRunner] = []

    # --- data -------------------------------------------------------------------------------
    def index_documents(self, index: str, docs: Iterable[Mapping[str, Any]], *,
                        visible_after: float = 0.0) -> int:
        """Store ``_source``s / hits / es_archiver records; searchable after ``visible_after`` s.

        A positive ``visible_after`` is "late visibility": the document exists (realtime GET
        finds it) but searches miss it until then, like an alert written by a delayed rule run.
        """
        count = 0
        for doc in docs:
            doc_id, source = id_and_source(doc)
            self.store.put(index, doc_id or None, source, visible_after=visible_after, bulk=True)
            count += 1
        return count

    def document(self, index: str, doc_id: str) -> dict[str, Any] | None:
        record = self.store.get(index, doc_id)
        return None if record is None else record.source

    # --- faults -----------------------------------------------------------------------------
    def fail_next(self, count: int, *, status: int = 503, retry_after: float | None = None,
                  target: Target = "all") -> None:
        """Answer the next ``count`` requests with ``status`` (429 → add ``retry_after``)."""
        self.faults.add(Fault("status", target, status, retry_after, remaining=count))

    def fail_for(self, seconds: float, *, status: int = 503, retry_after: float | None = None,
                 target: Target = "all") -> None:
        """Answer every request for the next ``seconds`` with ``status``."""
        self.faults.add(Fault("status", target, status, retry_after,
                              until=time.monotonic() + seconds))

    def hang_next(self, count: int, seconds: float, *, target: Target = "all") -> None:
        """Delay each of the next ``count`` requests by ``seconds`` before answering."""
        self.faults.add(Fault("hang", target, seconds=seconds, remaining=count))

    def hang_for(self, seconds: float, *, target: Target = "all") -> None:
        """Hold every request arriving in the next ``seconds`` until that period ends."""
        self.faults.add(Fault("hang", target, until=time.monotonic() + seconds))

    def calls(self, app: Literal["es", "kibana"] | None = None, path: str = "") -> int:
        """Requests received so far (of ``app``, whose path contains ``path``): what a
        client cost the SIEM, for call-count budgets in tests and benches."""
        return sum(1 for seen_app, _, seen_path in self.requests
                   if (app is None or seen_app == app) and path in seen_path)

    def clear_faults(self) -> None:
        self.faults.faults.clear()

    async def _apply_fault(self, target: Literal["es", "kibana"]) -> Fault | None:
        fault = self.faults.take(target)
        if fault is None or fault.kind == "status":
            return fault
        delay = fault.seconds if fault.until is None else fault.until - time.monotonic()
        await asyncio.sleep(max(0.0, delay))
        return None

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == (
            f"ApiKey {self.api_key}")

    # --- apps -------------------------------------------------------------------------------
    @web.middleware
    async def _es_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(("es", request.method, request.path_qs))
        response: web.StreamResponse
        try:
            fault = await self._apply_fault("es")
            if fault is not None:
                response = self._es_fault(fault)
            elif not self._authorized(request):
                response = es_error(401, "security_exception", _AUTH_REASON,
                                    {"header": {"WWW-Authenticate": [_WWW_AUTH]}},
                                    {"WWW-Authenticate": _WWW_AUTH})
            else:
                response = await handler(request)
        except QueryError as exc:
            response = es_error(exc.status, exc.error_type, exc.reason, exc.extra)
        except web.HTTPException as exc:
            response = json_response({"error": f"no handler found for uri [{request.path}] and "
                                      f"method [{request.method}]", "status": exc.status},
                                     400 if exc.status == 404 else exc.status)
        except Exception as exc:  # a crash must still look like Elasticsearch to the client
            response = es_error(500, "exception", f"emulator error: {exc!r}")
        response.headers["X-Elastic-Product"] = "Elasticsearch"
        return response

    @staticmethod
    def _es_fault(fault: Fault) -> web.Response:
        headers = {} if fault.retry_after is None else {
            "Retry-After": str(max(1, round(fault.retry_after)))}
        if fault.status == 429:
            return es_error(429, "es_rejected_execution_exception",
                            "rejected execution of coordinating operation [emulated]",
                            headers=headers)
        return es_error(fault.status, "unavailable_shards_exception",
                        "[.internal.alerts-security.alerts-default-000001][0] primary shard is "
                        "not active (emulated outage)", headers=headers)

    @web.middleware
    async def _kibana_middleware(self, request: web.Request, handler: Handler
                                 ) -> web.StreamResponse:
        self.requests.append(("kibana", request.method, request.path_qs))
        try:
            fault = await self._apply_fault("kibana")
            if fault is not None:
                headers = {} if fault.retry_after is None else {
                    "Retry-After": str(max(1, round(fault.retry_after)))}
                return json_response({"statusCode": fault.status, "error": "Service Unavailable"
                                      if fault.status >= 500 else "Too Many Requests",
                                      "message": "emulated fault"}, fault.status, headers)
            if not self._authorized(request):
                return json_response({"statusCode": 401, "error": "Unauthorized",
                                      "message": _AUTH_REASON}, 401)
            if request.method not in ("GET", "HEAD") and not (
                    "kbn-xsrf" in request.headers or "elastic-api-version" in request.headers):
                return json_response({"statusCode": 400, "error": "Bad Request",
                                      "message": "Request must contain a kbn-xsrf header."}, 400)
            return await handler(request)
        except KibanaError as exc:
            return json_response(exc.body, exc.status)
        except web.HTTPException as exc:
            return json_response({"statusCode": exc.status, "error": exc.reason,
                                  "message": exc.reason}, exc.status)

    def es_app(self) -> web.Application:
        app = web.Application(middlewares=[self._es_middleware], client_max_size=256 * 2**20)
        app.add_routes(self.es.routes())
        return app

    def kibana_app(self) -> web.Application:
        app = web.Application(middlewares=[self._kibana_middleware])
        app.add_routes(self.kibana.routes())
        app.add_routes(self.endpoint.routes())
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, kibana_port: int = 0) -> None:
        urls = []
        for app, wanted in ((self.es_app(), port), (self.kibana_app(), kibana_port)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, wanted).start()
            self._runners.append(runner)
            bound = runner.addresses[0]
            urls.append(f"http://{host}:{bound[1]}")
        self.url, self.kibana_url = urls

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    @classmethod
    @asynccontextmanager
    async def running(cls, port: int = 0, *, kibana_port: int = 0, host: str = "127.0.0.1",
                      **options: Any) -> AsyncIterator[ElasticEmulator]:
        """A started emulator (ephemeral ports by default), stopped on exit."""
        emulator = cls(**options)
        await emulator.start(host, port, kibana_port)
        try:
            yield emulator
        finally:
            await emulator.stop()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m secbot_emulators.elastic",
        description="Elasticsearch + Kibana alert API emulator for SecBot.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200, help="Elasticsearch port (0: any)")
    parser.add_argument("--kibana-port", type=int, default=5601, help="Kibana port (0: any)")
    parser.add_argument("--seed", action="append", default=[], type=Path,
                        help="NDJSON/JSON of alert _sources or hits (repeatable)")
    parser.add_argument("--index", default=".alerts-security.alerts-default",
                        help="index the --seed documents go to")
    parser.add_argument("--api-key", default=None, help="require this ApiKey credential")
    parser.add_argument("--space", action="append", default=None, help="Kibana space(s)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    emulator = ElasticEmulator(api_key=args.api_key, spaces=args.space or ["default"])
    for path in args.seed:
        docs = list(json_values(path.read_text(encoding="utf-8")))
        emulator.index_documents(args.index, docs)
    await emulator.start(args.host, args.port, args.kibana_port)
    print(json.dumps({"elasticsearch": emulator.url, "kibana": emulator.kibana_url,
                      "documents": sum(len(i.docs) for i in emulator.store.indices.values())}),
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: serve until interrupted."""
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
