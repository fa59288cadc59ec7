"""Query DSL, sorting and ``_source`` filtering for the Elasticsearch emulator.

Only the subset SecBot (and Kibana's status route) sends is implemented: ``bool``
(filter/must/must_not/should + minimum_should_match), ``term``, ``terms``, ``ids``, ``range``
(gte/gt/lte/lt with ``now`` date math), ``exists``, ``match_all``/``match_none`` and ``match``
(keyword semantics: exact value, no analysis). Anything else is a 400 ``parsing_exception``,
so a query the emulator cannot answer faithfully fails loudly instead of matching wrongly.

Field values are read the way Elasticsearch indexes them: literal dotted keys and nested
objects are the same field, and arrays (also arrays of objects) contribute every element.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from secbot_emulators.elastic_values import epoch_millis, parse_date, term_matches

#: Fields the emulator maps as ``date``: compared and sorted as epoch milliseconds.
DATE_FIELDS = frozenset({
    "@timestamp", "event.created", "event.ingested", "kibana.alert.original_time",
    "kibana.alert.start", "kibana.alert.end", "kibana.alert.last_detected",
    "kibana.alert.workflow_status_updated_at", "kibana.alert.rule.created_at",
    "kibana.alert.rule.updated_at",
})


class QueryError(Exception):
    """A request the emulator rejects with an Elasticsearch error body (default 400)."""

    def __init__(self, error_type: str, reason: str, status: int = 400,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason
        self.status = status
        self.extra = dict(extra or {})


@dataclass(frozen=True, slots=True)
class Record:
    """One stored document version. Immutable: an update stores a new Record."""

    index: str
    id: str
    source: dict[str, Any]
    seq: int  # stable per document: the emulator's ``_shard_doc`` tiebreaker
    version: int = 1
    seq_no: int = 0
    visible_at: float = 0.0  # monotonic time from which searches see it ("late visibility")
    ts: int | None = field(default=None)  # @timestamp in epoch ms


Predicate = Callable[[Record], bool]

# --- field access -------------------------------------------------------------------------


def _collect(node: Any, parts: tuple[str, ...], out: list[Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, parts, out)
        return
    if not parts:
        if node is not None:
            out.append(node)
        return
    if not isinstance(node, Mapping):
        return
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut]) if cut > 1 else parts[0]
        if key in node:
            _collect(node[key], parts[cut:], out)


def field_values(record: Record, name: str) -> list[Any]:
    """Every value of field ``name`` in ``record`` (metadata fields ``_id``/``_index`` too)."""
    if name == "_id":
        return [record.id]
    if name == "_index":
        return [record.index]
    out: list[Any] = []
    _collect(record.source, tuple(name.split(".")), out)
    return out


# --- dates ---------------------------------------------------------------------------------

_MATH = re.compile(r"([+-])(\d+)([yMwdhHms])")
_UNITS = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1),
          "H": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1),
          "M": timedelta(days=30), "y": timedelta(days=365)}


def _round_down(moment: datetime, unit: str) -> datetime:
    if unit in "sm":
        return moment.replace(microsecond=0) if unit == "s" else moment.replace(
            second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in "hH":
        return moment.replace(minute=0, second=0, microsecond=0)
    if unit == "w":
        return day - timedelta(days=day.weekday())
    if unit == "M":
        return day.replace(day=1)
    return day.replace(month=1, day=1) if unit == "y" else day


def date_to_millis(value: Any, now_ms: int) -> int | None:
    """A date bound or value → epoch ms: numbers (epoch ms), ISO strings, ``now-5m/d`` math.

    Months and years in arithmetic are 30/365 days — enough for polling windows.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "||" in text:
        anchor, math = text.split("||", 1)
    elif text.startswith("now"):
        anchor, math = "now", text[3:]
    else:
        anchor, math = text, ""
    if anchor == "now":
        moment = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    elif anchor.isdigit():
        moment = datetime.fromtimestamp(int(anchor) / 1000, tz=UTC)
    else:
        parsed = parse_date(anchor)
        if parsed is None:
            return None
        moment = parsed
    rounding = ""
    if "/" in math:
        math, _, rounding = math.partition("/")
    for sign, amount, unit in _MATH.findall(math):
        step = _UNITS[unit] * int(amount)
        moment = moment + step if sign == "+" else moment - step
    if rounding in _UNITS:
        moment = _round_down(moment, rounding)
    return epoch_millis(moment)


def sortable(name: str, value: Any, now_ms: int) -> Any:
    """The value Elasticsearch sorts/compares on: epoch ms for date fields, else as is."""
    if name in DATE_FIELDS:
        return date_to_millis(value, now_ms)
    if isinstance(value, bool):
        return int(value)
    return value


# --- query compilation ---------------------------------------------------------------------


def _single(body: Any, kind: str) -> tuple[str, Any]:
    if not isinstance(body, Mapping):
        raise QueryError("parsing_exception", f"[{kind}] query malformed, no start_object")
    fields = [(k, v) for k, v in body.items() if k not in ("boost", "_name")]
    if len(fields) != 1:
        raise QueryError("parsing_exception",
                         f"[{kind}] query doesn't support multiple fields, found {len(fields)}")
    return fields[0]


def _term(body: Any, now_ms: int) -> Predicate:
    name, spec = _single(body, "term")
    expected = spec.get("value") if isinstance(spec, Mapping) else spec
    if expected is None or isinstance(expected, (list, dict)):
        raise QueryError("parsing_exception", "[term] query does not support array of values")
    if name in DATE_FIELDS:
        want = date_to_millis(expected, now_ms)
        return lambda r: any(date_to_millis(v, now_ms) == want for v in field_values(r, name))
    return lambda r: any(term_matches(v, expected) for v in field_values(r, name))


def _terms(body: Any, now_ms: int) -> Predicate:
    name, expected = _single(body, "terms")
    if not isinstance(expected, list):
        raise QueryError("parsing_exception", "[terms] query requires an array of values")
    wanted = set(map(str, expected)) if name in ("_id", "_index") else None
    if wanted is not None:
        return lambda r: (r.id if name == "_id" else r.index) in wanted
    return lambda r: any(term_matches(v, expected) for v in field_values(r, name))


def _ids(body: Any, now_ms: int) -> Predicate:
    wanted = set(map(str, (body or {}).get("values", [])))
    return lambda r: r.id in wanted


def _range(body: Any, now_ms: int) -> Predicate:
    name, spec = _single(body, "range")
    if not isinstance(spec, Mapping):
        raise QueryError("parsing_exception", "[range] query malformed, no start_object")
    bounds = []
    for op in ("gte", "gt", "lte", "lt"):
        if spec.get(op) is not None:
            bound = sortable(name, spec[op], now_ms)
            if bound is None:
                raise QueryError("parse_exception",
                                 f"failed to parse date field [{spec[op]}] for [{name}]")
            bounds.append((op, bound))

    def check(value: Any) -> bool:
        value = sortable(name, value, now_ms)
        if value is None:
            return False
        try:
            return all((value >= b) if op == "gte" else (value > b) if op == "gt"
                       else (value <= b) if op == "lte" else (value < b) for op, b in bounds)
        except TypeError:
            return False

    return lambda r: any(check(v) for v in field_values(r, name))


def _exists(body: Any, now_ms: int) -> Predicate:
    name = (body or {}).get("field")
    if not isinstance(name, str):
        raise QueryError("parsing_exception", "[exists] must be provided with a [field]")
    return lambda r: bool(field_values(r, name))


def _match(body: Any, now_ms: int) -> Predicate:
    name, spec = _single(body, "match")
    expected = spec.get("query") if isinstance(spec, Mapping) else spec
    return lambda r: any(term_matches(v, expected) for v in field_values(r, name))


def _clauses(body: Mapping[str, Any], key: str, now_ms: int) -> list[Predicate]:
    value = body.get(key)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [compile_query(item, now_ms) for item in items]


def _bool(body: Any, now_ms: int) -> Predicate:
    if not isinstance(body, Mapping):
        raise QueryError("parsing_exception", "[bool] query malformed, no start_object")
    unknown = set(body) - {"filter", "must", "must_not", "should", "minimum_should_match",
                           "boost", "_name"}
    if unknown:
        raise QueryError("parsing_exception", f"[bool] query does not support [{unknown.pop()}]")
    required = _clauses(body, "filter", now_ms) + _clauses(body, "must", now_ms)
    excluded = _clauses(body, "must_not", now_ms)
    optional = _clauses(body, "should", now_ms)
    minimum = int(body.get("minimum_should_match", 0 if required else 1 if optional else 0))

    def check(record: Record) -> bool:
        if not all(p(record) for p in required) or any(p(record) for p in excluded):
            return False
        return minimum <= 0 or sum(1 for p in optional if p(record)) >= minimum

    return check


_COMPILERS: dict[str, Callable[[Any, int], Predicate]] = {
    "bool": _bool, "term": _term, "terms": _terms, "ids": _ids, "range": _range,
    "exists": _exists, "match": _match,
    "match_all": lambda body, now: (lambda r: True),
    "match_none": lambda body, now: (lambda r: False),
}


def compile_query(query: Any, now_ms: int) -> Predicate:
    """A predicate over records for an ES query object (``None``/``{}`` match everything)."""
    if query is None or query == {}:
        return lambda r: True
    if not isinstance(query, Mapping) or len(query) != 1:
        raise QueryError("parsing_exception", "query malformed, must start with start_object")
    kind, body = next(iter(query.items()))
    compiler = _COMPILERS.get(kind)
    if compiler is None:
        raise QueryError("parsing_exception", f"unknown query [{kind}]")
    return compiler(body, now_ms)


def timestamp_window(query: Any, now_ms: int) -> tuple[int | None, int | None]:
    """Bounds on ``@timestamp`` implied by a top-level bool filter/must range (for indexing)."""
    if not isinstance(query, Mapping):
        return None, None
    clauses: list[Any] = [query]
    boolean = query.get("bool")
    if isinstance(boolean, Mapping):
        for key in ("filter", "must"):
            value = boolean.get(key)
            clauses += value if isinstance(value, list) else [value] if value else []
    low: int | None = None
    high: int | None = None
    for clause in clauses:
        spec = clause.get("range", {}).get("@timestamp") if isinstance(clause, Mapping) else None
        if not isinstance(spec, Mapping):
            continue
        for op in ("gte", "gt"):
            bound = date_to_millis(spec.get(op), now_ms) if spec.get(op) is not None else None
            low = bound if bound is not None and (low is None or bound > low) else low
        for op in ("lte", "lt"):
            bound = date_to_millis(spec.get(op), now_ms) if spec.get(op) is not None else None
            high = bound if bound is not None and (high is None or bound < high) else high
    return low, high


# --- sorting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortSpec:
    field: str
    descending: bool = False


def parse_sort(sort: Any) -> list[SortSpec]:
    """Body ``sort`` (strings, ``{field: order}``, ``{field: {order: ...}}``) or ``f:dir,...``."""
    if sort is None:
        return []
    if isinstance(sort, str):
        sort = [part for part in sort.split(",") if part]
    if isinstance(sort, Mapping):
        sort = [sort]
    specs = []
    for item in sort:
        if isinstance(item, str):
            name, _, order = item.partition(":")
            specs.append(SortSpec(name, order == "desc" or (not order and name == "_score")))
            continue
        if not isinstance(item, Mapping) or len(item) != 1:
            raise QueryError("parsing_exception", "malformed sort format")
        name, spec = next(iter(item.items()))
        order = spec.get("order", "asc") if isinstance(spec, Mapping) else spec
        if order not in ("asc", "desc"):
            raise QueryError("illegal_argument_exception", f"Unknown SortOrder [{order}]")
        specs.append(SortSpec(name, order == "desc"))
    return specs


def sort_values(record: Record, specs: Sequence[SortSpec], now_ms: int) -> list[Any]:
    """A hit's ``sort`` array: min (asc) / max (desc) of a multi-valued field, None if missing."""
    out: list[Any] = []
    for spec in specs:
        if spec.field in ("_shard_doc", "_doc"):
            out.append(record.seq)
            continue
        if spec.field == "_score":
            out.append(1.0)
            continue
        values = [sortable(spec.field, v, now_ms) for v in field_values(record, spec.field)]
        values = [v for v in values if v is not None and not isinstance(v, (dict, list))]
        try:
            out.append((max(values) if spec.descending else min(values)) if values else None)
        except TypeError:
            out.append(values[0])
    return out


def _rank(value: Any) -> tuple[int, Any]:
    # Mixed types in one field must still sort deterministically: numbers before strings.
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))


def sort_records(rows: list[tuple[Record, list[Any]]], specs: Sequence[SortSpec]) -> None:
    """Sort ``(record, sort_values)`` rows in place; missing values go last in either order."""
    for position in range(len(specs) - 1, -1, -1):
        descending = specs[position].descending

        def key(row: tuple[Record, list[Any]], i: int = position, desc: bool = descending) -> Any:
            value = row[1][i]
            if value is None:  # present values first whichever way we sort
                return (0 if desc else 1, (0, 0))
            return (1 if desc else 0, _rank(value))

        rows.sort(key=key, reverse=descending)


def is_after(values: Sequence[Any], after: Sequence[Any], specs: Sequence[SortSpec]) -> bool:
    """True if a hit with sort ``values`` comes strictly after ``search_after``."""
    for value, bound, spec in zip(values, after, specs, strict=False):
        if value == bound:
            continue
        if value is None:
            return True  # missing sorts last
        if bound is None:
            return False
        left, right = _rank(value), _rank(bound)
        if left == right:
            continue
        return (left < right) if spec.descending else (left > right)
    return False
