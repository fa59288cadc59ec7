"""What an alert group looks like in Slack: the header and the member lines of its thread.

Pure functions of the stored state (:class:`~secbot.domain.group.GroupState`) and the members'
records, so any replica draws the same message. Every string from alert data is escaped;
sections stay under Block Kit's 3000 characters and a message under 50 blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from secbot.domain.group import GroupState, line_status
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
STATUS_WORDS = {
    "open": "open",
    "acknowledged": "acknowledged",
    "in-progress": "in progress",
    "closed": "closed",
    "auto-closed": "auto-closed",
}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def header_text(state: GroupState, threshold: int) -> str:
    """The header's mrkdwn: rule, kind, count, first/last seen, status counts, top values."""
    meta = state.meta
    if meta.kind == "storm":
        why = (f"storm: this rule sent more than {threshold} alerts a minute to this channel, "
               "so they are grouped here")
    else:
        pairs = ", ".join(f"{md.escape(f)} = {md.escape(v)}"
                          for f, v in zip(meta.by, meta.by_values, strict=False))
        why = f"grouped by {pairs}"
    counts = state.counts
    lines = [
        f":package: *{md.escape(meta.rule_name)}* · {why}",
        f"*{state.count}* alert{'s' if state.count != 1 else ''} · first seen "
        f"{md.escape(state.first_seen) or '?'} · last seen {md.escape(state.last_seen) or '?'}",
        f"Open {counts.open} · Acknowledged {counts.acknowledged} · Closed {counts.closed} · "
        f"Auto-closed {counts.auto_closed}",
    ]
    for name in meta.fields:
        tally = state.tallies.get(name) or {}
        if tally:
            top = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]
            shown = ", ".join(f"{md.escape(v)} ({n})" for v, n in top)
            more = len(tally) - len(top)
            lines.append(f"• *{md.escape(name)}*: {shown}"
                         + (f" and {more} other value{'s' if more != 1 else ''}" if more else ""))
    if state.closed_note:
        lines.append(md.escape(state.closed_note))
    lines.append("React here to change every alert of this group; each alert has a line in "
                 "the thread.")
    return md.truncate("\n".join(lines), md.SECTION_TEXT_MAX)


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
    fields: Sequence[str],
) -> dict[str, Any]:
    """One thread message listing ``uuids`` (positions ``start`` …), sections under limits."""
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
    label = f"Alert {first}" if len(uuids) == 1 else f"Alerts {first}–{last}"
    return {
        "text": f"{label} of this group",
        "blocks": [_section(s) for s in sections[:49]],
        "metadata": {
            "event_type": EVENT_TYPE,
            "event_payload": {
                "group_id": group_id, "role": "batch", "start": start,
                "end": start + len(uuids), "alert_uuids": list(uuids),
            },
        },
    }
