"""Making attacker-controlled alert text inert in Slack mrkdwn (DESIGN.md §8).

Slack's rule: escape exactly ``&``, ``<`` and ``>`` (``&`` first). Lengths are enforced after
escaping, because ``&amp;`` is longer than ``&``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from secbot.domain.alert import thaw

# Block Kit limits (docs.slack.dev block reference).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
MAX_FIELDS = 10
CONTEXT_ELEMENTS_MAX = 10
MESSAGE_TEXT_MAX = 4000
MAX_BLOCKS = 50
#: Longest text :func:`escape` looks at; the rest is cut (marked "…"). Far above any Slack
#: text limit (40,000 for a message), and it keeps a 100 MB alert field from costing seconds
#: of CPU for characters that could never be shown.
ESCAPE_INPUT_MAX = 50_000

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


def _json(value: Any) -> str:
    try:
        return json.dumps(thaw(value), default=str, ensure_ascii=False, sort_keys=True)
    except TypeError:  # keys of mixed types cannot be sorted
        return json.dumps(thaw(value), default=str, ensure_ascii=False)


def to_text(value: Any) -> str:
    """A readable one-value string: lists joined by ', ', mappings as compact JSON.

    Lists stop (with "…") once past :data:`ESCAPE_INPUT_MAX` characters.
    """
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        parts, size = [], 0
        for item in value:
            if size > ESCAPE_INPUT_MAX:
                parts.append("…")
                break
            text = to_text(item)
            parts.append(text)
            size += len(text) + 2
        return ", ".join(parts)
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return _json(value)
    return str(value)


def escape(value: Any) -> str:
    """``value`` as mrkdwn-safe text: controls removed, then ``&``, ``<``, ``>`` escaped.

    Only the first :data:`ESCAPE_INPUT_MAX` characters are kept.
    """
    text = to_text(value)
    if len(text) > ESCAPE_INPUT_MAX:
        text = text[:ESCAPE_INPUT_MAX] + "…"
    return strip_invisible(text).translate(_ESCAPES)


def code(value: Any) -> str:
    """``value`` escaped inside a code span; a backtick in it would end the span early, so it
    becomes U+02CB (ˋ), which looks the same."""
    return "`" + escape(value).replace("`", "\u02cb") + "`"


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
