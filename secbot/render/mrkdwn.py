"""Making attacker-controlled alert text inert in Slack mrkdwn (DESIGN.md §8).

Slack's rule: escape exactly ``&``, ``<`` and ``>`` (``&`` first). Lengths are enforced after
escaping, because ``&amp;`` is longer than ``&``.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

# Block Kit limits (docs.slack.dev block reference).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
MAX_FIELDS = 10
CONTEXT_ELEMENTS_MAX = 10
MESSAGE_TEXT_MAX = 4000
MAX_BLOCKS = 50

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _strip_controls(text: str) -> str:
    # Control and bidi-override characters make text lie about what it says (e.g. U+202E).
    return "".join(
        ch
        for ch in text
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co")
    )


def to_text(value: Any) -> str:
    """A readable one-value string: lists joined by ', ', mappings as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(to_text(v) for v in value)
    if isinstance(value, dict) or hasattr(value, "items"):
        return json.dumps(dict(value), default=str, ensure_ascii=False, sort_keys=True)
    return str(value)


def escape(value: Any) -> str:
    """``value`` as mrkdwn-safe text: controls removed, then ``&``, ``<``, ``>`` escaped."""
    text = _strip_controls(to_text(value))
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters without splitting an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def plain(value: Any, limit: int) -> str:
    """For ``plain_text`` objects: escaped too (DESIGN.md §10: text of any type), then cut."""
    return truncate(escape(value), limit) or " "
