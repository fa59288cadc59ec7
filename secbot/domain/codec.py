"""Flat frozen dataclass records as compact JSON, for the small state records rooms keep in
Redis (questions asked, response proposals, trust-loop entries).

:func:`decode` answers None for anything this code did not write (another version's record,
a truncated value): the caller then treats it as unknown instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, TypeVar

T = TypeVar("T")


def encode(record: Any) -> str:
    """``record`` (a dataclass instance of plain fields) as compact JSON."""
    return json.dumps(asdict(record), separators=(",", ":"))


def decode(cls: type[T], text: Any) -> T | None:
    """The record, or None when ``text`` is not one this code wrote."""
    if text is None or text == "":
        return None
    try:
        values = json.loads(str(text))
        return cls(**values) if isinstance(values, dict) else None
    except (TypeError, ValueError):
        return None
