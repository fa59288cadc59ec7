"""The documents users have stay true: every rule key is documented, every path they name exists.

Users get README.md and docs/*.md only; anything those pages point at must be in the repository
(nothing may send them to the maintainers' ../shared notes, which they do not have).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from secbot.rules.schema import rule_json_schema

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RULES_DOC = REPO / "docs" / "rules.md"

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_FILE_SUFFIX = re.compile(r"\.(py|md|ya?ml|ndjson|toml|json|sh|txt|sqlite3)$")


def _schema_key_paths(schema: Mapping[str, Any]) -> Iterator[str]:
    """Dotted paths of every property, ``[]`` for list items: ``route.when[].if``."""
    defs = schema.get("$defs", {})

    def resolve(node: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
        """The object schemas reachable from ``node``, with the suffix its items add."""
        if "$ref" in node:
            return [("", defs[node["$ref"].rsplit("/", 1)[-1]])]
        found: list[tuple[str, Mapping[str, Any]]] = []
        for option in node.get("anyOf", []):
            found += resolve(option)
        if node.get("type") == "array" and "items" in node:
            found += [("[]" + suffix, sub) for suffix, sub in resolve(node["items"])]
        return found

    def walk(node: Mapping[str, Any], prefix: str) -> Iterator[str]:
        for name, prop in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            yield path
            for suffix, sub in resolve(prop):
                yield from walk(sub, f"{path}{suffix}.")

    yield from walk(schema, "")


def test_schema_walk_finds_nested_keys() -> None:
    """Guards the walker itself: a walker that found nothing would pass the next test."""
    paths = set(_schema_key_paths(rule_json_schema()))
    assert {"id", "dedup.window", "route.when[].if", "tests[].expect.channel"} <= paths


@pytest.mark.parametrize("key", sorted(set(_schema_key_paths(rule_json_schema()))))
def test_every_rule_key_is_documented(key: str) -> None:
    assert f"`{key}`" in RULES_DOC.read_text(encoding="utf-8"), (
        f"docs/rules.md does not document the rule key `{key}` (from secbot rules schema)"
    )


def _named_paths(text: str) -> Iterator[str]:
    """Repository paths a page names: relative links, and path-like words in code."""
    for target in _LINK.findall(text):
        if not re.match(r"^[a-z]+:|^#", target):
            yield target.split("#", 1)[0]
    top = {p.name for p in REPO.iterdir()}
    code = _CODE_SPAN.findall(_FENCE.sub("", text)) + _FENCE.findall(text)
    for word in " ".join(code).split():
        word = re.sub(r":\d+$", "", word.strip("'\",;:()"))  # path:line
        if "{" in word or "…" in word or word.startswith(("/", "http")):
            continue
        if word.split("/", 1)[0] in top and ("/" in word or _FILE_SUFFIX.search(word)):
            yield word


def _exists(path: str, page: Path) -> bool:
    base = REPO if not path.startswith("..") else page.parent
    pattern = re.sub(r"<[^>]+>", "*", path)
    if "*" in pattern:
        return any(base.glob(pattern))
    return (base / pattern).exists()


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_paths_named_in_docs_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = sorted({p for p in _named_paths(text) if not _exists(p, page)})
    assert not missing, f"{page.name} names paths that are not in the repository: {missing}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_never_point_at_the_maintainers_notes(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text and "DESIGN.md" not in text, (
        f"{page.name} points at ../shared/DESIGN.md, which users do not have"
    )


def test_the_path_check_can_fail() -> None:
    """A page naming a file that is not there must be caught (links and code words alike)."""
    text = "See [the guide](docs/no-such-guide.md) and `secbot/pipeline/nowhere.py`."
    assert [p for p in _named_paths(text) if not _exists(p, RULES_DOC)] == [
        "docs/no-such-guide.md", "secbot/pipeline/nowhere.py"]
