"""Intake request bodies (DESIGN.md §11): one object, an array, ``{"alerts": [...]}``, NDJSON.

The errors say where (line of the NDJSON, position in the JSON) but never quote the body:
it is alert data, and may carry secrets.
"""

from __future__ import annotations

import json
from typing import Any

from secbot.domain.errors import SecBotError

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


class BodyError(SecBotError):
    """The body is not one of the accepted shapes; the message is safe to return."""


def _reject_constant(name: str) -> Any:
    # NaN/Infinity are not JSON; Python's json accepts them by default.
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _ndjson(text: str) -> list[Any]:
    items: list[Any] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append(_loads(line))
        except (ValueError, RecursionError):
            raise BodyError(f"line {number}: not valid JSON") from None
    return items


def _json(text: str) -> list[Any]:
    try:
        data = _loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(f"not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError):
        raise BodyError("not valid JSON") from None
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and set(data) == {"alerts"}:
        alerts = data["alerts"]
        if not isinstance(alerts, list):
            raise BodyError('"alerts" must be an array of alert objects')
        return alerts
    if isinstance(data, dict):
        return [data]
    raise BodyError("expected an alert object, an array of them, or {\"alerts\": [...]}")


def parse_alerts(body: bytes, content_type: str) -> list[Any]:
    """The alerts a request carries, in order (each still unchecked), or :class:`BodyError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("body is not UTF-8") from None
    items = _ndjson(text) if content_type.lower() in NDJSON_TYPES else _json(text)
    if not items:
        raise BodyError("no alerts in the body")
    return items


__all__ = ["NDJSON_TYPES", "BodyError", "parse_alerts"]
