"""Documents, indices, aliases and point-in-time snapshots of the Elasticsearch emulator.

Each index keeps its documents by ``_id`` plus a list ordered by (``@timestamp``, seq), so the
polling search (range on ``@timestamp``, sorted by it, ``track_total_hits: false``) reads only
the page it returns instead of scanning the whole backlog; other searches scan and sort.
"""

from __future__ import annotations

import copy
import itertools
import re
import time
import uuid as uuidlib
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any

from secbot_emulators.elastic_query import (
    Predicate,
    QueryError,
    Record,
    SortSpec,
    date_to_millis,
    is_after,
    sort_records,
    sort_values,
)
from secbot_emulators.elastic_values import source_value
from secbot_emulators.painless import PainlessError, Script, compile_script

ALERTS_ALIAS = re.compile(r"^\.alerts-security\.alerts-(?P<space>[a-z0-9_\-]+)$")
Row = tuple[Record, list[Any]]


def backing_index(space: str) -> str:
    """The concrete index Kibana creates behind ``.alerts-security.alerts-<space>``."""
    return f".internal.alerts-security.alerts-{space}-000001"


def _timestamp_of(source: Mapping[str, Any]) -> int | None:
    value = source_value(source, "@timestamp")
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else date_to_millis(value, 0)


def index_not_found(name: str) -> QueryError:
    return QueryError("index_not_found_exception", f"no such index [{name}]", 404, {
        "resource.type": "index_or_alias", "resource.id": name, "index_uuid": "_na_",
        "index": name})


@dataclass
class View:
    """What one search reads: a live index, or a frozen PIT copy (visibility already applied)."""

    name: str
    docs: Mapping[str, Record]
    timed: list[tuple[int, int, str]]
    untimed: list[str]
    frozen: bool = False


class IndexData:
    """One concrete index: documents by id and an (``@timestamp``, seq) ordered id list."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.docs: dict[str, Record] = {}
        self._timed: list[tuple[int, int, str]] = []
        self._untimed: list[str] = []
        self._dirty = False

    def put(self, record: Record, *, bulk: bool = False) -> None:
        old = self.docs.get(record.id)
        self.docs[record.id] = record
        if old is not None and old.ts == record.ts:
            return
        if old is not None or bulk or self._dirty:
            self._dirty = True  # rebuilt once, on the next search
        elif record.ts is None:
            self._untimed.append(record.id)
        else:
            insort(self._timed, (record.ts, record.seq, record.id))

    def view(self) -> View:
        if self._dirty:
            records = sorted(self.docs.values(), key=lambda r: r.seq)
            self._timed = sorted((r.ts, r.seq, r.id) for r in records if r.ts is not None)
            self._untimed = [r.id for r in records if r.ts is None]
            self._dirty = False
        return View(self.name, self.docs, self._timed, self._untimed)


@dataclass
class Pit:
    views: list[View]
    expires: float


class DocumentStore:
    """All indices, the alerts aliases, and open PITs."""

    def __init__(self, spaces: Sequence[str] = ("default",)) -> None:
        self.indices: dict[str, IndexData] = {}
        self.aliases: dict[str, str] = {}
        self.pits: dict[str, Pit] = {}
        self._seq = itertools.count(1)
        self._seq_no = itertools.count(0)
        for space in spaces:
            self.write_target(f".alerts-security.alerts-{space}")

    # --- names -----------------------------------------------------------------------------
    def write_target(self, name: str) -> IndexData:
        """The index a write to ``name`` lands in (alias → backing index; auto-create)."""
        concrete = self.aliases.get(name, name)
        match = ALERTS_ALIAS.match(name)
        if match and name not in self.aliases:
            concrete = backing_index(match["space"])
            self.aliases[name] = concrete
        if concrete not in self.indices:
            if not name or name.startswith(("_", "-", "+")) or name != name.lower():
                raise QueryError("invalid_index_name_exception",
                                 f"Invalid index name [{name}], must be lowercase")
            self.indices[concrete] = IndexData(concrete)
        return self.indices[concrete]

    def resolve(self, expression: str, *, ignore_unavailable: bool = False,
                allow_no_indices: bool = True) -> list[IndexData]:
        """Indices named by a comma list of names, aliases and wildcards."""
        found: dict[str, IndexData] = {}
        for part in [p for p in expression.split(",") if p] or ["_all"]:
            if part in ("_all", "*") or "*" in part:
                pattern = "*" if part == "_all" else part
                for name in list(self.indices) + list(self.aliases):
                    hidden = name.startswith(".") and not pattern.startswith(".")
                    if not hidden and fnmatchcase(name, pattern):
                        target = self.indices[self.aliases.get(name, name)]
                        found[target.name] = target
                continue
            concrete = self.aliases.get(part, part)
            if concrete in self.indices:
                found[concrete] = self.indices[concrete]
            elif not ignore_unavailable:
                raise index_not_found(part)
        if not found and not allow_no_indices:
            raise index_not_found(expression)
        return list(found.values())

    # --- documents --------------------------------------------------------------------------
    def put(self, index: str, doc_id: str | None, source: dict[str, Any], *,
            create: bool = False, visible_after: float = 0.0, bulk: bool = False) -> tuple[
                Record, bool]:
        """Index a document; returns the stored record and whether it was created."""
        target = self.write_target(index)
        doc_id = doc_id or uuidlib.uuid4().hex[:20]
        old = target.docs.get(doc_id)
        if old is not None and create:
            raise QueryError(
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version "
                f"[{old.version}])", 409)
        record = Record(
            index=target.name, id=doc_id, source=source,
            seq=old.seq if old else next(self._seq), version=old.version + 1 if old else 1,
            seq_no=next(self._seq_no), visible_at=time.monotonic() + visible_after,
            ts=_timestamp_of(source),
        )
        target.put(record, bulk=bulk)
        return record, old is None

    def get(self, index: str, doc_id: str) -> Record | None:
        """Realtime GET by id (like ES, it does not wait for a refresh)."""
        for data in self.resolve(index):
            if doc_id in data.docs:
                return data.docs[doc_id]
        return None

    # --- search -----------------------------------------------------------------------------
    def views(self, indices: Sequence[IndexData]) -> list[View]:
        return [data.view() for data in indices]

    def open_pit(self, indices: Sequence[IndexData], keep_alive: float) -> str:
        now = time.monotonic()
        frozen = []
        for data in indices:
            view = data.view()
            docs = {k: r for k, r in view.docs.items() if r.visible_at <= now}
            frozen.append(View(view.name, docs, [t for t in view.timed if t[2] in docs],
                               [i for i in view.untimed if i in docs], frozen=True))
        pit_id = uuidlib.uuid4().hex
        self.pits[pit_id] = Pit(frozen, now + keep_alive)
        return pit_id

    def pit(self, pit_id: str, keep_alive: float | None) -> list[View]:
        now = time.monotonic()
        for key in [k for k, p in self.pits.items() if p.expires < now]:
            del self.pits[key]
        pit = self.pits.get(pit_id)
        if pit is None:
            raise QueryError("search_context_missing_exception",
                             f"No search context found for id [{pit_id}]", 404)
        if keep_alive is not None:
            pit.expires = now + keep_alive
        return pit.views

    def close_pits(self, ids: Sequence[str]) -> int:
        return sum(1 for pit_id in ids if self.pits.pop(pit_id, None) is not None)

    def search(self, views: Sequence[View], predicate: Predicate, specs: Sequence[SortSpec],
               after: Sequence[Any] | None, need: int, exact_total: bool, now_ms: int,
               window: tuple[int | None, int | None]) -> tuple[list[Row], int]:
        """Matching rows sorted by ``specs`` (at least the first ``need``) and the hit count.

        The count is exact only when ``exact_total``; otherwise the scan may stop early.
        """
        fast = (len(views) == 1 and bool(specs) and specs[0].field == "@timestamp"
                and not exact_total)
        low, high = window
        if specs and specs[0].field == "@timestamp" and after:
            bound = date_to_millis(after[0], now_ms)
            if bound is not None and specs[0].descending:
                high = bound if high is None else min(high, bound)
            elif bound is not None:
                low = bound if low is None else max(low, bound)
        rows: list[Row] = []
        mono = time.monotonic()
        descending = bool(specs) and specs[0].field == "@timestamp" and specs[0].descending
        untimed = window == (None, None)  # a range on @timestamp excludes docs without one
        for view in views:
            for record in _scan(view, low, high, descending, untimed):
                if fast and len(rows) >= need and record.ts != rows[need - 1][0].ts:
                    break  # ordered by @timestamp: nothing later can sort before the page
                if not view.frozen and record.visible_at > mono:
                    continue
                if not predicate(record):
                    continue
                values = sort_values(record, specs, now_ms)
                if after is not None and not is_after(values, after, specs):
                    continue
                rows.append((record, values))
        total = len(rows)
        if specs:
            sort_records(rows, specs)
        else:
            rows.sort(key=lambda row: row[0].seq)
        return rows, total

    # --- updates ----------------------------------------------------------------------------
    def update_by_query(self, indices: Sequence[IndexData], predicate: Predicate,
                        script: Mapping[str, Any] | None, max_docs: int | None) -> int:
        """Run ``script`` (a Painless subset) on every visible match; returns the count.

        Like ES: a script that changes nothing still reindexes and counts as updated; only
        ``ctx.op = 'noop'`` leaves a document alone (and out of the count).
        """
        compiled, params = _compile(script)
        mono = time.monotonic()
        changed = 0
        for data in indices:
            for record in list(data.docs.values()):
                if record.visible_at > mono or not predicate(record):
                    continue
                if max_docs is not None and changed >= max_docs:
                    return changed
                source = copy.deepcopy(record.source)
                if compiled is not None and not _run(compiled, params, record, source):
                    continue
                data.put(replace(record, source=source, version=record.version + 1,
                                 seq_no=next(self._seq_no), ts=_timestamp_of(source)))
                changed += 1
        return changed


def _compile(script: Mapping[str, Any] | None) -> tuple[Script | None, Mapping[str, Any]]:
    if script is None:
        return None, {}
    lang = script.get("lang", "painless")
    source = script.get("source")
    if lang != "painless" or not isinstance(source, str):
        raise QueryError("illegal_argument_exception",
                         "the emulator runs inline painless scripts only (script.source)")
    try:
        return compile_script(source), dict(script.get("params") or {})
    except PainlessError as exc:
        raise _script_error(exc, source) from exc


def _run(compiled: Script, params: Mapping[str, Any], record: Record,
         source: dict[str, Any]) -> bool:
    """One document through the script; False when it set ``ctx.op = 'noop'``."""
    ctx: dict[str, Any] = {"_source": source, "_id": record.id, "_index": record.index,
                           "op": "index"}
    try:
        # Params are copied per document: ``ctx._source[f] = params.list`` must not let two
        # documents share (and later co-mutate) one list.
        compiled.run(ctx, copy.deepcopy(dict(params)))
    except PainlessError as exc:
        raise _script_error(exc, "") from exc
    if ctx["op"] not in ("index", "noop"):
        raise QueryError("illegal_argument_exception",
                         f"the emulator supports ctx.op 'index' and 'noop', not {ctx['op']!r}")
    if ctx["_source"] is not source:
        source.clear()
        source.update(ctx["_source"])
    return bool(ctx["op"] == "index")


def _script_error(exc: PainlessError, source: str) -> QueryError:
    return QueryError("script_exception", exc.kind, 400, {
        "script_stack": [source[:200]] if source else [], "lang": "painless",
        "caused_by": {"type": "illegal_argument_exception", "reason": exc.message}})


def _scan(view: View, low: int | None, high: int | None, descending: bool,
          untimed: bool) -> Iterator[Record]:
    timed = view.timed
    start = 0 if low is None else bisect_left(timed, (low,))
    stop = len(timed) if high is None else bisect_right(timed, (high, float("inf")))
    positions = range(stop - 1, start - 1, -1) if descending else range(start, stop)
    for position in positions:
        yield view.docs[timed[position][2]]
    if untimed:
        for doc_id in view.untimed:  # no @timestamp: sorts last either way
            yield view.docs[doc_id]
