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
        # Covering: the stats queries never touch the table's rows (and their JSON).
        conn.execute(f"CREATE INDEX IF NOT EXISTS {index_name} ON {table}"
                     " (ts, bb, rule, src, status, auto, upd, reason)")


_WINDOW = " FROM {t} WHERE ts >= ? AND ts < ? AND bb = 0"
_HUMAN = " AND status != 'open' AND NOT (status = 'closed' AND auto = 1) AND upd IS NOT NULL"
_MEDIAN = ("SELECT rule, src, AVG(d) FROM (SELECT rule, src, upd - ts AS d,"
           " ROW_NUMBER() OVER (PARTITION BY rule, src ORDER BY upd - ts) AS rn,"
           " COUNT(*) OVER (PARTITION BY rule, src) AS n" + _WINDOW + "{extra})"
           " WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY rule, src")


def query_stats(conn: sqlite3.Connection, table: str | None, since: datetime,
                until: datetime, previous_since: datetime | None = None) -> AlertStats:
    """Counts per (rule, source) of alerts stamped in ``[since, until)`` (and in
    ``[previous_since, since)`` when given): four GROUP BYs a period."""
    if table is None:
        return AlertStats(since=since, until=until, previous_since=previous_since)
    previous = () if previous_since is None else _rows(conn, table, previous_since, since)
    return AlertStats(since=since, until=until, rows=_rows(conn, table, since, until),
                      previous=previous, previous_since=previous_since)


def _rows(conn: sqlite3.Connection, table: str, since: datetime, until: datetime
          ) -> tuple[RuleCounts, ...]:
    window = (to_millis(since), to_millis(until))
    counts = conn.execute(
        "SELECT rule, src, COUNT(*), SUM(status = 'closed' AND auto = 1),"
        " SUM(status = 'closed' AND auto = 0), SUM(status IN ('acknowledged', 'in-progress')),"
        " SUM(status = 'open')" + _WINDOW.format(t=table) + " GROUP BY rule, src",
        window).fetchall()
    reasons: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for rule, src, reason, count in conn.execute(
            "SELECT rule, src, COALESCE(reason, ?), COUNT(*)" + _WINDOW.format(t=table)
            + " AND status = 'closed' AND auto = 0 GROUP BY 1, 2, 3 ORDER BY 4 DESC, 3",
            (NO_REASON, *window)):
        reasons[(rule, src)].append((reason, count))
    mtta = _medians(conn, _MEDIAN.format(t=table, extra=_HUMAN), window)
    mttr = _medians(conn, _MEDIAN.format(t=table, extra=_HUMAN + " AND status = 'closed'"),
                    window)
    return tuple(RuleCounts(
        rule=rule, source=src, alerts=total, auto_closed=auto or 0, closed=closed or 0,
        acknowledged=acked or 0, open=still_open or 0,
        closed_by_reason=tuple(reasons.get((rule, src), ())),
        mtta_s=mtta.get((rule, src)), mttr_s=mttr.get((rule, src)))
        for rule, src, total, auto, closed, acked, still_open in counts)


def _medians(conn: sqlite3.Connection, sql: str, window: tuple[int, int]
             ) -> dict[tuple[str, str], float]:
    return {(rule, src): float(value) / 1000.0
            for rule, src, value in conn.execute(sql, window) if value is not None}


__all__ = ["COLUMNS", "add_columns", "closed_by_secbot", "derived", "query_stats", "source_of"]
