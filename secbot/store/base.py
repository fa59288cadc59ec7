"""The state store contract (DESIGN.md §2): what SecBot remembers between alerts and restarts.

Production uses Redis (:mod:`secbot.store.redis`); :mod:`secbot.store.memory` is the same
contract in-process (demo fallback when no Redis answers, and unit tests of other layers).
Every implementation passes ``tests/test_store_contract.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from secbot.domain.errors import SecBotError
from secbot.domain.group import GroupJoin, GroupMeta, GroupState, GroupUpdate
from secbot.domain.record import AlertRecord, RecordUpdate, StatusIntent
from secbot.domain.record import MessageRef as MessageRef  # re-exported: callers import it here
from secbot.domain.status import AuditAction


@dataclass(frozen=True)
class DedupResult:
    """Outcome of claiming a dedup key.

    ``first_uuid`` is the alert that opened the window (equal to the caller's uuid when the
    caller is first); ``count`` is how many alerts (including the first) hit the key so far.
    """

    first_uuid: str
    count: int

    @property
    def is_duplicate(self) -> bool:
        return self.count > 1


@dataclass(frozen=True)
class AuditEntry:
    """One status change, human or automatic: who, when, what, why."""

    alert_uuid: str
    actor: str  # Slack user id, email, or "secbot" for automatic changes
    action: AuditAction  # the new status
    reason: str
    at: datetime
    rule_id: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


class Store(Protocol):
    """Persistent state. All methods are coroutines; all may raise ``StoreUnavailable``."""

    async def save_record(self, record: AlertRecord, ttl: int) -> None:
        """Store ``record`` for ``ttl`` seconds, replacing any earlier record of its uuid.

        Written through :class:`secbot.store.records.AlertRecords`, not called directly.
        """

    async def update_record(self, uuid: str, update: RecordUpdate, ttl: int) -> bool:
        """Set only the fields ``update`` names, atomically, if the record exists (and then
        renew its TTL to ``ttl``). Other fields are untouched, so concurrent updates of
        different fields never lose one another. False when there is no record (expired, or
        written by an older version): an update never creates a partial record."""

    async def load_record(self, uuid: str) -> AlertRecord | None:
        """The record, or None when unknown, expired or not of the current format."""

    async def link_message(self, uuid: str, ref: MessageRef, ttl: int) -> None:
        """Remember both directions: alert uuid → message, message (channel, ts) → uuid."""

    async def link_member(self, group_uuid: str, member_uuid: str, ref: MessageRef, ttl: int
                          ) -> None:
        """``member_uuid`` is shown on ``group_uuid``'s message ``ref`` (a duplicate threaded
        under its first alert, an alert folded into a digest), atomically: the member joins
        the group's member list (once, in arrival order, renewing its TTL) and points at
        ``ref``. The message keeps mapping to ``group_uuid``: a member never takes it over."""

    async def group_members(self, group_uuid: str, start: int = 0, stop: int = -1) -> list[str]:
        """The members :meth:`link_member` or :meth:`join_group` added to ``group_uuid``,
        oldest first; ``start``/``stop`` (inclusive, ``-1`` = the last) select positions."""

    # -- alert groups (DESIGN.md §10 "Groups"; secbot.domain.group) ---------------------------

    async def claim_group(self, key: str, group_id: str, window: int) -> str:
        """The group a grouping key (a storm's rule and channel, a ``group.by`` value set)
        leads to now: ``group_id`` when the caller opened it, else the one already open. The
        key is forgotten ``window`` seconds after it was opened (never extended)."""

    async def group_for_key(self, key: str) -> str | None:
        """The group a grouping key leads to now, if any (read only: opens nothing)."""

    async def end_group(self, key: str, group_id: str | None) -> None:
        """The key stops leading to ``group_id`` (a storm is over), if it still does; with
        None, to whatever group it leads to."""

    async def open_group(self, meta: GroupMeta, ttl: int) -> None:
        """Create the group's state with ``meta`` unless it exists (then nothing changes)."""

    async def join_group(self, group_id: str, join: GroupJoin, ttl: int) -> int:
        """Add a member, atomically and once: count, first/last seen, tallies and status
        count change only the first time a uuid joins; the group is marked pending (members
        to list). Returns the member's position (0-based, join order)."""

    async def load_group(self, group_id: str) -> GroupState | None: ...

    async def group_of(self, member_uuid: str) -> str | None:
        """The group (storm or ``group.by``) an alert joined, if any."""

    async def update_group(self, group_id: str, update: GroupUpdate, ttl: int) -> None:
        """Apply ``update``; new ``statuses`` also ask for a redraw (the group is pending)."""

    async def redrawn(self, group_id: str, version: int) -> None:
        """The redraw asked for as ``version`` is done (a newer request is kept)."""

    async def pending_groups(self) -> list[str]:
        """Groups with members not listed yet or a redraw asked for: any replica may do it."""

    async def settle_group(self, group_id: str) -> bool:
        """Unmark the group as pending if every member is listed and no redraw is asked for,
        atomically (a member joining meanwhile keeps it pending). True when unmarked."""

    async def count_hit(self, key: str, member: str, window: float) -> int:
        """Count ``member`` (once, however often it is counted) in a sliding ``window`` of
        seconds; the number of distinct members counted within it."""

    async def message_for_alert(self, uuid: str) -> MessageRef | None: ...

    async def alert_for_message(self, channel: str, ts: str) -> str | None: ...

    async def claim_dedup(self, key: str, uuid: str, window: int) -> DedupResult:
        """Atomically claim ``key`` for ``window`` seconds, or count one more hit on it."""

    async def claim_post(self, uuid: str, ttl: int) -> bool:
        """True if this caller now owns posting ``uuid`` (first claim), False if already claimed."""

    async def release_post(self, uuid: str) -> None:
        """Give up a claim that was not completed (the post failed), so a retry may post."""

    async def mark_posted(self, uuid: str, ttl: int) -> None: ...

    async def is_posted(self, uuid: str) -> bool: ...

    async def get_checkpoint(self, name: str) -> str | None: ...

    async def set_checkpoint(self, name: str, value: str) -> None: ...

    async def append_audit(self, entry: AuditEntry, *, once_key: str | None = None) -> str | None:
        """Append to the audit stream; returns the entry id.

        With ``once_key``, the entry is written only if no entry was written under that key
        before (atomically), and None is returned otherwise: a redelivered alert does not
        audit the same automatic action twice.
        """

    async def save_intent(self, intent: StatusIntent, ttl: int) -> None:
        """Remember a status change about to be made (replacing an older intent of its alert)."""

    async def load_intent(self, uuid: str) -> StatusIntent | None:
        """The pending status change of ``uuid``, if one was saved and not cleared."""

    async def clear_intent(self, uuid: str, change_id: str) -> None:
        """Forget ``uuid``'s intent if it is still the one of ``change_id`` (atomically: a
        newer attempt's intent is never cleared by an older one)."""

    async def read_audit(self, alert_uuid: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Entries oldest first, optionally only those of one alert."""

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``owner`` for ``ttl`` seconds, or renew it if ``owner``
        holds it already. False while another owner holds it (DESIGN.md §9: one poller)."""

    async def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up early (clean shutdown) if ``owner`` holds it."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def positive_ttl(name: str, seconds: int) -> int:
    """``seconds`` if at least 1. Redis rejects ``EX 0`` with a server error; every
    implementation fails the same way, earlier: a zero TTL is a caller bug, not "forever"."""
    if seconds < 1:
        raise ValueError(f"{name} must be at least 1 second, got {seconds}")
    return seconds


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already (``datetime.utcnow()`` style)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class StoreUnavailable(SecBotError):
    """The store cannot be reached; callers decide whether to retry or degrade."""
