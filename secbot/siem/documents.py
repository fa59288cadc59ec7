"""Kibana's alert-document semantics, shared by the embedded SIEM, SecBot's own alerts store
and the elastic backend: millisecond timestamps as Elasticsearch keeps them, document shapes
(hits, es_archiver records, bare ``_source``), and the status and tag painless scripts as
Python functions over a ``_source`` dict.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from secbot.domain.alert import lookup
from secbot.domain.status import CLOSING_REASONS, STATUSES

WORKFLOW_STATUS = "kibana.alert.workflow_status"
WORKFLOW_USER = "kibana.alert.workflow_user"
WORKFLOW_UPDATED_AT = "kibana.alert.workflow_status_updated_at"
WORKFLOW_REASON = "kibana.alert.workflow_reason"
WORKFLOW_TAGS = "kibana.alert.workflow_tags"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_millis(value: datetime) -> int:
    """Epoch milliseconds, floored like Elasticsearch's ``date`` type (no float rounding)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(milliseconds=1)


def iso_millis(value: datetime) -> str:
    """``2024-01-02T03:04:05.678Z``: what JavaScript's ``toISOString`` (Kibana) writes."""
    aware = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond // 1000:03d}Z"


def iter_json_documents(text: str) -> Iterator[Any]:
    """Every JSON value in ``text``: NDJSON, concatenated pretty-printed objects, or arrays.

    es_archiver ``data.json`` files are pretty-printed objects separated by blank lines, and
    exported hits often come as one array, so line-by-line parsing is not enough.
    """
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            return
        value, pos = decoder.raw_decode(text, pos)
        if isinstance(value, list):
            yield from value
        else:
            yield value


def split_document(doc: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(_id, _source)`` of an ES hit, an es_archiver record, or a bare ``_source``."""
    value = doc.get("value")
    if doc.get("type") == "doc" and isinstance(value, Mapping) and "source" in value:
        return str(value.get("id") or ""), dict(value["source"])
    if isinstance(doc.get("_source"), Mapping):
        return str(doc.get("_id") or ""), dict(doc["_source"])
    return str(lookup(doc, "kibana.alert.uuid") or ""), dict(doc)


def validate_status(status: str, reason: str | None) -> str | None:
    """Check ``status``/``reason`` like Kibana; returns the reason that will be stored.

    Kibana keeps a reason only when closing (``validateClosingReason`` answers
    ``reason: undefined`` for other statuses) and rejects reasons outside its list.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown alert status {status!r}; expected one of {STATUSES}")
    if status != "closed":
        return None
    if reason is not None and reason not in CLOSING_REASONS:
        raise ValueError(f"{reason} is an invalid closing reason.")
    return reason


def apply_status(
    source: dict[str, Any], status: str, reason: str | None, user: str | None, at: str | None
) -> bool:
    """Kibana's status painless script on a ``_source`` dict; False when nothing changed."""
    current = lookup(source, WORKFLOW_STATUS)
    changed = current is not None and current != status
    if changed:
        source[WORKFLOW_STATUS] = status
        source[WORKFLOW_USER] = user
        source[WORKFLOW_UPDATED_AT] = at
        if reason is not None:
            source[WORKFLOW_REASON] = reason
        else:
            source.pop(WORKFLOW_REASON, None)
    signal = source.get("signal")
    if isinstance(signal, dict) and signal.get("status") is not None:
        signal["status"] = status  # legacy .siem-signals documents
    return changed


def apply_tags(source: dict[str, Any], add: Sequence[str], remove: Sequence[str] = ()) -> None:
    """Kibana's set-alert-tags painless script: keep order, drop removed, append new."""
    current = lookup(source, WORKFLOW_TAGS)
    if current is None:
        source[WORKFLOW_TAGS] = list(dict.fromkeys(add))
        return
    kept = [tag for tag in current if tag not in remove]
    kept.extend(tag for tag in dict.fromkeys(add) if tag not in kept)
    source[WORKFLOW_TAGS] = kept


def field_equals(actual: Any, expected: Any) -> bool:
    """Keyword ``term`` equality: arrays match on any element; numbers/bools as ES coerces."""
    if isinstance(expected, (list, tuple)):
        return any(field_equals(actual, item) for item in expected)
    if isinstance(actual, (list, tuple)):
        return any(field_equals(item, expected) for item in actual)
    if actual == expected and type(actual) is type(expected):
        return True
    if actual is None or expected is None:
        return False
    if isinstance(actual, bool) or isinstance(expected, bool):
        return str(actual).lower() == str(expected).lower()
    if isinstance(actual, (int, float)) or isinstance(expected, (int, float)):
        try:
            return float(actual) == float(expected)
        except (TypeError, ValueError):
            return False
    return bool(actual == expected)


__all__ = ["WORKFLOW_REASON", "WORKFLOW_STATUS", "WORKFLOW_TAGS", "WORKFLOW_UPDATED_AT",
           "WORKFLOW_USER", "apply_status", "apply_tags", "field_equals", "iso_millis",
           "iter_json_documents", "split_document", "to_millis", "validate_status"]
