"""Finding SecBot's own earlier posts in a channel's history by their message ``metadata``.

Every post that must happen exactly once across crashes (an alert, a group header, the weekly
report, a review sample) is tagged with ``metadata`` (``event_type`` + ``event_payload``); a
process that cannot tell whether an earlier attempt posted looks here before posting again
(DESIGN.md §10 "Exactly once").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

#: Pages of 200 messages read at most: a crashed attempt's post is among the channel's latest.
HISTORY_PAGES = 5


@dataclass(frozen=True)
class TaggedMessage:
    """A message of the channel with its metadata (empty when it has none)."""

    ts: str
    event_type: str
    payload: Mapping[str, Any]


def _tagged(message: Mapping[str, Any]) -> TaggedMessage:
    meta = message.get("metadata") or {}
    payload = meta.get("event_payload")
    return TaggedMessage(str(message["ts"]), str(meta.get("event_type") or ""),
                         payload if isinstance(payload, dict) else {})


async def tagged_messages(client: AsyncWebClient, channel: str,
                          wanted: Callable[[TaggedMessage], bool], *,
                          first: bool = False) -> list[TaggedMessage]:
    """The messages of ``channel`` (newest first, :data:`HISTORY_PAGES` pages at most) that
    ``wanted`` accepts; with ``first``, stop at the first one."""
    found: list[TaggedMessage] = []
    cursor: str | None = None
    for _ in range(HISTORY_PAGES):
        page = await client.conversations_history(
            channel=channel, include_all_metadata=True, limit=200, cursor=cursor)
        messages: list[dict[str, Any]] = page.get("messages") or []
        for message in messages:
            tagged = _tagged(message)
            if wanted(tagged):
                found.append(tagged)
                if first:
                    return found
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            break
    return found


async def find_tagged(client: AsyncWebClient, channel: str,
                      wanted: Callable[[TaggedMessage], bool]) -> TaggedMessage | None:
    """The newest message of ``channel`` that ``wanted`` accepts, or None."""
    hits = await tagged_messages(client, channel, wanted, first=True)
    return hits[0] if hits else None
