"""Which group an alert joins, if any (DESIGN.md §10 "Groups").

* ``group.by`` (the rule's key, found by the pipeline): the group its values opened inside the
  window, from the first alert on;
* storm: when a rule sends more than ``threshold`` alerts a minute into a channel (counted in
  the store, shared by every replica, once per alert uuid), further alerts join one storm
  group for that rule and channel until the rate falls back to the threshold.

Everything is in the store, so a restarted or standby replica continues the same group.
"""

from __future__ import annotations

import asyncio
import secrets

from secbot.domain.alert import Alert, thaw
from secbot.domain.group import (
    GROUP_PREFIX,
    GroupJoin,
    GroupMeta,
    GroupUpdate,
    line_status,
    storm_key,
)
from secbot.domain.record import MessageRef
from secbot.pipeline.decision import Decision
from secbot.store.base import Store

RATE_WINDOW = 60.0
#: How long a storm's key leads to its group at most (the storm ends sooner when the rate
#: falls back); a group's state lives as long as alert records.
STORM_KEY_TTL = 86400
#: Records read at once when recounting (bounded: not one Redis connection per member).
RECOUNT_CHUNK = 64


class GroupAssigner:
    """Finds or opens the group of an alert. ``threshold <= 0`` turns storm groups off."""

    def __init__(self, store: Store, *, threshold: int = 20, ttl: int = 30 * 86400) -> None:
        self.store = store
        self.threshold = threshold
        self.ttl = ttl

    async def assign(self, alert: Alert, decision: Decision, channel: str) -> str | None:
        """The group id ``alert`` joins, or None when it is posted as its own message."""
        rule_id = decision.rule_id or ""
        if decision.group is not None:
            key = decision.group
            group_id = await self._claim(key.key, key.window)
            await self.store.open_group(GroupMeta(
                group_id=group_id, kind="by", rule_id=rule_id, rule_name=_rule_name(alert,
                decision), channel=channel, fields=tuple(decision.fields),
                by=key.by, by_values=key.values,
            ), self.ttl)
            return group_id
        if self.threshold <= 0:
            return None
        storm = storm_key(rule_id, channel)
        hits = await self.store.count_hit(storm, alert.uuid, RATE_WINDOW)
        if hits <= self.threshold:
            await self.store.end_group(storm, None)  # the rate fell back: the storm is over
            return None
        group_id = await self._claim(storm, STORM_KEY_TTL)
        await self.store.open_group(GroupMeta(
            group_id=group_id, kind="storm", rule_id=rule_id,
            rule_name=_rule_name(alert, decision), channel=channel, fields=tuple(decision.fields),
        ), self.ttl)
        return group_id

    async def open_duplicates(self, head: str, first: MessageRef, alert: Alert,
                              decision: Decision) -> None:
        """The duplicates group of ``head`` (its id is ``head``'s uuid), whose header is
        ``head``'s own message ``first``: opened once, idempotent."""
        await self.store.open_group(GroupMeta(
            group_id=head, kind="dup", rule_id=decision.rule_id or "",
            rule_name=_rule_name(alert, decision), channel=first.channel,
            fields=tuple(decision.fields),
        ), self.ttl)
        await self.store.update_group(head, GroupUpdate(header_ts=first.ts), self.ttl)

    async def _claim(self, key: str, window: int) -> str:
        return await self.store.claim_group(key, GROUP_PREFIX + secrets.token_hex(12), window)

    async def join(self, group_id: str, alert: Alert, decision: Decision) -> int:
        """``alert`` joins ``group_id`` (once); its position in the group."""
        seen = thaw(alert.get_field("@timestamp"))
        tally = {
            name: str(value) for name, value in thaw(decision.fields).items()
            if value not in (None, "", [], {}) and not isinstance(value, (dict, list))
        }
        join = GroupJoin(member_uuid=alert.uuid, seen_at=str(seen or ""),
                         auto_closed=decision.auto_close, tally=tally)
        return await self.store.join_group(group_id, join, self.ttl)


def _rule_name(alert: Alert, decision: Decision) -> str:
    return alert.rule_name or decision.rule_id or "unmatched alerts"


async def recount(store: Store, group_id: str, ttl: int) -> None:
    """Count the group's members by line status from their records and ask for a redraw of
    its header and lines (after status changes; joins count themselves). Nothing when the
    group is gone or never existed (a first alert without duplicates)."""
    if await store.load_group(group_id) is None:
        return
    members = await store.group_members(group_id)
    counts: dict[str, int] = {}
    for start in range(0, len(members), RECOUNT_CHUNK):
        chunk = members[start:start + RECOUNT_CHUNK]
        records = await asyncio.gather(*(store.load_record(m) for m in chunk))
        for record in records:
            status = "open" if record is None else line_status(record.status, record.auto_close)
            counts[status] = counts.get(status, 0) + 1
    await store.update_group(group_id, GroupUpdate(statuses=counts), ttl)
