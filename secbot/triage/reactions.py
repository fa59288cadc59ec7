"""Emoji triage: ``reaction_added`` on an alert message → SIEM status change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secbot.domain.group import BATCH_PREFIX, LINE_PREFIX
from secbot.domain.status import CLOSING_REASONS, DEFAULT_CLOSE_REASON, STATUSES, Status
from secbot.store.base import Store
from secbot.triage.status_change import Outcome, OutcomeKind, StatusChanger

#: What a "new context" reply (several duplicates in one line) maps to in the store.
CONTEXT_PREFIX = "context:"


#: A batch line lists several alerts of a group: acting on "them" from one line would change
#: alerts by accident, so the person is pointed at the header or at one alert.
BATCH_REFUSAL = Outcome(
    OutcomeKind.REFUSED,
    "This line lists several alerts of a group, so SecBot did not change any of them from "
    "here. React on the group's message above to change every alert of the group, or type "
    "`@SecBot close <uuid prefix>` in this thread to change one.",
)


@dataclass(frozen=True)
class ReactionAction:
    status: Status
    reason: str | None = None


#: DESIGN.md §10 default map; configurable with SECBOT_REACTIONS.
DEFAULT_REACTIONS: dict[str, ReactionAction] = {
    "white_check_mark": ReactionAction("closed", DEFAULT_CLOSE_REASON),
    "x": ReactionAction("closed", "false_positive"),
    "eyes": ReactionAction("acknowledged"),
    "arrows_counterclockwise": ReactionAction("open"),
}


def parse_reaction_map(spec: Mapping[str, str]) -> dict[str, ReactionAction]:
    """``{"emoji": "closed:false_positive", "eyes": "acknowledged"}`` → actions; ValueError names
    the bad entry."""
    out = {}
    for emoji, target in spec.items():
        status, _, reason = target.partition(":")
        if status not in STATUSES:
            raise ValueError(f"reaction {emoji!r}: unknown status {status!r}")
        if reason and (status != "closed" or reason not in CLOSING_REASONS):
            raise ValueError(f"reaction {emoji!r}: reason {reason!r} is not a closing reason")
        out[normalize(emoji)] = ReactionAction(status, reason or None)
    return out


def normalize(reaction: str) -> str:
    """``white_check_mark::skin-tone-2`` → ``white_check_mark``."""
    return reaction.split("::", 1)[0].strip(":")


class ReactionTriage:
    """Handles one ``reaction_added`` event. Unknown emoji or messages are ignored quietly."""

    def __init__(
        self,
        changer: StatusChanger,
        store: Store,
        reactions: Mapping[str, ReactionAction] = DEFAULT_REACTIONS,
        bot_user_id: str | None = None,
    ) -> None:
        self.changer = changer
        self.store = store
        self.reactions = dict(reactions)
        self.bot_user_id = bot_user_id

    async def handle(self, event: Mapping[str, Any]) -> Outcome | None:
        user = str(event.get("user") or "")
        item = event.get("item") or {}
        if not user or user == self.bot_user_id or item.get("type") != "message":
            return None
        action = self.reactions.get(normalize(str(event.get("reaction") or "")))
        if action is None:
            return None
        uuid = await self.store.alert_for_message(str(item.get("channel")), str(item.get("ts")))
        if uuid is None:
            return None
        if uuid.startswith(LINE_PREFIX):  # a thread line showing exactly one alert
            uuid = uuid.removeprefix(LINE_PREFIX)
        elif uuid.startswith(BATCH_PREFIX):
            return BATCH_REFUSAL
        if uuid.startswith(CONTEXT_PREFIX):
            return Outcome(
                OutcomeKind.REFUSED,
                "This reply stands for several duplicate alerts, so SecBot did not change any "
                "of them from here. React on the alert's message above it: that changes the "
                "alert and all its duplicates.",
            )
        return await self.changer.change(uuid, action.status, action.reason, user)
