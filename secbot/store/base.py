"""The state store contract (DESIGN.md §2): what SecBot remembers between alerts and restarts.

Production uses Redis (:mod:`secbot.store.redis`); :mod:`secbot.store.memory` is the same
contract in-process (demo fallback when no Redis answers, and unit tests of other layers).
Every implementation passes ``tests/test_store_contract.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from secbot.domain.errors import SecBotError


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
class MessageRef:
    """Where an alert's Slack message lives."""

    channel: str
    ts: str


@dataclass(frozen=True)
class AuditEntry:
    """One status change, human or automatic: who, when, what, why."""

    alert_uuid: str
    actor: str  # Slack user id, email, or "secbot" for automatic changes
    action: str  # the new status: closed | acknowledged | open | in-progress
    reason: str
    at: datetime
    rule_id: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


class Store(Protocol):
    """Persistent state. All methods are coroutines; all may raise ``StoreUnavailable``."""

    async def save_alert(self, uuid: str, fields: Mapping[str, Any], ttl: int) -> None:
        """Cache an alert's fields (JSON-able) for thread commands, for ``ttl`` seconds."""

    async def load_alert(self, uuid: str) -> dict[str, Any] | None:
        """The cached fields, or None when unknown or expired."""

    async def link_message(self, uuid: str, ref: MessageRef, ttl: int) -> None:
        """Remember both directions: alert uuid → message, message (channel, ts) → uuid."""

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
