"""Alert groups through the real app (bolt over the Slack stand-in's Socket Mode, the
Elastic/Kibana stand-in, real Redis): storms fold into one header whose thread lists every
alert once; a reaction on the header changes the whole group; ``group.by`` groups across a
window; a duplicate after its group was closed gets a message of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from stack_support import INDEX, TRIAGER, Stack, eventually, running_stack

from secbot.publish.group_view import EVENT_TYPE as GROUP_EVENT
from secbot.publish.slack import EVENT_TYPE as ALERT_EVENT
from secbot_emulators.slack import SlackEmulator

PROD = "C0PRODSEC"


def gcp_alert(uid: str, email: str, minute: int = 0) -> dict[str, Any]:
    return {
        "@timestamp": f"2026-11-01T10:{minute % 60:02d}:00.000Z",
        "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "high",
        "kibana.alert.rule.name": "GCP Service Account Key Creation",
        "cloud": {"project": {"id": "prod-payments"}},
        "user": {"email": email},
        "source.ip": "198.51.100.7",
    }


def shown_counts(slack: SlackEmulator, channel: str) -> Counter[str]:
    """How often each alert uuid is shown in ``channel``: as its own top-level message, or as
    a line of a group batch in a thread (the header's preview of uuids is not a line)."""
    counts: Counter[str] = Counter()
    everything = {m.ts: m for m in slack.messages(channel)}
    for top in list(everything.values()):
        everything.update({m.ts: m for m in slack.replies(channel, top.ts)})
    for message in everything.values():
        meta = message.metadata or {}
        payload = meta.get("event_payload") or {}
        if meta.get("event_type") == ALERT_EVENT:
            counts[str(payload.get("alert_uuid"))] += 1
        elif meta.get("event_type") == GROUP_EVENT and payload.get("role") == "batch":
            counts.update(str(u) for u in payload.get("alert_uuids") or [])
    return counts


async def all_shown_once(stack: Stack, uids: Iterable[str]) -> bool:
    counts = shown_counts(stack.slack, PROD)
    return all(counts[u] >= 1 for u in uids)


def headers(stack: Stack) -> list[Any]:
    return [m for m in stack.top_messages(PROD)
            if ((m.metadata or {}).get("event_payload") or {}).get("role") == "header"]


async def test_a_60_alert_storm_is_one_group_every_alert_once_and_one_check_mark_closes_all(
) -> None:
    async with running_stack(group_threshold=5) as stack:
        uids = [f"storm-{i}" for i in range(60)]
        stack.elastic.index_documents(
            INDEX, [gcp_alert(u, f"u{i}@example.com", i) for i, u in enumerate(uids)])
        await eventually(lambda: all_shown_once(stack, uids), timeout=60)
        counts = shown_counts(stack.slack, PROD)
        assert {u: n for u, n in counts.items() if n != 1} == {}  # each shown exactly once
        assert set(counts) == set(uids)
        top = stack.top_messages(PROD)
        assert len(top) == 6  # five alerts of their own, then one group: the channel is calm
        [header] = headers(stack)
        batches = stack.slack.replies(PROD, header.ts)
        assert len([b for b in batches if b.ts != header.ts]) <= 11  # ≥ 5 lines a message
        assert "…and" not in str(header.blocks) and "more (see" not in str(header.blocks)

        async def header_says_55() -> bool:
            text = str(stack.slack.message(PROD, header.ts).blocks)
            return "*55* alerts" in text and "Open 55" in text

        await eventually(header_says_55)

        stack.slack.user_reacts(TRIAGER, "white_check_mark", PROD, header.ts)
        grouped = [u for u in uids if u not in _own_messages(stack)]

        async def all_closed() -> bool:
            return all(stack.es_doc(u).get("kibana.alert.workflow_status") == "closed"
                       for u in grouped)

        await eventually(all_closed, timeout=30)
        assert all(stack.es_doc(u).get("kibana.alert.workflow_status") == "open"
                   for u in _own_messages(stack))

        async def redrawn() -> bool:
            text = str(stack.slack.message(PROD, header.ts).blocks)
            lines = " ".join(str(b.blocks) for b in stack.slack.replies(PROD, header.ts)
                             if b.ts != header.ts)
            return "Closed 55" in text and "*open*" not in lines and "*closed*" in lines

        await eventually(redrawn, timeout=20)


def _own_messages(stack: Stack) -> set[str]:
    own = set()
    for message in stack.top_messages(PROD):
        meta = message.metadata or {}
        if meta.get("event_type") == ALERT_EVENT:
            own.add(str((meta.get("event_payload") or {}).get("alert_uuid")))
    return own
