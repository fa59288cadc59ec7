"""Durations as rule authors write them: ``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")


def parse_duration(value: Any) -> int:
    """Seconds in ``value``; a bare number means seconds. Raises ValueError naming the value."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value)
    elif isinstance(value, str) and _WHOLE.match(value):
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value))
    else:
        raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 30m, 2h, 1d)")
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be positive")
    if seconds > 90 * 86400:
        raise ValueError(f"{value!r}: a duration may be at most 90d")
    return seconds


Duration = Annotated[int, BeforeValidator(parse_duration)]
