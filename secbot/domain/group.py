"""Alert groups (DESIGN.md §10 "Groups"): one top-level Slack message, its *header*, standing
for many alerts, every one of them listed once in the header's thread, in *batches*.

Kinds: ``storm`` (a rule sending more than ``SECBOT_GROUP_THRESHOLD`` alerts a minute into a
channel), ``by`` (a rule's ``group.by`` values inside its window) and ``dup`` (the duplicates of
a ``dedup.key`` inside its window). A ``dup`` group's id is its first alert's uuid and its
header is that alert's own message (a header part is added to it); the duplicates are its
members, listed in that message's thread like any group's.

The group's state lives in the store (Redis in production), never in one process's memory, so a
restarted or standby replica continues the same group: :class:`GroupState` is that state, read
back whole; :class:`GroupJoin` is what one alert adds to it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BATCH_PREFIX",
    "GROUP_PREFIX",
    "LINE_PREFIX",
    "Batch",
    "GroupJoin",
    "GroupKey",
    "GroupKind",
    "GroupMeta",
    "GroupState",
    "GroupUpdate",
    "StatusCounts",
    "line_status",
    "storm_key",
]

GroupKind = Literal["storm", "by", "dup"]

#: What a group's header message maps to in the store (``group:<hex>``): not an alert uuid.
GROUP_PREFIX = "group:"
#: A batch message listing exactly one alert maps to ``line:<uuid>`` (a reaction changes it).
LINE_PREFIX = "line:"
#: A batch message listing several alerts maps to ``batch:<group id>:<start>`` (refused).
BATCH_PREFIX = "batch:"

#: How a member line and the header name a status; ``auto-closed`` is SecBot's own close.
LineStatus = Literal["open", "acknowledged", "in-progress", "closed", "auto-closed"]


def line_status(status: str, auto_closed: bool) -> LineStatus:
    """The status a member line shows: an alert SecBot closed itself says so."""
    if status == "open" and auto_closed:
        return "auto-closed"
    if status in ("acknowledged", "in-progress", "closed"):
        return status  # type: ignore[return-value]  # narrowed by the membership test
    return "open"


@dataclass(frozen=True)
class GroupMeta:
    """What never changes once a group is opened."""

    group_id: str
    kind: GroupKind
    rule_id: str
    rule_name: str
    channel: str
    fields: tuple[str, ...] = ()  # the rule's ``fields``: shown per line, top values in the header
    by: tuple[str, ...] = ()  # ``group.by`` fields and their values (kind ``by``)
    by_values: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "group_id": self.group_id, "kind": self.kind, "rule_id": self.rule_id,
                "rule_name": self.rule_name, "channel": self.channel, "fields": list(self.fields),
                "by": list(self.by), "by_values": list(self.by_values),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> GroupMeta | None:
        try:
            raw = json.loads(text)
            kind = raw["kind"]
            if kind not in ("storm", "by", "dup"):
                return None
            return cls(
                group_id=str(raw["group_id"]), kind=kind, rule_id=str(raw["rule_id"]),
                rule_name=str(raw["rule_name"]), channel=str(raw["channel"]),
                fields=tuple(str(f) for f in raw.get("fields", [])),
                by=tuple(str(f) for f in raw.get("by", [])),
                by_values=tuple(str(v) for v in raw.get("by_values", [])),
            )
        except (TypeError, ValueError, KeyError):
            return None


@dataclass(frozen=True)
class GroupJoin:
    """One alert joining a group: its time and the values it adds to the header's tallies."""

    member_uuid: str
    seen_at: str  # ISO 8601 or the alert's own timestamp text
    auto_closed: bool = False
    tally: Mapping[str, str] = field(default_factory=dict)  # rule field → value as text


@dataclass(frozen=True)
class Batch:
    """One thread message listing members ``start`` … ``end - 1`` (positions in the group)."""

    start: int
    end: int
    ts: str

    def to_json(self) -> str:
        return json.dumps({"start": self.start, "end": self.end, "ts": self.ts})

    @classmethod
    def from_json(cls, text: str) -> Batch | None:
        try:
            raw = json.loads(text)
            return cls(int(raw["start"]), int(raw["end"]), str(raw["ts"]))
        except (TypeError, ValueError, KeyError):
            return None


@dataclass(frozen=True)
class StatusCounts:
    """How many members are in each status, as the header shows them."""

    open: int = 0
    acknowledged: int = 0
    closed: int = 0
    auto_closed: int = 0

    @classmethod
    def of(cls, statuses: Mapping[str, int]) -> StatusCounts:
        return cls(
            open=statuses.get("open", 0) + statuses.get("in-progress", 0),
            acknowledged=statuses.get("acknowledged", 0),
            closed=statuses.get("closed", 0),
            auto_closed=statuses.get("auto-closed", 0),
        )


@dataclass(frozen=True)
class GroupState:
    """A group as the store holds it now.

    ``count`` members joined; ``shown`` of them (the first ``shown``, in join order) are
    listed in batches already; ``inflight`` is a batch being posted (a crash after posting it
    and before recording it is resolved from the thread's metadata, never by posting twice).
    ``tallies`` are ``{field: {value: count}}``; ``statuses`` counts members by line status.
    """

    meta: GroupMeta
    count: int = 0
    shown: int = 0
    header_ts: str | None = None
    first_seen: str = ""
    last_seen: str = ""
    inflight: tuple[int, int] | None = None
    batches: tuple[Batch, ...] = ()
    tallies: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    statuses: Mapping[str, int] = field(default_factory=dict)
    closed_note: str = ""
    redraw: int = 0  # bumped when statuses changed: the header and lines are drawn again

    @property
    def counts(self) -> StatusCounts:
        return StatusCounts.of(self.statuses)

    def batch_of(self, position: int) -> Batch | None:
        """The batch listing the member at ``position`` (None while not shown yet)."""
        for batch in self.batches:
            if batch.start <= position < batch.end:
                return batch
        return None


@dataclass(frozen=True)
class GroupUpdate:
    """A change to a stored group; fields left ``None`` are not touched.

    ``inflight`` ``(start, end)`` marks a batch about to be posted, ``(0, 0)`` clears it;
    ``batch`` records a posted batch (and clears ``inflight``, advances ``shown`` to its end);
    ``statuses`` replaces the status counts (recounted after a status change).
    """

    header_ts: str | None = None
    inflight: tuple[int, int] | None = None
    batch: Batch | None = None
    statuses: Mapping[str, int] | None = None
    closed_note: str | None = None


def storm_key(rule_id: str, channel: str) -> str:
    """The grouping key of a rule's storm in a channel (one storm group at a time)."""
    return f"storm:{rule_id}:{channel}"


@dataclass(frozen=True)
class GroupKey:
    """A ``group.by`` grouping the pipeline found for one alert: the key (rule id + a hash of
    the values), the window in seconds, and the fields and values (shown on the header)."""

    key: str
    window: int
    by: tuple[str, ...]
    values: tuple[str, ...]
