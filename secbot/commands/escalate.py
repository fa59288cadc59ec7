"""``@SecBot page [destination]`` / ``@SecBot ticket [destination]`` in an alert's thread:
escalate that alert by hand (issue 13). Triagers only (the router checks first).

The command only asks: an :class:`Escalator` (the runtime wires the destinations' durable
outbox to it) queues the page or ticket, idempotent by alert uuid and destination, and says
in one line what it did. The answer is a visible reply in the thread, so the team sees who
paged.
"""

from __future__ import annotations

import re
from typing import Literal, Protocol

import structlog

from secbot.commands.context import CommandContext, Reply
from secbot.domain.errors import SecBotError
from secbot.render import mrkdwn as md

log = structlog.stdlib.get_logger(__name__)

HandKind = Literal["page", "ticket"]
#: Where each verb goes when no destination is named.
DEFAULT_DESTINATION: dict[HandKind, str] = {"page": "pagerduty", "ticket": "jira"}
ESCALATE_VERBS = frozenset(DEFAULT_DESTINATION)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


class Escalator(Protocol):
    """Sends one alert to a destination because a person asked (``@SecBot page``)."""

    async def escalate_by_hand(self, uuid: str, kind: HandKind, destination: str,
                               who: str) -> str:
        """Queue ``kind`` (page / ticket) for alert ``uuid`` at ``destination`` for Slack user
        ``who``; idempotent by uuid and destination (a second ``page`` pages once). Returns
        the line to answer with ("🚨 paging pagerduty …", "pagerduty is not configured …").
        Raises :class:`SecBotError` only when it could not even queue the request."""
        ...


NOT_SET_UP = ("Escalating by hand is not available on this SecBot: no destinations are set "
              "up (SECBOT_PAGERDUTY_ROUTING_KEY, SECBOT_JIRA_URL, SECBOT_WEBHOOKS).")


class EscalationCommands:
    """Parses ``page|ticket [destination]`` and asks the :class:`Escalator`."""

    def __init__(self, escalator: Escalator | None) -> None:
        self.escalator = escalator

    async def run(self, kind: HandKind, args: list[str], ctx: CommandContext) -> Reply:
        if ctx.alert_uuid is None:
            return Reply(f"`{kind}` works in an alert's thread: it {kind}s that alert.",
                         ephemeral=True)
        if len(args) > 1 or (args and not _NAME.match(args[0])):
            return Reply(f"Usage: `@SecBot {kind} [destination]` (default "
                         f"{DEFAULT_DESTINATION[kind]}), e.g. `@SecBot ticket xsoar`.",
                         ephemeral=True)
        if self.escalator is None:
            return Reply(NOT_SET_UP, ephemeral=True)
        destination = args[0].lower() if args else DEFAULT_DESTINATION[kind]
        try:
            answer = await self.escalator.escalate_by_hand(ctx.alert_uuid, kind, destination,
                                                           ctx.user)
        except SecBotError as exc:
            log.warning("escalation by hand failed", alert=ctx.alert_uuid, kind=kind,
                        destination=destination, error=str(exc))
            return Reply(f"Could not {kind} {md.escape(destination)}: {md.escape(str(exc))}. "
                         "Nothing was sent; try again.")
        return Reply(md.truncate(md.escape(answer), md.MESSAGE_TEXT_MAX))
