"""Linear-time regular expressions for the ``matches()`` helper.

Python's ``re`` backtracks: ``re.search(r".*foo.*bar", "foo" * 3333)`` takes ~50 s and cannot be
interrupted, and the subject here is attacker-controlled alert data. So patterns are parsed with
``re``'s own parser (exact Python syntax and character-class semantics), compiled to a small NFA
program and run as a Pike VM: O(len(text) × len(program)) and checked against the deadline.
Only match/no-match is needed, so greedy and lazy quantifiers are equivalent. Constructs that
are not regular (back-references, lookarounds, atomic groups, possessive quantifiers) are
rejected when the rule is compiled.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from secbot.expressions.errors import ExpressionTimeoutError
from secbot.expressions.limits import MAX_PATTERN_LENGTH, MAX_PATTERN_PROGRAM

# re's parser is the only way to get Python-exact regex syntax; it is private but stable
# (``sre_parse`` before 3.11). Imported dynamically so type checkers treat it as Any.
_parser: Any = importlib.import_module("re._parser")

_CHAR, _SPLIT, _JMP, _ASSERT, _MATCH = range(5)
_I, _M, _S, _A = re.IGNORECASE, re.MULTILINE, re.DOTALL, re.ASCII
_CATEGORIES = {"CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s",
               "CATEGORY_NOT_SPACE": r"\S", "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W"}
_UNSUPPORTED = {"GROUPREF": "back-references", "GROUPREF_EXISTS": "conditional groups",
                "ASSERT": "lookahead/lookbehind", "ASSERT_NOT": "lookahead/lookbehind",
                "ATOMIC_GROUP": "atomic groups", "POSSESSIVE_REPEAT": "possessive quantifiers"}
_WORD = re.compile(r"\w").fullmatch
_ASCII_WORD = re.compile(r"\w", re.ASCII).fullmatch
# re's \B never matched an empty string before Python 3.14; mirror the running Python.
_EMPTY_NON_BOUNDARY = sys.version_info >= (3, 14)
_DEADLINE_STRIDE = 256  # characters between two deadline checks

Pred = Callable[[str], object]


class PatternError(ValueError):
    """The pattern is invalid or uses a construct ``matches()`` does not support."""


@dataclass(frozen=True, slots=True)
class Program:
    """A compiled pattern: NFA instructions, or a plain substring for literal patterns."""

    source: str
    ops: tuple[int, ...]
    args: tuple[Any, ...]   # CHAR: predicate (or the exact char); ASSERT: (code, flags)
    alts: tuple[int, ...]   # SPLIT/JMP targets
    literal: str | None     # set when the whole pattern is a case-sensitive literal


class _Builder:
    """Emits NFA instructions for a parsed pattern, bounded by MAX_PATTERN_PROGRAM."""

    def __init__(self) -> None:
        self.ops: list[int] = []
        self.args: list[Any] = []
        self.alts: list[int] = []

    def emit(self, op: int, arg: Any = None, alt: int = -1) -> int:
        if len(self.ops) >= MAX_PATTERN_PROGRAM:
            raise PatternError("regular expression is too complex (too many repetitions)")
        self.ops.append(op)
        self.args.append(arg)
        self.alts.append(alt)
        return len(self.ops) - 1

    def sequence(self, items: Any, flags: int) -> None:
        for op, av in items:
            self.item(str(op), av, flags)

    def item(self, name: str, av: Any, flags: int) -> None:
        if name in _UNSUPPORTED:
            raise PatternError(f"{_UNSUPPORTED[name]} are not supported in matches() patterns")
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            self.emit(_CHAR, _char_predicate(name, av, flags))
        elif name == "AT":
            self.emit(_ASSERT, (str(av), flags))
        elif name == "SUBPATTERN":
            _group, add, remove, sub = av
            self.sequence(sub, (flags | add) & ~remove)
        elif name == "BRANCH":
            self.branch(av[1], flags)
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            self.repeat(av, flags)
        else:
            raise PatternError(f"unsupported regular expression construct {name}")

    def branch(self, alternatives: Any, flags: int) -> None:
        jumps: list[int] = []
        for index, alternative in enumerate(alternatives):
            split = -1
            if index < len(alternatives) - 1:
                split = self.emit(_SPLIT, len(self.ops) + 1)
            self.sequence(alternative, flags)
            if split >= 0:
                jumps.append(self.emit(_JMP))
                self.alts[split] = len(self.ops)
        for jump in jumps:
            self.alts[jump] = len(self.ops)

    def repeat(self, av: Any, flags: int) -> None:
        low, high, body = av
        for _ in range(low):
            self.sequence(body, flags)
        if high == _parser.MAXREPEAT:
            loop = self.emit(_SPLIT, len(self.ops) + 1)
            self.sequence(body, flags)
            self.emit(_JMP, None, loop)
            self.alts[loop] = len(self.ops)
            return
        splits = []
        for _ in range(high - low):
            splits.append(self.emit(_SPLIT, len(self.ops) + 1))
            self.sequence(body, flags)
        for split in splits:
            self.alts[split] = len(self.ops)


def _char_class_source(name: str, av: Any) -> str:
    """Source of a one-character regex equivalent to a parsed LITERAL/NOT_LITERAL/ANY/IN."""
    if name == "LITERAL":
        return re.escape(chr(av))
    if name == "NOT_LITERAL":
        return "[^" + re.escape(chr(av)) + "]"
    if name == "ANY":
        return "."
    parts: list[str] = []
    for op, value in av:
        kind = str(op)
        if kind == "NEGATE":
            parts.insert(0, "^")
        elif kind == "LITERAL":
            parts.append(re.escape(chr(value)))
        elif kind == "RANGE":
            parts.append(re.escape(chr(value[0])) + "-" + re.escape(chr(value[1])))
        elif kind == "CATEGORY":
            parts.append(_CATEGORIES[str(value)])
        else:
            raise PatternError(f"unsupported character class item {kind}")
    return "[" + "".join(parts) + "]"


def _char_predicate(name: str, av: Any, flags: int) -> Pred | str:
    """A test for one character, with Python's exact semantics (it is a one-char ``re``)."""
    if name == "LITERAL" and not flags & _I:
        return chr(av)
    # A single-character pattern cannot backtrack, so delegating to ``re`` is safe and exact.
    compiled = re.compile(_char_class_source(name, av), flags & (_I | _S | _A))
    return compiled.fullmatch


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Program:
    """Compile ``pattern`` (cached). Raises :class:`PatternError` with a clear message."""
    if not isinstance(pattern, str):
        raise PatternError("the regular expression must be a string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"regular expression longer than {MAX_PATTERN_LENGTH} characters")
    try:
        with warnings.catch_warnings():
            # re warns about syntax whose meaning may change ("possible nested set"); the
            # pattern means today what re says, which is what we compile.
            warnings.simplefilter("ignore")
            parsed = _parser.parse(pattern, 0)
        flags = int(parsed.state.flags)
        if flags & re.LOCALE:
            raise PatternError("the (?L) flag is not supported in matches() patterns")
        builder = _Builder()
        builder.sequence(parsed, flags)
        builder.emit(_MATCH)
    except RecursionError:
        raise PatternError("regular expression is nested too deeply") from None
    except (re.error, OverflowError) as exc:
        raise PatternError(f"invalid regular expression: {exc}") from None
    literal = None
    if all(op == _CHAR and isinstance(arg, str) for op, arg in
           zip(builder.ops[:-1], builder.args[:-1], strict=True)):
        literal = "".join(builder.args[:-1])
    return Program(pattern, tuple(builder.ops), tuple(builder.args), tuple(builder.alts), literal)


def _assertion(code: str, flags: int, text: str, i: int) -> bool:
    """Whether the zero-width assertion ``code`` holds at position ``i`` of ``text``."""
    n = len(text)
    if code == "AT_BEGINNING":
        return i == 0 or bool(flags & _M and text[i - 1] == "\n")
    if code == "AT_BEGINNING_STRING":
        return i == 0
    if code == "AT_END":
        if flags & _M:
            return i == n or text[i] == "\n"
        return i == n or (i == n - 1 and text[i] == "\n")
    if code == "AT_END_STRING":
        return i == n
    word = _ASCII_WORD if flags & _A else _WORD
    before = i > 0 and word(text[i - 1]) is not None
    after = i < n and word(text[i]) is not None
    if code == "AT_BOUNDARY":
        return before != after
    if code == "AT_NON_BOUNDARY":
        return before == after and (n > 0 or _EMPTY_NON_BOUNDARY)
    raise PatternError(f"unsupported assertion {code}")


def _add_thread(prog: Program, threads: list[int], seen: list[int], start: int,
                text: str, i: int) -> bool:
    """Add ``start``'s ε-closure at position ``i`` to ``threads``; True if it reaches MATCH."""
    ops, args, alts = prog.ops, prog.args, prog.alts
    stack = [start]
    while stack:
        pc = stack.pop()
        if seen[pc] == i:
            continue
        seen[pc] = i
        op = ops[pc]
        if op == _CHAR:
            threads.append(pc)
        elif op == _MATCH:
            return True
        elif op == _JMP:
            stack.append(alts[pc])
        elif op == _SPLIT:
            stack.append(alts[pc])
            stack.append(args[pc])
        elif _assertion(args[pc][0], args[pc][1], text, i):
            stack.append(pc + 1)
    return False


def search(prog: Program, text: str, deadline: float) -> bool:
    """Whether ``prog`` matches anywhere in ``text`` (``re.search`` semantics)."""
    if prog.literal is not None:
        return prog.literal in text
    ops, args = prog.ops, prog.args
    seen = [-1] * len(ops)
    threads: list[int] = []
    for i in range(len(text) + 1):
        if i % _DEADLINE_STRIDE == 0 and perf_counter() > deadline:
            raise ExpressionTimeoutError("matches() took longer than the expression time limit")
        # A fresh thread at every position gives search (unanchored) semantics.
        if _add_thread(prog, threads, seen, 0, text, i):
            return True
        if i == len(text) or not threads:
            continue
        ch = text[i]
        following: list[int] = []
        for pc in threads:
            test = args[pc]
            hit = (ch == test) if test.__class__ is str else (test(ch) is not None)
            if hit and _add_thread(prog, following, seen, pc + 1, text, i + 1):
                return True
        threads = following
    return False
