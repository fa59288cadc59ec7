"""Values as Elasticsearch reads them: dates, field paths, ``term`` equality, bulk-ish files.

Restated from Elasticsearch's documented behaviour so the emulator never borrows the
product's own helpers (a stand-in that shares the product's logic cannot catch its bugs):

- ``date`` fields hold epoch milliseconds; ISO-8601 strings (``Z`` or an offset) and epoch
  millis numbers are both accepted; sub-millisecond digits are truncated.
- A field path ``a.b.c`` reaches the same field whether the document spells it as the literal
  key ``"a.b.c"``, as nested objects, or any mix (ES flattens objects when indexing).
- ``term`` on a keyword/number/boolean field: the query value is coerced to the field's type,
  so ``"true"`` matches ``true`` and ``"5"`` matches ``5``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

_NOT_FOUND: Any = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_millis(moment: datetime) -> int:
    """Epoch ms of ``moment`` (naive means UTC), truncated like ES's ``date`` type."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = aware - _EPOCH  # integer arithmetic: a float timestamp would round, not truncate
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def now_millis() -> int:
    return epoch_millis(datetime.now(UTC))


def js_iso(moment: datetime) -> str:
    """What JavaScript's ``Date.prototype.toISOString`` prints (Kibana writes dates so)."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_date(text: str) -> datetime | None:
    """An ISO-8601 date or date-time string → aware UTC datetime; None when not one."""
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _walk(node: Any, parts: list[str]) -> Any:
    if not parts:
        return node
    if not isinstance(node, Mapping):
        return _NOT_FOUND
    # Longest literal key first: "kibana.alert.uuid" beats {"kibana": {...}} for one document.
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in node:
            found = _walk(node[key], parts[cut:])
            if found is not _NOT_FOUND:
                return found
    return _NOT_FOUND


def source_value(source: Mapping[str, Any], path: str) -> Any:
    """The value at field ``path`` (dotted keys or nested objects), None when absent."""
    found = _walk(source, path.split("."))
    return None if found is _NOT_FOUND else found


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def term_matches(stored: Any, wanted: Any) -> bool:
    """``term`` semantics for one stored value; arrays match when any element does."""
    if isinstance(stored, (list, tuple)):
        return any(term_matches(item, wanted) for item in stored)
    if isinstance(wanted, (list, tuple)):
        return any(term_matches(stored, item) for item in wanted)
    if stored is None or wanted is None:
        return False
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return str(stored).lower() == str(wanted).lower()
    if isinstance(stored, (int, float)) or isinstance(wanted, (int, float)):
        left, right = _as_number(stored), _as_number(wanted)
        return left is not None and left == right
    return bool(stored == wanted)


def json_values(text: str) -> Iterator[Any]:
    """Every JSON value in ``text``; a top-level array yields its items.

    Accepts NDJSON, es_archiver's blank-line separated pretty-printed records, and exported
    hit arrays alike.
    """
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return
        value, position = decoder.raw_decode(text, position)
        yield from (value if isinstance(value, list) else [value])


def id_and_source(doc: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(_id, _source)`` of an ES hit, an es_archiver ``doc`` record, or a bare ``_source``.

    A bare alert ``_source`` gets its ``kibana.alert.uuid`` as ``_id``, as Kibana indexes it.
    """
    if doc.get("type") == "doc" and isinstance(doc.get("value"), Mapping):
        record = doc["value"]
        if isinstance(record.get("source"), Mapping):
            return str(record.get("id") or ""), dict(record["source"])
    if isinstance(doc.get("_source"), Mapping):
        return str(doc.get("_id") or ""), dict(doc["_source"])
    return str(source_value(doc, "kibana.alert.uuid") or ""), dict(doc)
