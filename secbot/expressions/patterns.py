"""Linear-time regular expressions for the ``matches()`` helper, on RE2 (google-re2).

Python's ``re`` backtracks: ``re.search(r".*foo.*bar", "foo" * 3333)`` takes ~50 s and cannot be
interrupted, and the subject here is attacker-controlled alert data. RE2 guarantees time linear
in the input, so a pattern reviewed in a rule can never stall the bot. RE2 rejects constructs
that need backtracking (back-references, lookarounds); those fail when the rule is compiled.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from time import thread_time
from typing import Any

import re2

from secbot.domain.errors import SecBotError
from secbot.expressions.errors import ExpressionTimeoutError
from secbot.expressions.limits import MAX_PATTERN_LENGTH, MAX_PATTERN_PROGRAM


class PatternError(SecBotError, ValueError):
    """The pattern is invalid or uses a construct ``matches()`` does not support."""


@dataclass(frozen=True, slots=True)
class Program:
    """A compiled pattern."""

    source: str
    regex: Any


def _options() -> Any:
    options = re2.Options()
    options.max_mem = 8 << 20  # bounds the compiled program, and so pathological patterns
    options.log_errors = False
    return options


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Program:
    """Compile ``pattern`` (cached). Raises :class:`PatternError` with a clear message."""
    if not isinstance(pattern, str):
        raise PatternError("the regular expression must be a string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"regular expression longer than {MAX_PATTERN_LENGTH} characters")
    try:
        regex = re2.compile(pattern, _options())
    except re2.error as exc:
        raise PatternError(_explain(pattern, exc)) from None
    if regex.programsize > MAX_PATTERN_PROGRAM:
        raise PatternError(f"regular expression too complex ({regex.programsize} steps, "
                           f"at most {MAX_PATTERN_PROGRAM})")
    return Program(pattern, regex)


_UNSUPPORTED = (
    (re2.compile(r"\\[1-9]"), "back-references are not supported"),
    (re2.compile(r"\(\?<?[=!]"), "lookahead/lookbehind is not supported"),
    (re2.compile(r"\(\?>"), "atomic groups are not supported"),
    (re2.compile(r"[*+?}]\+"), "possessive quantifiers are not supported"),
)


def _explain(pattern: str, exc: Exception) -> str:
    """RE2's error in words a rule author can act on (RE2 never backtracks, by design)."""
    for probe, message in _UNSUPPORTED:
        if probe.search(pattern):
            return f"{message} (matches() uses RE2, which runs in linear time)"
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return f"invalid regular expression: {detail}"


def search(prog: Program, text: str, deadline: float) -> bool:
    """True if ``prog`` matches anywhere in ``text`` (linear time in ``len(text)``)."""
    if thread_time() > deadline:
        raise ExpressionTimeoutError("expression took longer than its deadline")
    return prog.regex.search(text) is not None
