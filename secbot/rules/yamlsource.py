"""YAML loading that remembers where every value came from, for ``path:line`` messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from secbot.domain.errors import SecBotError

Loc = tuple[str | int, ...]

#: Rule files are small; anything bigger is a mistake or an attack (PyYAML parses ~1 MB/s).
MAX_FILE_BYTES = 1_000_000
#: Deepest collection nesting accepted (PyYAML's composer recurses once per level).
MAX_NESTING = 100
#: Most nodes a document may have once aliases are expanded (billion laughs).
MAX_NODES = 100_000


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file plus the 1-based line of each value, keyed by its path of keys/indexes."""

    path: Path
    data: Any
    lines: dict[Loc, int]
    #: Values written as ``|`` or ``>`` blocks: their text starts on the line after the key.
    block_scalars: frozenset[Loc] = frozenset()

    def line_of(self, loc: Loc) -> int:
        """Line of ``loc``, or of its closest ancestor that has one (unknown keys have none)."""
        probe = tuple(loc)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)


class YamlSyntaxError(SecBotError, ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys: silently keeping the last one hides mistakes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not supported", key_node.start_mark
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping keys must be plain values", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _describe(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's context and problem as one line ("while parsing a flow sequence: expected …")."""
    if not exc.problem:
        return " ".join(str(exc).split())
    if not exc.context:
        return exc.problem
    joint = ": " if exc.context.startswith("while ") else " "
    return f"{exc.context}{joint}{exc.problem}"


def _event_line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 1


def _check_bounds(text: str) -> None:
    """Refuse deep nesting and alias bombs before anything recursive or expanding runs.

    One pass over the parser's events (the parser itself is not recursive): nesting depth, and
    the node count with every alias counted as the size of what it refers to.
    """
    sizes: dict[str, int] = {}
    stack: list[tuple[int, str | None]] = []  # (nodes so far, anchor) per open collection
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        size = 0
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_NESTING:
                raise YamlSyntaxError(
                    _event_line(event), f"YAML: nested deeper than {MAX_NESTING} levels"
                )
            stack.append((1, event.anchor))
            continue
        if isinstance(event, yaml.CollectionEndEvent) and stack:
            size, anchor = stack.pop()
            if anchor is not None:
                sizes[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor or "", 1)
        if stack:
            count, anchor = stack[-1]
            stack[-1] = (count + size, anchor)
        else:
            total += size
        if total > MAX_NODES or (stack and stack[-1][0] > MAX_NODES):
            raise YamlSyntaxError(
                _event_line(event),
                f"YAML: more than {MAX_NODES:,} values once aliases are expanded",
            )


def _index_lines(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], blocks: set[Loc] | None = None
) -> None:
    lines[loc] = node.start_mark.line + 1
    if blocks is not None and isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        blocks.add(loc)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*loc, key), lines, blocks)
            # Point at the key line for the mapping itself: reads better in messages.
            lines[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*loc, index), lines, blocks)


def load_yaml(path: Path) -> YamlDocument:
    """Parse ``path``; raises :class:`YamlSyntaxError` with the line of the problem.

    Bounded: files over :data:`MAX_FILE_BYTES`, nesting over :data:`MAX_NESTING` and alias
    expansion over :data:`MAX_NODES` are refused; so is text that is not UTF-8. ``OSError``
    propagates.
    """
    with path.open("rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise YamlSyntaxError(1, f"file is larger than {MAX_FILE_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlSyntaxError(line, f"not UTF-8: byte {raw[exc.start]:#04x}") from exc
    try:
        _check_bounds(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark and mark and mark.index >= len(text.rstrip()):
            # An unclosed bracket fails at end of file; where it was opened is more useful.
            mark = exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(line, f"YAML: {_describe(exc)}") from exc
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise YamlSyntaxError(line, f"YAML: character U+{char:04X} is not allowed") from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, f"YAML: {exc}") from exc
    lines: dict[Loc, int] = {}
    blocks: set[Loc] = set()
    if node is not None:
        _index_lines(node, (), lines, blocks)
    return YamlDocument(path=path, data=data, lines=lines, block_scalars=frozenset(blocks))
