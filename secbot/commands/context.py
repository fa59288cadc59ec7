"""What a command knows about where it was asked, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass

from secbot.domain.record import AlertRecord
from secbot.stats.message import ChartFile


@dataclass(frozen=True)
class CommandContext:
    """Who asked where; inside an alert's thread, which alert and (when still remembered)
    its record. ``alert`` is None outside a thread, after the record expired, or for a
    record an older SecBot wrote."""

    user: str
    channel: str
    ts: str
    thread_ts: str | None
    alert_uuid: str | None = None
    alert: AlertRecord | None = None

    def alert_field(self, *names: str) -> str | None:
        """The first of the thread's alert's ``names`` that has a value, as text."""
        return self.alert.field_text(*names) if self.alert else None


@dataclass(frozen=True)
class Reply:
    text: str
    ephemeral: bool = False
    #: A file shared in the thread after the text (``@SecBot stats``: its chart).
    upload: ChartFile | None = None
