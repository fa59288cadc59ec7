"""Making attacker-controlled alert text inert in Slack mrkdwn (DESIGN.md §8).

Slack's rule: escape exactly ``&``, ``<`` and ``>`` (``&`` first). Lengths are enforced after
escaping, because ``&amp;`` is longer than ``&``.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Block Kit limits (docs.slack.dev block reference).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
MAX_FIELDS = 10
CONTEXT_ELEMENTS_MAX = 10
MESSAGE_TEXT_MAX = 4000
MAX_BLOCKS = 50

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})

# Unicode categories Cc, Cf, Cs, Co (Unicode 14) except \n and \t: control, bidi-override and
# invisible format characters make text lie about what it says (e.g. U+202E). A precomputed
# class keeps escaping fast; tests check it against unicodedata.
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f"
    "\u0890-\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ud800-\uf8ff\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
    "\U000f0000-\U000ffffd\U00100000-\U0010fffd]"
)


def strip_invisible(text: str) -> str:
    return _INVISIBLE.sub("", text)


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
    return strip_invisible(to_text(value)).translate(_ESCAPES)


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
