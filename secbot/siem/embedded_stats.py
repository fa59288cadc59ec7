"""Alert statistics on the embedded (SQLite) stores: SQL with GROUP BY, not a document scan.

Each alerts table carries a few columns derived from the document whenever it is written
(``rule``, ``src``, ``upd`` — the status change time in ms —, ``reason`` and ``auto``: closed
by SecBot), and one covering index over them, so ``secbot stats`` reads the index only and
never parses a stored JSON document. Counting rules: :mod:`secbot.domain.stats`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from secbot.domain.alert import lookup, parse_timestamp
from secbot.domain.source import SIEM_SOURCE, SOURCE_FIELD, mapped_uuid
from secbot.domain.stats import (
    AUTO_CLOSE_TAG,
    BOT_USER,
    NO_REASON,
    NO_RULE,
    REOPEN_TAG_PREFIX,
    AlertStats,
    RuleCounts,
    median,
)
from secbot.siem.documents import (
    WORKFLOW_REASON,
    WORKFLOW_STATUS,
    WORKFLOW_TAGS,
    WORKFLOW_UPDATED_AT,
    WORKFLOW_USER,
    to_millis,
)

RULE_NAME = "kibana.alert.rule.name"
#: The derived columns, in the order :func:`derived` returns them.
COLUMNS = ("rule", "src", "upd", "reason", "auto")
_COLUMN_TYPES = {"rule": "TEXT", "src": "TEXT", "upd": "INTEGER", "reason": "TEXT",
                 "auto": "INTEGER NOT NULL DEFAULT 0"}


def _tags(source: Mapping[str, Any]) -> list[str]:
    tags = lookup(source, WORKFLOW_TAGS)
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


def closed_by_secbot(source: Mapping[str, Any]) -> bool:
    """Closed by SecBot and not reopened since (see :mod:`secbot.domain.stats`)."""
    if lookup(source, WORKFLOW_STATUS) != "closed":
        return False
    tags = _tags(source)
    if any(tag.startswith(REOPEN_TAG_PREFIX) for tag in tags):
        return False
    return lookup(source, WORKFLOW_USER) == BOT_USER or AUTO_CLOSE_TAG in tags


def source_of(doc_uuid: str, source: Mapping[str, Any]) -> str:
    """A mapped source only when its field and its uuid agree (:mod:`secbot.domain.source`)."""
    value = lookup(source, SOURCE_FIELD)
    if (isinstance(value, str) and value and value != SIEM_SOURCE
            and doc_uuid.startswith(mapped_uuid(value, ""))):
        return value
    return SIEM_SOURCE


def derived(doc_uuid: str, source: Mapping[str, Any]) -> tuple[Any, ...]:
    """The stats columns of one document, in :data:`COLUMNS` order."""
    updated = parse_timestamp(lookup(source, WORKFLOW_UPDATED_AT))
    reason = lookup(source, WORKFLOW_REASON)
    return (str(lookup(source, RULE_NAME) or NO_RULE), source_of(doc_uuid, source),
            None if updated is None else to_millis(updated),
            None if reason is None else str(reason), 1 if closed_by_secbot(source) else 0)


def add_columns(conn: sqlite3.Connection, table: str, index_name: str) -> None:
    """Give an alerts table the stats columns and index, filling them for rows written by an
    older SecBot (a demo database survives upgrades). Idempotent."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    missing = [name for name in COLUMNS if name not in present]
    with conn:
        for name in missing:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {_COLUMN_TYPES[name]}")
        if missing:
            rows = conn.execute(f"SELECT id, uuid, source FROM {table}").fetchall()
            conn.executemany(
                f"UPDATE {table} SET rule=?, src=?, upd=?, reason=?, auto=? WHERE id=?",
                [(*derived(uuid, json.loads(text)), doc_id) for doc_id, uuid, text in rows])
        # Covering, in GROUP BY order: the stats scans stream through the index (no sort,
        # no table row or JSON touched); the window on ts is checked per entry.
        conn.execute(f"DROP INDEX IF EXISTS {index_name}")  # the first layout (ts first)
        layout_2 = index_name[:-1] + ':2"'  # a quoted name: '"idx:<index>:stats:2"'
        conn.execute(f"CREATE INDEX IF NOT EXISTS {layout_2} ON {table}"
                     " (bb, rule, src, status, auto, reason, ts, upd)")


_WINDOW = " FROM {t} WHERE bb = 0 AND ts >= ? AND ts < ?"
_HUMAN = " AND status != 'open' AND NOT (status = 'closed' AND auto = 1) AND upd IS NOT NULL"
_ACKED = ("acknowledged", "in-progress")
Key = tuple[bool, str, str]  # (in the current period, rule, source)


def query_stats(conn: sqlite3.Connection, table: str | None, since: datetime,
                until: datetime, previous_since: datetime | None = None) -> AlertStats:
    """Counts per (rule, source) of alerts stamped in ``[since, until)`` (and in
    ``[previous_since, since)`` when given): two index scans cover both periods — one
    GROUP BY for the counts and reasons, one read of the people's delays for the medians
    (sorted here per group: SQLite's window functions would sort every row twice)."""
    if table is None:
        return AlertStats(since=since, until=until, previous_since=previous_since)
    args = (to_millis(since), to_millis(previous_since or since), to_millis(until))
    counts: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    reasons: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for current, rule, src, status, auto, reason, count in conn.execute(
            "SELECT ts >= ?, rule, src, status, auto, reason, COUNT(*)" + _WINDOW.format(t=table)
            + " GROUP BY rule, src, status, auto, reason, 1", args):
        key = (bool(current), rule, src)
        state = "auto" if status == "closed" and auto else status
        counts[key][state] += count
        if state == "closed":
            reasons[key][reason or NO_REASON] += count
    touched: dict[Key, list[int]] = defaultdict(list)
    closed: dict[Key, list[int]] = defaultdict(list)
    for current, rule, src, status, delay in conn.execute(
            "SELECT ts >= ?, rule, src, status, upd - ts" + _WINDOW.format(t=table) + _HUMAN,
            args):
        key = (bool(current), rule, src)
        touched[key].append(delay)
        if status == "closed":
            closed[key].append(delay)
    rows = {key: _counts(key, counts[key], reasons.get(key, {}), touched.get(key, []),
                         closed.get(key, [])) for key in sorted(counts)}
    return AlertStats(since=since, until=until, previous_since=previous_since,
                      rows=tuple(row for key, row in rows.items() if key[0]),
                      previous=tuple(row for key, row in rows.items() if not key[0]))


def _counts(key: Key, states: dict[str, int], reasons: dict[str, int], touched: list[int],
            closed: list[int]) -> RuleCounts:
    mtta, mttr = median(touched), median(closed)
    return RuleCounts(
        rule=key[1], source=key[2], alerts=sum(states.values()),
        auto_closed=states.get("auto", 0), closed=states.get("closed", 0),
        acknowledged=sum(states.get(s, 0) for s in _ACKED), open=states.get("open", 0),
        closed_by_reason=tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        mtta_s=None if mtta is None else mtta / 1000.0,
        mttr_s=None if mttr is None else mttr / 1000.0)


__all__ = ["COLUMNS", "add_columns", "closed_by_secbot", "derived", "query_stats", "source_of"]
