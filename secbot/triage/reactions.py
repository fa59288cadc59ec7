"""Emoji triage: ``reaction_added`` on an alert message → SIEM status change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secbot.domain.status import CLOSING_REASONS, DEFAULT_CLOSE_REASON, STATUSES, Status
from secbot.publish.flood import DIGEST_PREFIX
from secbot.store.base import Store
from secbot.triage.status_change import Outcome, OutcomeKind, StatusChanger

#: What a "new context" reply (several duplicates in one line) maps to in the store.
CONTEXT_PREFIX = "context:"


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
        if uuid.startswith(DIGEST_PREFIX):
            return await self._digest_refusal(uuid)
        if uuid.startswith(CONTEXT_PREFIX):
            return Outcome(
                OutcomeKind.REFUSED,
                "This reply stands for several duplicate alerts, so SecBot did not change any "
                "of them from here. React on the alert's message above it: that changes the "
                "alert and all its duplicates.",
            )
        return await self.changer.change(uuid, action.status, action.reason, user)

    async def _digest_refusal(self, digest: str) -> Outcome:
        """A digest lists only its newest alerts: acting on "one of them" or "all of them" from
        it would change alerts nobody looked at, so it changes none (DESIGN.md §10)."""
        count = len(await self.store.group_members(digest))
        return Outcome(
            OutcomeKind.REFUSED,
            f"This digest stands for {count} alert{'s' if count != 1 else ''} of a flooding "
            "rule, so SecBot did not change any of them from here. Change them in the SIEM.",
        )
