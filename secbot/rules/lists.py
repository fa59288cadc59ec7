"""Named lists (``lists/<name>.txt``, ``SECBOT_LISTS_DIR``): the VIPs, admins and domain
controllers rules ask about with ``inList(value, "vips")``.

Lists are reviewed data like rules: loaded once at start, every problem reported as
``path:line: message``, and SecBot never starts with a broken list (see :func:`load_lists`).
The loaded :class:`NamedLists` is handed to the rule loader, which binds it to each compiled
expression (so an ``inList`` naming an unknown list is a load error with the rule's
``path:line``); the expression room never reads a file.

File format: one value a line; ``#`` starts a comment (at the start of a line, or after
whitespace); blank lines are ignored. Values are compared trimmed and case-folded
(:func:`secbot.expressions.functions.list_value`): emails, host names and user names are
case-insensitive where they come from, and a list that says ``CEO@Example.com`` must still
catch ``ceo@example.com``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from secbot.expressions.functions import list_value
from secbot.rules.loader import RuleLoadError, RuleProblem

#: A list name: the file stem and what ``inList`` names.
LIST_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
#: Bounds: a list is a handful to a few thousand people or hosts, not a threat feed (use the
#: ``threat_intel`` enricher for those). Bigger files are a mistake worth stopping on.
MAX_LIST_VALUES = 10_000
MAX_LIST_BYTES = 1024 * 1024
MAX_VALUE_LENGTH = 256
MAX_LISTS = 200
_INLINE_COMMENT = re.compile(r"(^|\s)#")


@dataclass(frozen=True)
class NamedLists(Mapping[str, frozenset[str]]):
    """The loaded lists by name; each a frozenset of normalised values. Read-only."""

    lists: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    paths: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))

    def __getitem__(self, name: str) -> frozenset[str]:
        return self.lists[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.lists)

    def __len__(self) -> int:
        return len(self.lists)

    def contains(self, name: str, value: str) -> bool:
        """Whether the list ``name`` holds ``value`` (compared as ``inList`` does)."""
        return list_value(value) in self.lists.get(name, frozenset())


def _strip_comment(line: str) -> str:
    found = _INLINE_COMMENT.search(line)
    return (line[: found.start()] if found else line).strip()


def _value_problem(value: str) -> str | None:
    if len(value) > MAX_VALUE_LENGTH:
        return f"value longer than {MAX_VALUE_LENGTH} characters"
    if any(char.isspace() for char in value):
        return f"one value a line: {value[:60]!r} holds whitespace"
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return f"invisible character U+{ord(char):04X} is not allowed"
    return None


def _read(path: Path) -> tuple[str | None, list[RuleProblem]]:
    try:
        size = path.stat().st_size
        if size > MAX_LIST_BYTES:
            return None, [RuleProblem(path, 1, f"list file is too large ({size:,} bytes, "
                                                f"limit {MAX_LIST_BYTES:,})")]
        return path.read_text(encoding="utf-8"), []
    except UnicodeDecodeError:
        return None, [RuleProblem(path, 1, "cannot read: not UTF-8 text")]
    except OSError as exc:
        return None, [RuleProblem(path, 1, f"cannot read: {exc.strerror or exc}")]


def load_list_file(path: Path) -> tuple[frozenset[str] | None, list[RuleProblem]]:
    """One ``<name>.txt`` → its normalised values (None when it has problems) and problems."""
    text, problems = _read(path)
    if text is None:
        return None, problems
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        value = _strip_comment(line)
        if not value:
            continue
        problem = _value_problem(value)
        key = list_value(value)
        if problem is not None:
            problems.append(RuleProblem(path, number, problem))
        elif key in seen:
            problems.append(RuleProblem(path, number, f"duplicate value {value[:60]!r} (also "
                                                       f"line {seen[key]}; values compare "
                                                       "case-insensitively)"))
        else:
            seen[key] = number
        if len(seen) > MAX_LIST_VALUES:
            problems.append(RuleProblem(path, number, f"list has more than "
                                                       f"{MAX_LIST_VALUES:,} values"))
            break
    if not seen and not problems:
        problems.append(RuleProblem(path, 1, "list is empty (no values, only comments or "
                                             "blank lines); delete the file instead"))
    return (None if problems else frozenset(seen)), problems


def list_files(directory: Path) -> list[Path]:
    """Every ``*.txt`` file of the directory (other files, a README, are not lists)."""
    return sorted(p for p in directory.iterdir()
                  if p.suffix.lower() == ".txt" and not p.name.startswith("."))


def validate_lists(directory: Path) -> tuple[NamedLists, list[RuleProblem]]:
    """Load every list; returns the lists that loaded and every problem found.

    A missing directory is no lists (lists are optional); a rule naming one still fails to
    load, saying which lists exist."""
    if not directory.exists():
        return NamedLists(), []
    if not directory.is_dir():
        return NamedLists(), [RuleProblem(directory, 0, "lists directory is not a directory")]
    found: dict[str, frozenset[str]] = {}
    paths: dict[str, Path] = {}
    problems: list[RuleProblem] = []
    files = list_files(directory)
    if len(files) > MAX_LISTS:
        return NamedLists(), [RuleProblem(directory, 0, f"{len(files)} list files, at most "
                                                        f"{MAX_LISTS} allowed")]
    for path in files:
        if not LIST_NAME.match(path.stem) or path.suffix != ".txt":
            problems.append(RuleProblem(path, 1, f"list file name {path.name!r}: use lowercase "
                                                 "letters, digits, '_' and '-', ending in .txt"))
            continue
        values, found_problems = load_list_file(path)
        problems.extend(found_problems)
        if values is not None:
            found[path.stem] = values
            paths[path.stem] = path
    return NamedLists(MappingProxyType(found), MappingProxyType(paths)), problems


def lists_dir_beside(lists_dir: Path, rules_dir: Path) -> Path:
    """Where the named lists are: ``lists_dir`` itself when it exists or is absolute; a
    relative one missing from the working directory is looked up beside the rules directory
    (``rules/`` and ``lists/`` of one reviewed repository), so ``SECBOT_RULES_DIR=/srv/x/rules``
    alone finds ``/srv/x/lists``."""
    if lists_dir.is_absolute() or lists_dir.exists():
        return lists_dir
    beside = rules_dir.parent / lists_dir
    return beside if beside.is_dir() else lists_dir


def load_lists(directory: Path) -> NamedLists:
    """The lists, or :class:`RuleLoadError` listing every problem. Never half of them."""
    lists, problems = validate_lists(directory)
    if problems:
        raise RuleLoadError(problems)
    return lists


__all__ = ["LIST_NAME", "NamedLists", "lists_dir_beside", "load_list_file", "load_lists",
           "validate_lists"]
