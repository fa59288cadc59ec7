"""The one writer of alert records: intent-named, typed operations over the :class:`Store`.

Who writes what (each alert's record is saved once, then only single fields change):

* the pipeline, once per decided alert: :meth:`AlertRecords.save_decided`;
* the publisher, once the message exists: :meth:`AlertRecords.attach_message`, and
  :meth:`AlertRecords.set_message` when it corrects a failed auto-close;
* the publisher, when an alert is shown on another alert's message (a duplicate threaded
  under its first alert): :meth:`AlertRecords.join_group`;
* status changes from Slack: :meth:`AlertRecords.begin_change` (the saga's intent, before the
  SIEM is called), :meth:`AlertRecords.set_status`, :meth:`AlertRecords.end_change`.

Field-level updates are atomic in the store, so a reaction and a post (or two replicas) never
lose each other's change. An update of a record that is gone is a no-op: the message metadata
in Slack still leads reactions and thread commands back to the alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from secbot.domain.group import BATCH_PREFIX, GROUP_PREFIX, LINE_PREFIX
from secbot.domain.record import AlertRecord, MessageRef, RecordUpdate, StatusIntent
from secbot.domain.status import Status
from secbot.store.base import Store

__all__ = ["DEFAULT_RECORD_TTL", "INTENT_TTL", "AlertRecords"]

DEFAULT_RECORD_TTL = 30 * 86400
#: How long an unfinished status change waits for a retry to complete it. Slack redelivers
#: within minutes; a person reacting again may take longer.
INTENT_TTL = 7 * 86400


class AlertRecords:
    """Alert records in ``store``, kept ``ttl`` seconds after their last write."""

    def __init__(self, store: Store, ttl: int = DEFAULT_RECORD_TTL) -> None:
        self.store = store
        self.ttl = ttl

    async def save_decided(self, record: AlertRecord) -> None:
        """The pipeline's decision for a new (or redelivered) alert; replaces any earlier one."""
        await self.store.save_record(record, self.ttl)

    async def attach_message(
        self, uuid: str, ref: MessageRef, message: Mapping[str, Any] | None
    ) -> bool:
        """Where the alert was posted, and the message as posted (for later status edits)."""
        update = RecordUpdate(message_ref=ref, channel=ref.channel, message=message)
        return await self.store.update_record(uuid, update, self.ttl)

    async def set_message(self, uuid: str, message: Mapping[str, Any]) -> bool:
        """The message as now shown (its status line was rewritten)."""
        return await self.store.update_record(uuid, RecordUpdate(message=message), self.ttl)

    async def set_status(
        self, uuid: str, status: Status, message: Mapping[str, Any] | None = None
    ) -> bool:
        """The alert's new status, and the message edited to show it when there is one."""
        update = RecordUpdate(status=status, message=message)
        return await self.store.update_record(uuid, update, self.ttl)

    async def join_group(self, first_uuid: str, member_uuid: str, ref: MessageRef) -> None:
        """``member_uuid`` is shown on ``first_uuid``'s message ``ref`` (appended atomically,
        once); the message keeps leading to ``first_uuid``, never to the member."""
        await self.store.link_member(first_uuid, member_uuid, ref, self.ttl)

    async def load(self, uuid: str) -> AlertRecord | None:
        """The record with its group's duplicates, or None when unknown, expired or written
        by an older SecBot."""
        record = await self.store.load_record(uuid)
        if record is None:
            return None
        members = await self.store.group_members(uuid)
        return replace(record, duplicates=tuple(members)) if members else record

    async def members_of_thread(self, channel: str, thread_ts: str) -> list[str]:
        """The alert uuids the thread of message ``(channel, thread_ts)`` stands for, in join
        order, for commands typed in that thread (``@SecBot close <uuid prefix>``):

        * a group header (storm or ``group.by``, :mod:`secbot.domain.group`): every member;
        * an alert's own message: that alert, then the duplicates threaded under it;
        * a batch line in a group's thread: the members of its group;
        * anything else (not SecBot's, or forgotten by the store): ``[]``.

        The list is read from the store each call (a group keeps growing); uuids are full.
        """
        owner = await self.store.alert_for_message(channel, thread_ts)
        if owner is None:
            return []
        if owner.startswith(LINE_PREFIX):
            group = await self.store.group_of(owner.removeprefix(LINE_PREFIX))
            owner = group or owner.removeprefix(LINE_PREFIX)
        elif owner.startswith(BATCH_PREFIX):
            owner = owner.removeprefix(BATCH_PREFIX).rpartition(":")[0]
        elif owner.startswith("context:"):
            owner = owner.removeprefix("context:")
        members = await self.store.group_members(owner)
        if owner.startswith(GROUP_PREFIX):
            return members
        return [owner, *(m for m in members if m != owner)]

    async def begin_change(self, intent: StatusIntent) -> None:
        """Step one of a status change: what is about to be changed, by whom and why."""
        await self.store.save_intent(intent, INTENT_TTL)

    async def pending_change(self, uuid: str) -> StatusIntent | None:
        """A change begun and not finished (the SIEM may or may not have applied it)."""
        return await self.store.load_intent(uuid)

    async def end_change(self, intent: StatusIntent) -> None:
        """The change is audited (or known not to have happened): nothing left to finish."""
        await self.store.clear_intent(intent.uuid, intent.change_id)
