"""The one writer of alert records: intent-named, typed operations over the :class:`Store`.

Who writes what (each alert's record is saved once, then only single fields change):

* the pipeline, once per decided alert: :meth:`AlertRecords.save_decided`;
* the publisher, once the message exists: :meth:`AlertRecords.attach_message`, and
  :meth:`AlertRecords.set_message` when it corrects a failed auto-close;
* status changes from Slack: :meth:`AlertRecords.set_status`.

Field-level updates are atomic in the store, so a reaction and a post (or two replicas) never
lose each other's change. An update of a record that is gone is a no-op: the message metadata
in Slack still leads reactions and thread commands back to the alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secbot.domain.record import AlertRecord, MessageRef, RecordUpdate
from secbot.domain.status import Status
from secbot.store.base import Store

__all__ = ["DEFAULT_RECORD_TTL", "AlertRecords"]

DEFAULT_RECORD_TTL = 30 * 86400


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

    async def load(self, uuid: str) -> AlertRecord | None:
        """The record, or None when unknown, expired or written by an older SecBot."""
        return await self.store.load_record(uuid)
