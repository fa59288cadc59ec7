"""Block Kit checks and mention detection for the Slack emulator.

Slack rejects oversized or malformed blocks with ``invalid_blocks`` and JSON-pointer errors;
the emulator does the same for the limits SecBot must respect (DESIGN.md §8), so a rendering
bug fails in tests instead of in production. :func:`notifications` lists the control
sequences (``<!channel>``, ``<@U…>`` …) a message would actually trigger, so security tests can
assert that attacker-controlled alert text notified nobody.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

MAX_BLOCKS = 50
MAX_TEXT_OBJECT = 3000
MAX_HEADER = 150
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BLOCK_ID = 255
MAX_MESSAGE_TEXT = 40_000  # longer top-level text is truncated with a warning

_CONTROL = re.compile(
    r"<(@[UW][A-Z0-9]+|!(?:channel|here|everyone)|!subteam\^[A-Z0-9]+|#C[A-Z0-9]+)(?:\|[^>]*)?>")


def _too_long(limit: int, pointer: str) -> str:
    return f"must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _check_text(obj: Any, pointer: str, limit: int, *, plain_only: bool = False) -> list[str]:
    """Errors for one composition text object."""
    if not isinstance(obj, dict):
        return [f"must provide an object [json-pointer:{pointer}]"]
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        return [f"must be one of [{', '.join(allowed)}] [json-pointer:{pointer}/type]"]
    text = obj.get("text")
    if not isinstance(text, str):
        return [f"must provide a string [json-pointer:{pointer}/text]"]
    if not text:
        return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
    if len(text) > limit:
        return [_too_long(limit, f"{pointer}/text")]
    return []


def _check_section(block: dict[str, Any], pointer: str) -> list[str]:
    errors: list[str] = []
    if "text" not in block and "fields" not in block:
        errors.append(f"must contain either text or fields [json-pointer:{pointer}]")
    if "text" in block:
        errors += _check_text(block["text"], f"{pointer}/text", MAX_TEXT_OBJECT)
    fields = block.get("fields")
    if fields is not None:
        if not isinstance(fields, list):
            return [*errors, f"must provide an array [json-pointer:{pointer}/fields]"]
        if len(fields) > MAX_FIELDS:
            errors.append(f"no more than {MAX_FIELDS} items allowed "
                          f"[json-pointer:{pointer}/fields]")
        for i, item in enumerate(fields):
            errors += _check_text(item, f"{pointer}/fields/{i}", MAX_FIELD_TEXT)
    return errors


def _check_elements(block: dict[str, Any], pointer: str, limit: int) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [f"must provide a non-empty array [json-pointer:{pointer}/elements]"]
    errors = []
    if len(elements) > limit:
        errors.append(f"no more than {limit} items allowed [json-pointer:{pointer}/elements]")
    for i, element in enumerate(elements):
        if isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
            errors += _check_text(element, f"{pointer}/elements/{i}", MAX_TEXT_OBJECT)
    return errors


def _check_block(block: Any, pointer: str) -> list[str]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return [f"missing required field: type [json-pointer:{pointer}]"]
    errors: list[str] = []
    block_id = block.get("block_id")
    if isinstance(block_id, str) and len(block_id) > MAX_BLOCK_ID:
        errors.append(_too_long(MAX_BLOCK_ID, f"{pointer}/block_id"))
    kind = block["type"]
    if kind == "section":
        errors += _check_section(block, pointer)
    elif kind == "header":
        errors += _check_text(block.get("text"), f"{pointer}/text", MAX_HEADER, plain_only=True)
    elif kind == "context":
        errors += _check_elements(block, pointer, MAX_CONTEXT_ELEMENTS)
    elif kind == "actions":
        errors += _check_elements(block, pointer, MAX_ACTIONS_ELEMENTS)
    return errors


def validate_blocks(blocks: Any) -> list[str]:
    """Slack-style error strings for a message's ``blocks`` (empty list: valid)."""
    if not isinstance(blocks, list):
        return ["must provide an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        errors += _check_block(block, f"/blocks/{i}")
    return errors


def _mrkdwn_strings(node: Any) -> Iterator[str]:
    """Every string Slack parses for control sequences: mrkdwn text objects, not plain_text."""
    if isinstance(node, list):
        for item in node:
            yield from _mrkdwn_strings(item)
    elif isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            yield node["text"]
        elif node.get("type") == "user" and isinstance(node.get("user_id"), str):
            yield f"<@{node['user_id']}>"  # rich_text mention element
        elif node.get("type") == "broadcast" and isinstance(node.get("range"), str):
            yield f"<!{node['range']}>"
        for key, value in node.items():
            if key != "text" or not isinstance(value, str):
                yield from _mrkdwn_strings(value)


def notifications(text: str | None, blocks: Any = None, attachments: Any = None) -> list[str]:
    """Control sequences that would notify or link: ``["!channel", "@U123", "#C1"]``.

    Escaped text (``&lt;!channel&gt;``) yields nothing, which is the point of escaping.
    """
    found: list[str] = []
    legacy = [att.get(key) for att in attachments or [] if isinstance(att, dict)
              for key in ("pretext", "text", "fallback")]  # legacy attachment text is parsed
    sources = [text or "", *_mrkdwn_strings(blocks), *_mrkdwn_strings(attachments),
               *(s for s in legacy if isinstance(s, str))]
    for source in sources:
        found += _CONTROL.findall(source)
    return found
