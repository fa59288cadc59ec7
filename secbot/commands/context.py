"""What a command knows about where it was asked, and what it answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CommandContext:
    user: str
    channel: str
    ts: str
    thread_ts: str | None
    alert_uuid: str | None = None
    alert: Mapping[str, Any] = field(default_factory=dict)

    def alert_field(self, *names: str) -> str | None:
        fields = self.alert.get("fields") or {}
        for name in names:
            value = fields.get(name)
            if isinstance(value, list):
                value = value[0] if value else None
            if value not in (None, ""):
                return str(value)
        return None


@dataclass(frozen=True)
class Reply:
    text: str
    ephemeral: bool = False
