"""What SecBot remembers about one decided alert: the typed record thread commands, reactions
and status edits read, and the only shape it is stored in.

The record is stored field by field (a Redis hash, one JSON value per field), so that two
writers touching different fields never lose each other's change: a reaction setting
``status`` and the publisher attaching ``message_ref`` are two independent field writes, not
two read-modify-write cycles of one blob. :meth:`AlertRecord.to_fields` /
:meth:`AlertRecord.from_fields` and :meth:`RecordUpdate.to_fields` are the only encoding, shared
by every store.

Records written by an older SecBot (a single JSON string, no ``v`` field) are not read: they
count as missing, and callers fall back to the Slack message metadata.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from secbot.domain.escalation import Escalated
from secbot.domain.status import STATUSES, Status

__all__ = ["RECORD_VERSION", "AlertRecord", "MessageRef", "RecordUpdate", "StatusIntent"]

#: Written into every record; a stored record without it (or with another value) is ignored.
RECORD_VERSION = "2"

#: Fields that are not in the record's hash: the store keeps them next to it and fills them in.
_BESIDE_THE_HASH = frozenset({"duplicates"})


@dataclass(frozen=True)
class MessageRef:
    """Where an alert's Slack message lives."""

    channel: str
    ts: str


@dataclass(frozen=True)
class AlertRecord:
    """One decided alert, as remembered for ``ttl`` after the decision.

    ``fields`` are the rule's included fields (JSON values); ``message`` is the Block Kit
    message as last shown in Slack (status edits rewrite its status line); ``group_id`` is
    reserved for alert groups (issue 11).

    ``duplicates`` are the uuids threaded under this alert's message as "new context", in
    arrival order: the message stands for this alert *and* them (DESIGN.md §10 "Groups"). They
    live beside the hash (an append-only set, so concurrent duplicates never lose one another)
    and are filled in by :meth:`secbot.store.records.AlertRecords.load`.
    """

    uuid: str
    id: str
    index: str
    rule_id: str | None
    rule_name: str | None
    severity: str
    timestamp: Any  # any JSON value: Kibana writes a string, hostile alerts an object
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    channel: str | None = None
    auto_close: bool = False
    close_reason: str | None = None
    duplicate_of: str | None = None
    status: Status = "open"
    message_ref: MessageRef | None = None
    message: Mapping[str, Any] | None = None
    group_id: str | None = None
    duplicates: tuple[str, ...] = ()
    escalation: Escalated | None = None  # the escalate entry that applied (issue 13)
    shadow: bool = False  # the rule would have auto-closed it but was held (issue 15)

    @property
    def group(self) -> tuple[str, ...]:
        """Every alert this record's message stands for: itself first, then its duplicates."""
        return (self.uuid, *(d for d in self.duplicates if d != self.uuid))

    def field_text(self, *names: str) -> str | None:
        """The first of ``names`` with a non-empty value, as text (a list gives its first item)."""
        for name in names:
            value = self.fields.get(name)
            if isinstance(value, list):
                value = value[0] if value else None
            if value not in (None, ""):
                return str(value)
        return None

    def to_fields(self) -> dict[str, str]:
        """The stored form: one JSON value per field, plus the format version."""
        out = {name: _encode(getattr(self, name)) for name in _hash_fields(type(self))}
        out["v"] = RECORD_VERSION
        return out

    @classmethod
    def from_fields(cls, stored: Mapping[str, str]) -> AlertRecord | None:
        """The record, or None when ``stored`` is not a complete record of this version."""
        if stored.get("v") != RECORD_VERSION:
            return None
        try:
            values = {
                f.name: json.loads(stored[f.name])
                for f in dataclasses.fields(cls)
                if f.name in stored and f.name not in _BESIDE_THE_HASH
            }
            record = cls(**values)
        except (TypeError, ValueError, KeyError):
            return None  # missing identity or a corrupt value: unusable, treated as missing
        return _typed(record)


@dataclass(frozen=True)
class RecordUpdate:
    """A change to some fields of a stored record; fields left ``None`` are not touched."""

    status: Status | None = None
    message_ref: MessageRef | None = None
    message: Mapping[str, Any] | None = None
    channel: str | None = None
    group_id: str | None = None
    auto_close: bool | None = None  # False once a decided auto-close could not be applied

    def to_fields(self) -> dict[str, str]:
        values = ((name, getattr(self, name)) for name in _hash_fields(type(self)))
        return {name: _encode(value) for name, value in values if value is not None}


@dataclass(frozen=True)
class StatusIntent:
    """A status change a person asked for, written *before* the SIEM is called (the saga's
    first step) and cleared once its audit entry landed.

    If SecBot dies, or the audit write fails, after the SIEM changed, the intent is still
    there: the next attempt (a redelivered event, the person reacting again) finds the alert
    already in ``status`` and completes the change from the intent — audit entry (written
    once per ``change_id``), message edit — instead of treating it as a quiet no-op.
    """

    change_id: str
    uuid: str
    status: Status
    reason: str | None
    actor: str  # the credit: email when known, else the Slack user id
    slack_user: str
    at: str  # ISO 8601, UTC: when the person asked
    rule_id: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StatusIntent | None:
        """The intent, or None when ``text`` is not one this code wrote."""
        try:
            values = json.loads(text)
            intent = cls(**values) if isinstance(values, dict) else None
        except (TypeError, ValueError):
            return None
        if intent is None or intent.status not in STATUSES or not intent.change_id:
            return None
        return intent


_HASH_FIELDS: dict[type, tuple[str, ...]] = {}


def _hash_fields(cls: type) -> tuple[str, ...]:
    # dataclasses.fields() rebuilds its tuple on every call; a record is encoded per alert.
    names = _HASH_FIELDS.get(cls)
    if names is None:
        fields = dataclasses.fields(cls)
        names = _HASH_FIELDS[cls] = tuple(f.name for f in fields if f.name not in _BESIDE_THE_HASH)
    return names


def _encode(value: Any) -> str:
    """One field as compact JSON, exactly ``json.dumps(value, separators=(",", ":"))`` with
    frozen mappings thawed; the common scalars skip the encoder."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is str:
        return _encode_str(value)
    if isinstance(value, MessageRef):
        value = {"channel": value.channel, "ts": value.ts}
    elif isinstance(value, Escalated):
        value = value.to_json()
    return _ENCODER.encode(value)


def _plain(value: Any) -> Any:
    # Frozen alert data (MappingProxyType, tuples) is JSON once thawed.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


# Built once: json.dumps with any option builds a new JSONEncoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_plain)
_encode_str: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _typed(record: AlertRecord) -> AlertRecord | None:
    """Check the decoded JSON has the declared types; rebuild the nested message reference."""
    ref = record.message_ref
    if isinstance(ref, Mapping):
        ref = MessageRef(channel=str(ref.get("channel", "")), ts=str(ref.get("ts", "")))
    elif ref is not None:
        return None
    escalation = record.escalation
    if escalation is not None and not isinstance(escalation, Escalated):
        # A corrupt escalation value loses only itself: the record still serves the thread.
        escalation = Escalated.from_json(escalation)
    ok = (
        isinstance(record.uuid, str)
        and isinstance(record.id, str)
        and isinstance(record.fields, Mapping)
        and record.status in STATUSES
        and (record.message is None or isinstance(record.message, Mapping))
    )
    return replace(record, message_ref=ref, escalation=escalation) if ok else None
