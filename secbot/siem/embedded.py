"""Embedded SIEM: a local alert store on SQLite with Kibana's semantics (demo and tests).

Each "index" (the alerts index, an auth-log index for ``locate user``, ...) is one table::

    id TEXT PRIMARY KEY,   -- the document _id
    uuid TEXT,             -- kibana.alert.uuid, falling back to _id
    ts INTEGER,            -- @timestamp in epoch milliseconds (ES ``date`` precision), or NULL
    status TEXT,           -- kibana.alert.workflow_status
    bb INTEGER,            -- 1 for building-block alerts (excluded from polling, as in Kibana)
    source TEXT            -- the _source, JSON

Timestamps are kept in milliseconds because that is what Elasticsearch sorts on for a ``date``
field: the embedded and the elastic backend then page identically, and a checkpoint taken from
one is meaningful to the other. sqlite3 is blocking, so every call runs in a worker thread
(``asyncio.to_thread``) on one shared connection guarded by a lock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from secbot.domain.alert import Alert, has_field, lookup, parse_timestamp
from secbot.domain.stats import AlertStats
from secbot.domain.status import Status
from secbot.siem.base import BULK_CHUNK, Checkpoint, Page, SiemError, StatusChange, chunks
from secbot.siem.documents import (
    WORKFLOW_STATUS,
    apply_status,
    apply_tags,
    field_equals,
    iso_millis,
    iter_json_documents,
    split_document,
    to_millis,
    validate_status,
)
from secbot.siem.embedded_stats import add_columns, derived, query_stats

T = TypeVar("T")

DEFAULT_ALERTS_INDEX = ".alerts-security.alerts-default"
BUILDING_BLOCK = "kibana.alert.building_block_type"


def _table_name(index: str) -> str:
    # Prefixed so that no index name can collide with sqlite's reserved "sqlite_" tables.
    return '"idx:' + index.replace('"', '""') + '"'


def _dump(source: Mapping[str, Any]) -> str:
    return json.dumps(source, separators=(",", ":"))


def _row(index_is_alerts: bool, doc_id: str, source: dict[str, Any]) -> tuple[Any, ...]:
    if index_is_alerts and lookup(source, WORKFLOW_STATUS) is None:
        source[WORKFLOW_STATUS] = "open"  # Kibana always writes it; seed files may not
    stamp = parse_timestamp(lookup(source, "@timestamp"))
    status = lookup(source, WORKFLOW_STATUS)
    uuid = str(lookup(source, "kibana.alert.uuid") or doc_id)
    return (doc_id, uuid, None if stamp is None else to_millis(stamp),
            None if status is None else str(status),
            1 if lookup(source, BUILDING_BLOCK) is not None else 0, _dump(source),
            *derived(uuid, source))


def _derive(doc_id: str, source: dict[str, Any]) -> tuple[Any, ...]:
    return derived(str(lookup(source, "kibana.alert.uuid") or doc_id), source)


class WriteFaults:
    """Status-change batches the embedded SIEM fails on purpose, as a Kibana failing in the
    middle of a bulk change would (the Kibana stand-in's ``fail_route(after=n)``): the demo
    and tests use it to show partial results."""

    def __init__(self) -> None:
        self._passing: int | None = None  # batches still let through; None: no fault
        self._times: int | None = None  # failures left once failing; None: until cleared

    def fail_after(self, batches: int, *, times: int | None = None) -> None:
        """Let the next ``batches`` status batches through, then fail ``times`` of them."""
        self._passing, self._times = batches, times

    def clear(self) -> None:
        self._passing = self._times = None

    def check(self) -> None:
        if self._passing is None:
            return
        if self._passing > 0:
            self._passing -= 1
            return
        if self._times is not None:
            self._times -= 1
            if self._times <= 0:
                self.clear()
        raise SiemError("embedded SIEM: status batch failed (injected fault)")


class EmbeddedSiem:
    """The :class:`~secbot.siem.base.Siem` contract on a local SQLite file (or ``:memory:``).

    Semantics follow Kibana/Elasticsearch: polling returns open, non-building-block alerts in
    (``@timestamp``, uuid) order; status changes run Kibana's painless script logic (same
    status is a no-op, the reason is kept only when closing); tags use Kibana's tag script.
    Extra tables (other "indices") hold log documents for investigation searches.
    """

    def __init__(self, path: str | Path = ":memory:", *, index: str = DEFAULT_ALERTS_INDEX,
                 clock: Callable[[], datetime] | None = None, chunk: int = BULK_CHUNK) -> None:
        self.index = index
        self.chunk = chunk
        self.faults = WriteFaults()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._conn = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        self._tables: set[str] = set()

    # --- plumbing -------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._locked, fn, *args)

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return fn(*args)

    def _table(self, index: str, *, create: bool) -> str | None:
        name = _table_name(index)
        if index in self._tables:
            return name
        found = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", ("idx:" + index,)
        ).fetchone()
        if not found:
            if not create:
                return None
            with self._conn:
                self._conn.execute(
                    f"CREATE TABLE {name} (id TEXT PRIMARY KEY, uuid TEXT NOT NULL, ts INTEGER,"
                    " status TEXT, bb INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL)"
                )
                poll = _table_name(index + ":poll")
                by_uuid = _table_name(index + ":uuid")
                self._conn.execute(f"CREATE INDEX {poll} ON {name} (status, bb, ts, uuid)")
                self._conn.execute(f"CREATE INDEX {by_uuid} ON {name} (uuid)")
        add_columns(self._conn, name, _table_name(index + ":stats"))
        self._tables.add(index)
        return name

    # --- loading --------------------------------------------------------------------------
    async def insert(self, docs: Iterable[Mapping[str, Any]], *, index: str | None = None) -> int:
        """Upsert ``_source`` documents or ES hits (or es_archiver records); returns the count."""
        pairs = []
        for doc in docs:
            doc_id, source = split_document(doc)
            pairs.append((doc_id or uuidlib.uuid4().hex, source))
        return await self._run(self._insert_sync, pairs, index or self.index)

    def _insert_sync(self, pairs: list[tuple[str, dict[str, Any]]], index: str) -> int:
        table = self._table(index, create=True)
        rows = [_row(index == self.index, doc_id, source) for doc_id, source in pairs]
        with self._conn:
            self._conn.executemany(
                f"INSERT OR REPLACE INTO {table} (id, uuid, ts, status, bb, source, rule, src,"
                " upd, reason, auto) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    async def seed_ndjson(self, path: str | Path, *, index: str | None = None) -> int:
        """Load a file of alert ``_source``s or hits (NDJSON, JSON array, or es_archiver)."""
        text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
        return await self.insert(list(iter_json_documents(text)), index=index)

    # --- the Siem protocol ------------------------------------------------------------------
    async def fetch_new(
        self, since: Checkpoint | None, *, overlap_seconds: float = 0.0, limit: int = 500
    ) -> Page:
        """Open, non-building-block alerts with (ts, uuid) > since − overlap, up to now.

        "Up to now", as the elastic backend's ``lte: now``: a future-stamped alert would
        otherwise carry the poller's checkpoint past alerts that have yet to arrive.
        """
        after: tuple[int, str] | None = None
        if since is not None:
            after = (to_millis(since.timestamp) - round(overlap_seconds * 1000), since.uuid)
        now_ms = to_millis(self._clock())
        rows = await self._run(self._fetch_sync, after, now_ms, max(1, limit))
        alerts = [Alert(source=json.loads(src), id=doc_id, index=self.index)
                  for doc_id, src in rows[:limit]]
        return Page(alerts=alerts, more=len(rows) > limit)

    def _fetch_sync(
        self, after: tuple[int, str] | None, now_ms: int, limit: int
    ) -> list[tuple[str, str]]:
        table = self._table(self.index, create=False)
        if table is None:
            return []
        sql = (f"SELECT id, source FROM {table} WHERE status = 'open' AND bb = 0"
               " AND ts IS NOT NULL AND ts <= ?")
        args: list[Any] = [now_ms]
        if after is not None:
            sql += " AND (ts > ? OR (ts = ? AND uuid > ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY ts, uuid LIMIT ?"
        # One extra row tells whether another page follows without a second query.
        args.append(limit + 1)
        return list(self._conn.execute(sql, args).fetchall())

    async def set_status(
        self, ids: Sequence[str], status: Status, *, reason: str | None, user: str
    ) -> StatusChange:
        """Kibana's status change, as the elastic backend makes it: current statuses read
        first, then one transaction per :data:`BULK_CHUNK` ids to change. Same status is a
        no-op, unknown ids come back as missing, and a batch that fails after others landed
        ends the change with its ids and the later ones ``failed`` (raised when none landed)."""
        kept_reason = validate_status(status, reason)
        at = iso_millis(self._clock())
        wanted = list(dict.fromkeys(ids))
        found = await self.get_many(wanted)
        already = tuple(i for i in wanted if i in found
                        and found[i].get_field(WORKFLOW_STATUS) in (None, status))
        to_change = [i for i in wanted if i in found and i not in already]
        missing = tuple(i for i in wanted if i not in found)
        changed: list[str] = []
        for part in chunks(to_change, self.chunk):
            try:
                self.faults.check()
                await self._run(self._set_status_sync, part, status, kept_reason, user, at)
            except Exception as exc:
                if not changed:
                    raise
                return StatusChange(changed=tuple(changed), already=already, missing=missing,
                                    failed=tuple(to_change[len(changed):]),
                                    error=f"{type(exc).__name__}: {exc}")
            changed.extend(part)
        return StatusChange(changed=tuple(changed), already=already, missing=missing)

    def _set_status_sync(
        self, ids: list[str], status: str, reason: str | None, user: str, at: str
    ) -> None:
        table = self._table(self.index, create=False)
        with self._conn:
            for alert_id in ids:
                row = self._find(table, alert_id)
                if row is None:
                    continue  # gone since it was read: nothing to change
                source = json.loads(row[1])
                if apply_status(source, status, reason, user, at):
                    self._conn.execute(
                        f"UPDATE {table} SET status = ?, source = ?, rule = ?, src = ?, upd = ?,"
                        " reason = ?, auto = ? WHERE id = ?",
                        (status, _dump(source), *_derive(row[0], source), row[0]))

    async def add_tags(self, ids: Sequence[str], tags: Sequence[str]) -> None:
        """Append ``tags`` to ``kibana.alert.workflow_tags`` (no duplicates)."""
        await self._run(self._add_tags_sync, list(ids), list(tags))

    def _add_tags_sync(self, ids: list[str], tags: list[str]) -> None:
        table = self._table(self.index, create=False)
        if table is None:
            return
        with self._conn:
            for alert_id in dict.fromkeys(ids):
                row = self._find(table, alert_id)
                if row is not None:
                    source = json.loads(row[1])
                    apply_tags(source, tags)
                    self._conn.execute(
                        f"UPDATE {table} SET source = ?, rule = ?, src = ?, upd = ?, reason = ?,"
                        " auto = ? WHERE id = ?", (_dump(source), *_derive(row[0], source), row[0]))

    async def get(self, alert_id: str) -> Alert | None:
        """One alert by ``_id`` (or ``kibana.alert.uuid``), whatever its status."""
        row = await self._run(self._get_sync, alert_id)
        return None if row is None else Alert(source=json.loads(row[1]), id=row[0],
                                              index=self.index)

    async def get_many(self, ids: Sequence[str]) -> dict[str, Alert]:
        """The alerts among ``ids`` keyed by the id asked for (one worker-thread hop)."""
        rows = await self._run(self._get_many_sync, list(dict.fromkeys(ids)))
        return {key: Alert(source=json.loads(src), id=doc_id, index=self.index)
                for key, (doc_id, src) in rows.items()}

    def _get_many_sync(self, ids: list[str]) -> dict[str, tuple[str, str]]:
        table = self._table(self.index, create=False)
        found = {alert_id: self._find(table, alert_id) for alert_id in ids}
        return {key: row for key, row in found.items() if row is not None}

    async def open_related(self, any_of: Mapping[str, Sequence[str]], *, since: datetime,
                           size: int = 50) -> list[Alert]:
        """Open, non-building-block alerts since ``since`` sharing any entity value."""
        wanted = {name: list(values) for name, values in any_of.items() if values}
        if not wanted or size <= 0:
            return []
        rows = await self._run(self._related_sync, wanted, to_millis(since), size)
        return [Alert(source=json.loads(src), id=doc_id, index=self.index)
                for doc_id, src in rows]

    def _related_sync(self, any_of: dict[str, list[str]], since_ms: int, size: int
                      ) -> list[tuple[str, str]]:
        table = self._table(self.index, create=False)
        if table is None:
            return []
        found: list[tuple[str, str]] = []
        query = (f"SELECT id, source FROM {table} WHERE status = 'open' AND bb = 0 AND ts >= ?"
                 " ORDER BY ts DESC, uuid DESC")
        for doc_id, text in self._conn.execute(query, (since_ms,)):
            doc = json.loads(text)
            if any(field_equals(lookup(doc, name), values) for name, values in any_of.items()):
                found.append((str(doc_id), str(text)))
                if len(found) >= size:
                    break
        return found

    def _get_sync(self, alert_id: str) -> tuple[str, str] | None:
        return self._find(self._table(self.index, create=False), alert_id)

    def _find(self, table: str | None, alert_id: str) -> tuple[str, str] | None:
        """The row whose ``_id`` is ``alert_id``, else one whose uuid is (``_id`` wins)."""
        if table is None:
            return None
        row = self._conn.execute(
            f"SELECT id, source FROM {table} WHERE id = ? UNION ALL "
            f"SELECT id, source FROM {table} WHERE uuid = ? LIMIT 1", (alert_id, alert_id),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    async def search(
        self,
        filters: Mapping[str, Any],
        *,
        index: str | None = None,
        since: datetime | None = None,
        size: int = 50,
    ) -> list[dict[str, Any]]:
        """``_source``s whose dotted fields equal ``filters`` (term semantics), newest first."""
        since_ms = None if since is None else to_millis(since)
        return await self._run(self._search_sync, dict(filters), index or self.index,
                               since_ms, size)

    def _search_sync(
        self, filters: dict[str, Any], index: str, since_ms: int | None, size: int
    ) -> list[dict[str, Any]]:
        table = self._table(index, create=False)
        if table is None or size <= 0:
            return []
        sql = f"SELECT source FROM {table}"
        args: list[Any] = []
        if since_ms is not None:
            sql += " WHERE ts >= ?"
            args.append(since_ms)
        # NULL timestamps sort last in DESC order, as ES puts missing values last.
        sql += " ORDER BY ts DESC, uuid DESC"
        found: list[dict[str, Any]] = []
        for (text,) in self._conn.execute(sql, args):
            doc = json.loads(text)
            if all(has_field(doc, name) and field_equals(lookup(doc, name), value)
                   for name, value in filters.items()):
                found.append(doc)
                if len(found) >= size:
                    break
        return found

    async def stats(self, since: datetime, until: datetime, *,
                    previous_since: datetime | None = None) -> AlertStats:
        """Counts per (rule, source) of alerts stamped in ``[since, until)`` (and the period
        before), by SQL in one worker-thread hop (:mod:`secbot.siem.embedded_stats`)."""
        return await self._run(lambda: query_stats(
            self._conn, self._table(self.index, create=False), since, until, previous_since))

    async def ping(self) -> bool:
        await self._run(lambda: self._conn.execute("SELECT 1").fetchone())
        return True

    async def close(self) -> None:
        await self._run(self._conn.close)


# The document helpers moved to .documents; they stay importable from here.
__all__ = ["DEFAULT_ALERTS_INDEX", "EmbeddedSiem", "WriteFaults", "apply_status", "apply_tags",
           "field_equals", "iso_millis", "iter_json_documents", "split_document", "to_millis",
           "validate_status"]
