"""Aggregations for the Elasticsearch emulator: the documented subset, ES's response shapes.

Bucket aggregations ``terms`` (``field``, ``size`` default 10, ``missing``; buckets ordered by
``doc_count`` desc then key asc, ES's default; ``doc_count_error_upper_bound`` is 0 and
``sum_other_doc_count`` counts documents of the buckets cut by ``size``) and ``filter`` (one
query: ``{"doc_count", …sub-aggregations}``); metrics ``percentiles`` (``field``,
``percents`` default ``[1, 5, 25, 50, 75, 95, 99]``, answered as ``{"values": {"50.0": v}}``,
``null`` without values; exact linear interpolation between closest ranks, which ES's
t-digest approaches and matches on small sets), ``value_count``, ``min``, ``max``, ``sum``,
``avg``. Fields may be runtime fields (:mod:`secbot_emulators.elastic_runtime`). Anything else
is a 400, so an aggregation the emulator cannot answer faithfully fails loudly.

The emulator also learns the ``prefix`` query here (``{"prefix": {"f": "v"}}`` or
``{"prefix": {"f": {"value": "v"}}}``), used in aggregation filters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from secbot_emulators.elastic_query import (
    _COMPILERS,
    Predicate,
    QueryError,
    Record,
    compile_query,
    field_values,
)
from secbot_emulators.elastic_runtime import RuntimeFields

_DEFAULT_PERCENTS = [1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0]


def _prefix(body: Any, now_ms: int) -> Predicate:
    if not isinstance(body, Mapping) or len(body) != 1:
        raise QueryError("parsing_exception", "[prefix] query doesn't support multiple fields")
    name, spec = next(iter(body.items()))
    value = spec.get("value") if isinstance(spec, Mapping) else spec
    if not isinstance(value, str):
        raise QueryError("parsing_exception", "[prefix] query needs a string [value]")
    return lambda r: any(isinstance(v, str) and v.startswith(value)
                         for v in field_values(r, name))


_COMPILERS.setdefault("prefix", _prefix)  # the query table is elastic_query's; prefix lives here


class _Context:
    def __init__(self, runtime: RuntimeFields, now_ms: int) -> None:
        self.runtime = runtime
        self.now_ms = now_ms


def run_aggregations(aggs: Any, records: Sequence[Record], *, runtime_mappings: Any,
                     now_ms: int) -> dict[str, Any]:
    """The ``aggregations`` object of a search whose matching documents are ``records``."""
    return _run(aggs, records, _Context(RuntimeFields(runtime_mappings), now_ms))


def _run(aggs: Any, records: Sequence[Record], ctx: _Context) -> dict[str, Any]:
    if not isinstance(aggs, Mapping):
        raise QueryError("parsing_exception", "Expected [START_OBJECT] under [aggregations]")
    out: dict[str, Any] = {}
    for name, spec in aggs.items():
        if not isinstance(spec, Mapping):
            raise QueryError("parsing_exception", f"Expected [START_OBJECT] under [{name}]")
        subs = spec.get("aggs", spec.get("aggregations"))
        kinds = [key for key in spec if key not in ("aggs", "aggregations", "meta")]
        if len(kinds) != 1:
            raise QueryError("parsing_exception", f"Expected exactly one aggregation type "
                             f"under [{name}], found {kinds}")
        kind = kinds[0]
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise QueryError("parsing_exception", f"Unknown aggregation type [{kind}] did you "
                             "mean [terms]?")
        if subs is not None and kind not in _BUCKETS:
            raise QueryError("aggregation_initialization_exception", f"Aggregator [{name}] "
                             f"of type [{kind}] cannot accept sub-aggregations")
        out[str(name)] = handler(spec[kind], records, subs, ctx)
    return out


def _field(body: Any, kind: str) -> str:
    name = body.get("field") if isinstance(body, Mapping) else None
    if not isinstance(name, str):
        raise QueryError("illegal_argument_exception", f"Required one of fields [field, "
                         f"script], but none were specified for [{kind}]")
    return name


def _key(value: Any) -> Any:
    return value if isinstance(value, (int, float, str)) else str(value)


def _terms(body: Any, records: Sequence[Record], subs: Any, ctx: _Context) -> dict[str, Any]:
    name = _field(body, "terms")
    size = int(body.get("size", 10))
    missing = body.get("missing")
    groups: dict[Any, list[Record]] = {}
    for record in records:
        values = ctx.runtime.values(record, name)
        if not values and missing is not None:
            values = [missing]
        for value in dict.fromkeys(_key(v) for v in values):
            groups.setdefault(value, []).append(record)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), str(item[0])))
    buckets = []
    for key, members in ordered[:max(0, size)]:
        bucket: dict[str, Any] = {"key": key, "doc_count": len(members)}
        if subs is not None:
            bucket.update(_run(subs, members, ctx))
        buckets.append(bucket)
    return {"doc_count_error_upper_bound": 0,
            "sum_other_doc_count": sum(len(m) for _, m in ordered[max(0, size):]),
            "buckets": buckets}


def _filter(body: Any, records: Sequence[Record], subs: Any, ctx: _Context) -> dict[str, Any]:
    predicate = compile_query(body, ctx.now_ms)
    members = [record for record in records if predicate(record)]
    out: dict[str, Any] = {"doc_count": len(members)}
    if subs is not None:
        out.update(_run(subs, members, ctx))
    return out


def _numbers(body: Any, records: Sequence[Record], ctx: _Context, kind: str) -> list[float]:
    name = _field(body, kind)
    out: list[float] = []
    for record in records:
        for value in ctx.runtime.values(record, name):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise QueryError("illegal_argument_exception", f"Field [{name}] of type "
                                 f"[keyword] is not supported for aggregation [{kind}]")
            out.append(float(value))
    return out


def percentile(ordered: Sequence[float], percent: float) -> float:
    """Linear interpolation between closest ranks of sorted values (p in 0..100)."""
    rank = (len(ordered) - 1) * percent / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _percentiles(body: Any, records: Sequence[Record], subs: Any, ctx: _Context
                 ) -> dict[str, Any]:
    values = sorted(_numbers(body, records, ctx, "percentiles"))
    percents = body.get("percents", _DEFAULT_PERCENTS)
    return {"values": {str(float(p)): percentile(values, float(p)) if values else None
                       for p in percents}}


def _metric(reduce: Callable[[list[float]], float | None], kind: str
            ) -> Callable[[Any, Sequence[Record], Any, _Context], dict[str, Any]]:
    def handler(body: Any, records: Sequence[Record], subs: Any, ctx: _Context
                ) -> dict[str, Any]:
        values = _numbers(body, records, ctx, kind)
        return {"value": reduce(values)}
    return handler


def _value_count(body: Any, records: Sequence[Record], subs: Any, ctx: _Context
                 ) -> dict[str, Any]:
    name = _field(body, "value_count")
    return {"value": sum(len(ctx.runtime.values(record, name)) for record in records)}


_BUCKETS = frozenset({"terms", "filter"})
_HANDLERS: dict[str, Callable[[Any, Sequence[Record], Any, _Context], dict[str, Any]]] = {
    "terms": _terms, "filter": _filter, "percentiles": _percentiles,
    "value_count": _value_count,
    "min": _metric(lambda v: min(v) if v else None, "min"),
    "max": _metric(lambda v: max(v) if v else None, "max"),
    "sum": _metric(lambda v: float(sum(v)), "sum"),
    "avg": _metric(lambda v: sum(v) / len(v) if v else None, "avg"),
}

__all__ = ["percentile", "run_aggregations"]
