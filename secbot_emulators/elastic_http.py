"""The Elasticsearch REST endpoints of the emulator (request parsing and response bodies).

Response shapes follow the elasticsearch-specification examples and real captures (see
``protocols/elasticsearch_py_and_es_http.md``): sorted hits carry ``sort`` arrays with epoch-ms
dates, ``_score``/``max_score`` are null when sorting, ``hits.total`` is omitted when
``track_total_hits`` is false, and a PIT search appends the implicit ``_shard_doc`` tiebreaker.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from aiohttp import web

from secbot_emulators.elastic_aggs import run_aggregations
from secbot_emulators.elastic_query import (
    QueryError,
    Record,
    SortSpec,
    compile_query,
    parse_sort,
    sortable,
    timestamp_window,
)
from secbot_emulators.elastic_store import DocumentStore
from secbot_emulators.elastic_values import now_millis

SEARCH_KEYS = frozenset({
    "query", "sort", "size", "from", "search_after", "pit", "_source", "track_total_hits",
    "fields", "runtime_mappings", "timeout", "version", "seq_no_primary_term", "aggs",
    "aggregations", "stored_fields", "docvalue_fields",
})
UPDATE_BY_QUERY_KEYS = frozenset({"query", "script", "max_docs", "conflicts", "slice",
                                  "runtime_mappings"})
_SHARDS = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None
                  ) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type="application/json", headers=headers)


def es_error(status: int, error_type: str, reason: str, extra: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None) -> web.Response:
    """Elasticsearch's error body: ``{"error": {"root_cause": [...], ...}, "status": N}``."""
    cause = {"type": error_type, "reason": reason, **(extra or {})}
    return json_response({"error": {"root_cause": [cause], **cause}, "status": status},
                         status, headers)


def unknown_key(key: str) -> QueryError:
    return QueryError("parsing_exception", f"Unknown key for a START_OBJECT in [{key}].")


def duration_seconds(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise QueryError("illegal_argument_exception", f"failed to parse setting [keep_alive] "
                         f"with value [{text}] as a time value: unit is missing or unrecognized")
    return int(match[1]) * _SECONDS[match[2]]


def _flag(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    return default if value is None else value in ("", "true")


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise QueryError("x_content_parse_exception", f"Failed to parse request body: {exc}"
                         ) from exc
    if not isinstance(body, dict):
        raise QueryError("parsing_exception", "request body must be a JSON object")
    return body


def _wanted(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(path, p) or path.startswith(p + ".") for p in patterns)


def _may_contain(path: str, patterns: Sequence[str]) -> bool:
    return any(p.startswith(path + ".") or "*" in p for p in patterns)


def filter_source(source: Mapping[str, Any], includes: Sequence[str],
                  excludes: Sequence[str], prefix: str = "") -> dict[str, Any]:
    """``_source`` includes/excludes with wildcards over dotted paths (keys or nesting)."""
    out: dict[str, Any] = {}
    for key, value in source.items():
        path = prefix + key
        if excludes and _wanted(path, excludes):
            continue
        if not includes or _wanted(path, includes):
            out[key] = value
        elif isinstance(value, Mapping) and _may_contain(path, includes):
            inner = filter_source(value, includes, excludes, path + ".")
            if inner:
                out[key] = inner
    return out


def _source_filter(body: Mapping[str, Any], request: web.Request
                   ) -> tuple[bool, list[str], list[str]]:
    spec = body.get("_source", request.query.get("_source"))
    includes = [p for p in request.query.get("_source_includes", "").split(",") if p]
    excludes = [p for p in request.query.get("_source_excludes", "").split(",") if p]
    if spec in (False, "false"):
        return False, [], []
    if isinstance(spec, str) and spec not in ("true", ""):
        includes += spec.split(",")
    elif isinstance(spec, list):
        includes += [str(p) for p in spec]
    elif isinstance(spec, Mapping):
        includes += list(spec.get("includes", spec.get("include", [])))
        excludes += list(spec.get("excludes", spec.get("exclude", [])))
    return True, includes, excludes


def _total(track: Any, total: int) -> dict[str, Any]:
    if track is True:
        return {"value": total, "relation": "eq"}
    limit = track if isinstance(track, int) else 10_000
    return {"value": min(total, limit), "relation": "gte" if total > limit else "eq"}


def _track(body: Mapping[str, Any], request: web.Request) -> Any:
    track = body.get("track_total_hits", request.query.get("track_total_hits"))
    if isinstance(track, str):
        return {"true": True, "false": False}.get(track, int(track) if track.isdigit() else None)
    return track


class EsApi:
    """Handlers for the Elasticsearch endpoints, over one :class:`DocumentStore`."""

    def __init__(self, store: DocumentStore, *, version: str = "9.1.0") -> None:
        self.store = store
        self.version = version
        self.aggregation_searches = 0  # searches with aggregations, for the stats bench/tests

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.info),
            web.post("/_search", self.search), web.get("/_search", self.search),
            web.delete("/_pit", self.close_pit),
            web.post("/_bulk", self.bulk), web.put("/_bulk", self.bulk),
            web.post("/_refresh", self.refresh), web.get("/_refresh", self.refresh),
            web.post("/{index}/_search", self.search), web.get("/{index}/_search", self.search),
            web.post("/{index}/_update_by_query", self.update_by_query),
            web.post("/{index}/_pit", self.open_pit),
            web.post("/{index}/_bulk", self.bulk), web.put("/{index}/_bulk", self.bulk),
            web.post("/{index}/_refresh", self.refresh), web.get("/{index}/_refresh", self.refresh),
            web.put("/{index}/_doc/{id}", self.put_doc),
            web.post("/{index}/_doc/{id}", self.put_doc),
            web.put("/{index}/_create/{id}", self.create_doc),
            web.post("/{index}/_create/{id}", self.create_doc),
            web.post("/{index}/_doc", self.put_doc), web.get("/{index}/_doc/{id}", self.get_doc),
            web.put("/{index}", self.create_index),
        ]

    async def info(self, request: web.Request) -> web.Response:
        return json_response({
            "name": "secbot-emulator", "cluster_name": "secbot-emulator",
            "cluster_uuid": "zk-HjQtYQGyL3NFSSu7InA",
            "version": {"number": self.version, "build_flavor": "default",
                        "build_type": "docker", "build_hash": "00000000",
                        "build_date": "2025-07-09T22:10:13.578182715Z", "build_snapshot": False,
                        "lucene_version": "10.2.2",
                        "minimum_wire_compatibility_version": "8.19.0",
                        "minimum_index_compatibility_version": "8.0.0"},
            "tagline": "You Know, for Search"})

    async def search(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        body = await read_json(request)
        unknown = sorted(set(body) - SEARCH_KEYS)
        if unknown:
            raise unknown_key(unknown[0])
        now_ms = now_millis()
        pit = body.get("pit")
        specs = parse_sort(body.get("sort", request.query.get("sort")))
        if pit is not None:
            if request.match_info.get("index"):
                raise QueryError("action_request_validation_exception", "Validation Failed: 1: "
                                 "[indices] cannot be used with point in time. Do not specify "
                                 "any index with point in time.;")
            keep = pit.get("keep_alive")
            views = self.store.pit(str(pit.get("id")), duration_seconds(keep) if keep else None)
            if not any(spec.field == "_shard_doc" for spec in specs):
                specs.append(SortSpec("_shard_doc"))
        else:
            views = self.store.views(self.store.resolve(
                request.match_info.get("index", "_all"),
                ignore_unavailable=_flag(request, "ignore_unavailable", False),
                allow_no_indices=_flag(request, "allow_no_indices", True)))
        after = self._search_after(body, specs, now_ms)
        size = int(body.get("size", request.query.get("size", 10)))
        start = int(body.get("from", request.query.get("from", 0)))
        track = _track(body, request)
        query = body.get("query")
        aggs = body.get("aggs", body.get("aggregations"))
        rows, total = self.store.search(  # aggregations see every match: no early stop
            views, compile_query(query, now_ms), specs, after, start + size,
            track is not False or aggs is not None, now_ms, timestamp_window(query, now_ms))
        wanted, includes, excludes = _source_filter(body, request)
        hits = [self._hit(record, values, bool(specs), wanted, includes, excludes)
                for record, values in rows[start:start + size]]
        result: dict[str, Any] = {"took": int((time.monotonic() - started) * 1000),
                                  "timed_out": False, "_shards": _SHARDS, "hits": {}}
        if track is not False:
            result["hits"]["total"] = _total(track, total)
        result["hits"]["max_score"] = None if specs or not hits else 1.0
        result["hits"]["hits"] = hits
        if aggs is not None:
            self.aggregation_searches += 1
            result["aggregations"] = run_aggregations(
                aggs, [record for record, _ in rows], now_ms=now_ms,
                runtime_mappings=body.get("runtime_mappings"))
        if pit is not None:
            result["pit_id"] = pit.get("id")
        return json_response(result)

    @staticmethod
    def _search_after(body: Mapping[str, Any], specs: list[SortSpec], now_ms: int
                      ) -> list[Any] | None:
        after = body.get("search_after")
        if after is None:
            return None
        if not isinstance(after, list) or len(after) != len(specs):
            count = len(after) if isinstance(after, list) else 1
            raise QueryError("illegal_argument_exception", f"search_after has {count} value(s) "
                             f"but sort has {len(specs)}.")
        return [sortable(spec.field, value, now_ms)
                for spec, value in zip(specs, after, strict=True)]

    @staticmethod
    def _hit(record: Record, values: list[Any], sorted_: bool, wanted: bool,
             includes: list[str], excludes: list[str]) -> dict[str, Any]:
        hit: dict[str, Any] = {"_index": record.index, "_id": record.id,
                               "_score": None if sorted_ else 1.0}
        if wanted:
            hit["_source"] = (filter_source(record.source, includes, excludes)
                              if includes or excludes else record.source)
        if sorted_:
            hit["sort"] = values
        return hit

    async def update_by_query(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        body = await read_json(request)
        unknown = sorted(set(body) - UPDATE_BY_QUERY_KEYS)
        if unknown:
            raise unknown_key(unknown[0])
        indices = self.store.resolve(
            request.match_info["index"],
            ignore_unavailable=_flag(request, "ignore_unavailable", False),
            allow_no_indices=_flag(request, "allow_no_indices", True))
        max_docs = body.get("max_docs", request.query.get("max_docs"))
        now_ms = now_millis()
        count = self.store.update_by_query(indices, compile_query(body.get("query"), now_ms),
                                           body.get("script"),
                                           None if max_docs is None else int(max_docs))
        return json_response(update_by_query_body(count, started))

    async def put_doc(self, request: web.Request, *, create: bool = False) -> web.Response:
        source = await read_json(request)
        create = create or request.query.get("op_type") == "create"
        record, created = self.store.put(request.match_info["index"],
                                         request.match_info.get("id"), source, create=create)
        return json_response(self._write_result(record, created), 201 if created else 200)

    async def create_doc(self, request: web.Request) -> web.Response:
        return await self.put_doc(request, create=True)

    @staticmethod
    def _write_result(record: Record, created: bool) -> dict[str, Any]:
        return {"_index": record.index, "_id": record.id, "_version": record.version,
                "result": "created" if created else "updated",
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": record.seq_no, "_primary_term": 1}

    async def get_doc(self, request: web.Request) -> web.Response:
        index, doc_id = request.match_info["index"], request.match_info["id"]
        record = self.store.get(index, doc_id)
        if record is None:
            return json_response({"_index": index, "_id": doc_id, "found": False}, 404)
        return json_response({"_index": record.index, "_id": record.id,
                              "_version": record.version, "_seq_no": record.seq_no,
                              "_primary_term": 1, "found": True, "_source": record.source})

    async def bulk(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        lines = [line for line in (await request.text()).split("\n") if line.strip()]
        default_index = request.match_info.get("index")
        items, errors, position = [], False, 0
        while position < len(lines):
            action = json.loads(lines[position])
            op, meta = next(iter(action.items()))
            source = json.loads(lines[position + 1]) if op in ("index", "create") else {}
            position += 2 if op in ("index", "create") else 1
            index = meta.get("_index", default_index)
            try:
                if op not in ("index", "create"):
                    raise QueryError("illegal_argument_exception",
                                     f"the emulator's _bulk supports index/create, not [{op}]")
                record, created = self.store.put(index, meta.get("_id"), source,
                                                 create=op == "create", bulk=True)
                item = {**self._write_result(record, created), "status": 201 if created else 200}
            except QueryError as exc:
                errors = True
                item = {"_index": index, "_id": meta.get("_id"), "status": exc.status,
                        "error": {"type": exc.error_type, "reason": exc.reason, **exc.extra}}
            items.append({op: item})
        return json_response({"took": int((time.monotonic() - started) * 1000),
                              "errors": errors, "items": items})

    async def open_pit(self, request: web.Request) -> web.Response:
        keep = request.query.get("keep_alive")
        if not keep:
            raise QueryError("action_request_validation_exception",
                             "Validation Failed: 1: [keep_alive] is not specified;")
        indices = self.store.resolve(
            request.match_info["index"],
            ignore_unavailable=_flag(request, "ignore_unavailable", False))
        pit_id = self.store.open_pit(indices, duration_seconds(keep))
        return json_response({"id": pit_id, "_shards": _SHARDS})

    async def close_pit(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        ids = body.get("id")
        freed = self.store.close_pits(ids if isinstance(ids, list) else [str(ids)])
        return json_response({"succeeded": True, "num_freed": freed}, 200 if freed else 404)

    async def refresh(self, request: web.Request) -> web.Response:
        self.store.resolve(request.match_info.get("index", "_all"),
                           ignore_unavailable=_flag(request, "ignore_unavailable", False))
        return json_response({"_shards": {"total": 2, "successful": 1, "failed": 0}})

    async def create_index(self, request: web.Request) -> web.Response:
        name = request.match_info["index"]
        if name in self.store.indices or name in self.store.aliases:
            concrete = self.store.aliases.get(name, name)
            raise QueryError("resource_already_exists_exception",
                             f"index [{concrete}/_na_] already exists", 400,
                             {"index_uuid": "_na_", "index": concrete})
        self.store.write_target(name)
        return json_response({"acknowledged": True, "shards_acknowledged": True, "index": name})


def update_by_query_body(count: int, started: float) -> dict[str, Any]:
    """The ``_update_by_query`` response (also what Kibana's status/tags routes return)."""
    return {"took": int((time.monotonic() - started) * 1000), "timed_out": False,
            "total": count, "updated": count, "deleted": 0, "batches": 1 if count else 0,
            "version_conflicts": 0, "noops": 0, "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0, "requests_per_second": -1.0, "throttled_until_millis": 0,
            "failures": []}
