"""Which ``escalate`` entry applied to an alert (DESIGN.md §5, issue 13): a plain value the
pipeline decides, the message shows, the alert record keeps and the destinations read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: Why a destination is named: the entry's ``page``, its ``ticket``, or one of its ``notify``.
DestinationKind = Literal["page", "ticket", "notify"]
_KINDS = ("page", "ticket", "notify")


@dataclass(frozen=True)
class Escalated:
    """The first ``escalate`` entry whose ``if`` held (or one run by hand / by ``ask``).

    ``entry_index`` is its position in the rule (-1: not from an entry, e.g. ``@SecBot page``);
    ``severity`` / ``channel`` override the rule's (None: keep); ``destinations`` are
    ``(kind, destination name)`` pairs in the entry's order, each name once; ``why`` says
    which entry and what held, e.g. ``escalate[0]: enrichments["hr"]["terminated"] == True``.
    """

    entry_index: int
    severity: str | None
    channel: str | None
    destinations: tuple[tuple[DestinationKind, str], ...]
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_index": self.entry_index,
            "severity": self.severity,
            "channel": self.channel,
            "destinations": [[kind, name] for kind, name in self.destinations],
            "why": self.why,
        }

    @classmethod
    def from_json(cls, value: Any) -> Escalated | None:
        """The value :meth:`to_json` wrote, or None when ``value`` is not one."""
        if not isinstance(value, Mapping):
            return None
        pairs = value.get("destinations")
        index, why = value.get("entry_index"), value.get("why")
        severity, channel = value.get("severity"), value.get("channel")
        if not (isinstance(index, int) and isinstance(why, str) and isinstance(pairs, list)
                and all(isinstance(v, (str, type(None))) for v in (severity, channel))):
            return None
        destinations: list[tuple[DestinationKind, str]] = []
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and pair[0] in _KINDS
                    and isinstance(pair[1], str)):
                return None
            destinations.append((pair[0], pair[1]))
        return cls(index, severity, channel, tuple(destinations), why)
