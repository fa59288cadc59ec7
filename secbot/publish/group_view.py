"""What an alert group looks like in Slack: the header and the member lines of its thread.

Pure functions of the stored state (:class:`~secbot.domain.group.GroupState`) and the members'
records, so any replica draws the same message. Every string from alert data is escaped;
sections stay under Block Kit's 3000 characters and a message under 50 blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from secbot.domain.group import GroupState, StatusCounts, line_status
from secbot.domain.record import AlertRecord
from secbot.render import mrkdwn as md

EVENT_TYPE = "secbot_group"
#: Members per batch message: 40 lines of ≤ 240 characters fit 4 sections, and their uuids
#: keep the metadata a few kilobytes (Slack bounds metadata size).
BATCH_SIZE = 40
LINE_MAX = 240
TOP_VALUES = 3
#: Uuids the header's metadata carries (the rest are counted; each batch carries its own).
HEADER_UUIDS = 20
#: The header part of a duplicates group on its first alert's message (replaced in place).
DUP_BLOCK_ID = "secbot_duplicates"
STATUS_WORDS = {
    "open": "open",
    "acknowledged": "acknowledged",
    "in-progress": "in progress",
    "closed": "closed",
    "auto-closed": "auto-closed",
}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


@dataclass(frozen=True)
class Figures:
    """What a header counts: for a duplicates group its first alert (not a member: it has
    its own message) is counted too, so the header speaks of every alert the message stands
    for."""

    count: int
    counts: StatusCounts
    first_seen: str
    tallies: Mapping[str, Mapping[str, int]]


def figures(state: GroupState, head: AlertRecord | None = None) -> Figures:
    """The header's numbers from the stored state (and the first alert, for ``dup``)."""
    if state.meta.kind != "dup" or head is None:
        return Figures(state.count, state.counts, state.first_seen, state.tallies)
    status = line_status(head.status, head.auto_close)
    counts = state.counts
    field = {"open": "open", "in-progress": "open", "acknowledged": "acknowledged",
             "closed": "closed", "auto-closed": "auto_closed"}[status]
    counts = replace(counts, **{field: getattr(counts, field) + 1})
    tallies = {name: dict(values) for name, values in state.tallies.items()}
    for name in state.meta.fields:
        value = head.fields.get(name)
        if value not in (None, "", [], {}) and not isinstance(value, (dict, list)):
            bucket = tallies.setdefault(name, {})
            bucket[str(value)] = bucket.get(str(value), 0) + 1
    return Figures(state.count + 1, counts, str(head.timestamp or state.first_seen), tallies)


def _why(state: GroupState, threshold: int) -> str:
    meta = state.meta
    if meta.kind == "storm":
        return (f"storm: this rule sent more than {threshold} alerts a minute to this channel, "
                "so they are grouped here")
    if meta.kind == "dup":
        return "duplicates: same dedup key inside the rule's window, this alert first"
    pairs = ", ".join(f"{md.escape(f)} = {md.escape(v)}"
                      for f, v in zip(meta.by, meta.by_values, strict=False))
    return f"grouped by {pairs}"


def header_text(state: GroupState, threshold: int, head: AlertRecord | None = None) -> str:
    """The header's mrkdwn: rule, kind, count, first/last seen, status counts, top values.
    The same for every kind; ``head`` is a duplicates group's first alert."""
    meta = state.meta
    numbers = figures(state, head)
    counts = numbers.counts
    lines = [
        f":package: *{md.escape(meta.rule_name)}* · {_why(state, threshold)}",
        f"*{numbers.count}* alert{'s' if numbers.count != 1 else ''} · first seen "
        f"{md.escape(numbers.first_seen) or '?'} · last seen "
        f"{md.escape(state.last_seen or numbers.first_seen) or '?'}",
        f"Open {counts.open} · Acknowledged {counts.acknowledged} · Closed {counts.closed} · "
        f"Auto-closed {counts.auto_closed}",
    ]
    for name in meta.fields:
        tally = numbers.tallies.get(name) or {}
        if tally:
            top = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]
            shown = ", ".join(f"{md.escape(v)} ({n})" for v, n in top)
            more = len(tally) - len(top)
            lines.append(f"• *{md.escape(name)}*: {shown}"
                         + (f" and {more} other value{'s' if more != 1 else ''}" if more else ""))
    if state.closed_note:
        lines.append(md.escape(state.closed_note))
    if meta.kind == "dup":
        lines.append("React on this message to change this alert and every duplicate; each "
                     "duplicate has a line in the thread.")
    else:
        lines.append("React here to change every alert of this group; each alert has a line in "
                     "the thread.")
    return md.truncate("\n".join(lines), md.SECTION_TEXT_MAX)


def duplicates_message(head: AlertRecord, message: Mapping[str, Any], state: GroupState,
                       threshold: int) -> dict[str, Any]:
    """``chat.update`` arguments of a duplicates group's header: the first alert's message
    as last shown (its status line included) with the group's header part as its last block.
    No metadata: the message keeps its ``secbot_alert`` tag (it still stands for the alert)."""
    blocks = [dict(b) for b in message.get("blocks", []) if b.get("block_id") != DUP_BLOCK_ID]
    part = {**_section(header_text(state, threshold, head)), "block_id": DUP_BLOCK_ID}
    return {"text": str(message.get("text", "")),
            "blocks": [*blocks[: md.MAX_BLOCKS - 1], part]}


def header_message(state: GroupState, threshold: int, uuids: Sequence[str]) -> dict[str, Any]:
    """``chat.postMessage`` / ``chat.update`` arguments of the header (with its metadata)."""
    text = header_text(state, threshold)
    return {
        "text": md.truncate(f"{state.meta.rule_name}: {state.count} alerts", 3000),
        "blocks": [_section(text)],
        "metadata": {
            "event_type": EVENT_TYPE,
            "event_payload": {
                "group_id": state.meta.group_id, "role": "header", "count": state.count,
                "alert_uuids": list(uuids[:HEADER_UUIDS]),
            },
        },
    }


def member_line(uuid: str, record: AlertRecord | None, fields: Sequence[str]) -> str:
    """``• `1a2b3c4d` 2024-… · user.email x · open`` for one member."""
    if record is None:  # expired or unreadable: still listed, so it is never hidden
        return md.truncate(f"• `{md.escape(uuid[:8])}` · details expired · see the SIEM", LINE_MAX)
    parts = [f"• `{md.escape(uuid[:8])}`", md.escape(str(record.timestamp or ""))]
    for name in fields:
        value = record.fields.get(name)
        if value not in (None, "", []):
            parts.append(f"{md.escape(name)} {md.escape(value)}")
    status = line_status(record.status, record.auto_close)
    parts.append(f"*{STATUS_WORDS[status]}*")
    return md.truncate(" · ".join(p for p in parts if p), LINE_MAX)


def batch_message(
    group_id: str, start: int, uuids: Sequence[str], records: Mapping[str, AlertRecord | None],
    fields: Sequence[str], kind: str = "storm",
) -> dict[str, Any]:
    """One thread message listing ``uuids`` (positions ``start`` …), sections under limits.
    A duplicates group's batches are the "new context" of its first alert (DESIGN §10)."""
    sections: list[str] = []
    current = ""
    for uuid in uuids:
        line = member_line(uuid, records.get(uuid), fields)
        if current and len(current) + len(line) + 1 > md.SECTION_TEXT_MAX:
            sections.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        sections.append(current)
    first, last = start + 1, start + len(uuids)
    if kind == "dup":
        label = f"duplicate {first}" if len(uuids) == 1 else f"duplicates {first}–{last}"
        text = f"New context: {label} of this alert (same dedup key)"
    else:
        label = f"Alert {first}" if len(uuids) == 1 else f"Alerts {first}–{last}"
        text = f"{label} of this group"
    return {
        "text": text,
        "blocks": [_section(s) for s in sections[:49]],
        "metadata": {
            "event_type": EVENT_TYPE,
            "event_payload": {
                "group_id": group_id, "role": "batch", "start": start,
                "end": start + len(uuids), "alert_uuids": list(uuids),
            },
        },
    }


def context_text(more: int, latest: str, stamp: Any, fields: Mapping[str, Any],
                 first_fields: Mapping[str, Any], auto_closed: str | None = None) -> str:
    """The "new context" reply under a duplicates group's first alert: how many came since,
    the latest one, and the rule's fields where it differs from the first (edited in place)."""
    lines = [
        f":repeat: *New context:* {more} more alert{'s' if more != 1 else ''} with the same "
        f"dedup key since this one. Latest: `{md.escape(latest)}` at "
        f"{md.escape(stamp or 'unknown time')}"
    ]
    changed = [
        f"• *{md.escape(name)}*: {md.escape(first_fields.get(name))} → {md.escape(value)}"
        for name, value in fields.items()
        if name in first_fields and first_fields.get(name) != value
    ]
    lines.extend(changed[:10] or ["No included field differs from the first alert."])
    if auto_closed:
        lines.append(f"Latest was auto-closed: {md.escape(auto_closed)}")
    lines.append("Each duplicate has a line below.")
    return md.truncate("\n".join(lines), md.MESSAGE_TEXT_MAX)
