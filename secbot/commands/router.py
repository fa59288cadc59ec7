"""``@SecBot`` commands. Inside an alert's thread, arguments default to that alert's fields.

Investigation commands show alert fields, provider data and people's recent IPs and places,
so they answer ``SECBOT_TRIAGERS`` only (DESIGN.md §8); anyone else gets one ephemeral
refusal that is the same whatever they asked, so it reveals neither data nor whether the
alert exists. ``help`` stays open. Status commands are authorized by the status changer.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable

from secbot.commands.context import CommandContext, Reply
from secbot.commands.escalate import ESCALATE_VERBS, EscalationCommands, Escalator
from secbot.commands.investigate import Investigator
from secbot.commands.members import MemberCommands, pick_member
from secbot.domain.status import CLOSING_REASONS, DEFAULT_CLOSE_REASON, KIBANA_REASONS, Status
from secbot.render import mrkdwn as md
from secbot.triage.people import MembershipUnknownError, Triagers

#: ``close`` / ``ack`` / ``reopen``: change the thread's alert to a status (with a reason).
StatusCommand = Callable[[CommandContext, Status, str | None], Awaitable[Reply]]
#: ``isolate [host]`` / ``release [host]``: propose a response action (secbot/respond/).
RespondCommand = Callable[[CommandContext, str, str | None], Awaitable[Reply]]

MENTION = re.compile(r"<@[UWB][A-Z0-9]+(?:\|[^>]*)?>")
MAILTO = re.compile(r"<mailto:([^|>]+)(?:\|[^>]*)?>")
LINK = re.compile(r"<(https?://[^|>]+)(?:\|([^>]*))?>")

HELP = """*SecBot commands* (in an alert's thread, arguments default to the alert's fields)
• `alert` — the alert's cached fields and status
• `locate user [email]` — recent IPs, locations and apps from authentication logs
• `whois <domain|ip>` — RDAP registration data
• `ti <ip|domain|hash>` — threat-intel verdict
• `gcp project <id>` — project labels, parent, state
• `oncall [email]` — is this person on call?
• `isolate [host]`, `release [host]` — propose isolating (releasing) the alert's host;
  an approver (SECBOT_APPROVERS) other than you approves it
• `page [destination]`, `ticket [destination]` — escalate the thread's alert by hand
  (default pagerduty / jira; a webhook by its name, e.g. `ticket xsoar`)
• `stats [7d]` — alerts per rule and source (auto-closed, closed by people, acknowledged,
  open, median times), top five, change vs the period before, and a chart
• `close [reason]`, `ack`, `reopen` — change the alert's status (in a group's thread: all
  of the group's alerts); add the start of an alert id (6+ characters) for just that one
• `help` — this text
Every command but `help` answers triagers only."""

#: The one answer a non-triager gets to any investigation command: it names no alert, field
#: or log, so it reads the same whether or not the alert or the person exists.
NOT_A_TRIAGER = (
    "Only SecBot triagers (SECBOT_TRIAGERS) may use this command, and you are not in "
    "SECBOT_TRIAGERS. Ask a triager."
)

#: Verbs that only change status: :data:`StatusCommand` authorizes them itself.
STATUS_VERBS = frozenset({"close", "ack", "acknowledge", "reopen"})


def membership_unknown(exc: MembershipUnknownError) -> str:
    """Slack could not say who is in a triager group: say so, so the person can retry."""
    return (
        "SecBot did not answer: Slack could not tell it who is in "
        f"{', '.join(exc.groups)}, so it cannot check that you are a triager. Try again shortly."
    )


def clean_text(text: str) -> list[str]:
    """Message text → words: mentions dropped, Slack's mailto/links unwrapped."""
    text = MENTION.sub(" ", text)
    text = MAILTO.sub(r"\1", text)
    text = LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


Handler = Callable[[list[str], CommandContext], Awaitable[Reply]]


class CommandRouter:
    """Parses a mention and runs the command; unknown commands get the help text."""

    def __init__(
        self,
        investigator: Investigator,
        change_status: StatusCommand,
        triagers: Triagers,
        change_member: MemberCommands | None = None,
        respond: RespondCommand | None = None,
        escalator: Escalator | None = None,
        stats: Handler | None = None,
    ) -> None:
        self.respond = respond
        self.stats = stats  # ``stats [period]`` (secbot/commands/stats.py)
        self.investigator = investigator
        self.change_status = change_status
        self.triagers = triagers
        self.change_member = change_member
        self.escalations = EscalationCommands(escalator)

    async def refusal(self, user: str) -> Reply | None:
        """None if ``user`` may investigate, else the ephemeral refusal to send."""
        try:
            if await self.triagers.allows(user):
                return None
        except MembershipUnknownError as exc:
            return Reply(membership_unknown(exc), ephemeral=True)
        return Reply(NOT_A_TRIAGER, ephemeral=True)

    async def run(self, text: str, ctx: CommandContext) -> Reply:
        words = clean_text(text)
        if not words:
            return Reply(HELP)
        verb, args = words[0].lower(), words[1:]
        if verb in KNOWN_VERBS and verb not in STATUS_VERBS:
            refused = await self.refusal(ctx.user)
            if refused is not None:
                return refused
        return await self._dispatch(verb, args, ctx)

    async def _dispatch(self, verb: str, args: list[str], ctx: CommandContext) -> Reply:
        inv = self.investigator
        if verb == "locate" and args[:1] == ["user"]:
            return await inv.locate_user(self._arg(args[1:], ctx, "user.email"))
        if verb == "gcp" and args[:1] == ["project"]:
            return await inv.gcp_project(self._arg(args[1:], ctx, "cloud.project.id"))
        simple: dict[str, Callable[[], Awaitable[Reply]]] = {
            "alert": lambda: inv.alert_summary(ctx),
            "whois": lambda: inv.whois(
                self._arg(
                    args, ctx, "url.domain", "destination.domain", "source.ip", "destination.ip"
                )
            ),
            "ti": lambda: inv.threat_intel(
                self._arg(
                    args, ctx, "file.hash.sha256", "url.domain", "source.ip", "destination.ip"
                )
            ),
            "oncall": lambda: inv.oncall(self._arg(args, ctx, "user.email")),
            "close": lambda: self._status(args, ctx, "closed"),
            "ack": lambda: self._status(args, ctx, "acknowledged"),
            "acknowledge": lambda: self._status(args, ctx, "acknowledged"),
            "reopen": lambda: self._status(args, ctx, "open"),
            "page": lambda: self.escalations.run("page", args, ctx),
            "ticket": lambda: self.escalations.run("ticket", args, ctx),
            "isolate": lambda: self._respond(args, ctx, "isolate"),
            "release": lambda: self._respond(args, ctx, "release"),
            "stats": lambda: self._stats(args, ctx),
        }
        handler = simple.get(verb)
        if handler is None:
            prefix = "" if verb == "help" else f"I don't know `{md.escape(verb[:40])}`.\n"
            return Reply(prefix + HELP)
        return await handler()

    async def _respond(self, args: list[str], ctx: CommandContext, verb: str) -> Reply:
        if self.respond is None:
            return Reply("Response actions are not set up in this SecBot.", ephemeral=True)
        return await self.respond(ctx, verb, args[0] if args else None)

    async def _stats(self, args: list[str], ctx: CommandContext) -> Reply:
        if self.stats is None:
            return Reply("Statistics are not set up in this SecBot.", ephemeral=True)
        return await self.stats(args, ctx)

    @staticmethod
    def _arg(args: list[str], ctx: CommandContext, *fields: str) -> str | None:
        return args[0] if args else ctx.alert_field(*fields)

    async def _status(self, args: list[str], ctx: CommandContext, status: Status) -> Reply:
        """``close [reason] [id prefix]``, ``ack [id prefix]``, ``reopen [id prefix]``: the
        thread's group, or with a prefix exactly one of its alerts. For ``close`` a known
        closing reason is the reason, in either order; any other word is an id prefix."""
        reason = DEFAULT_CLOSE_REASON if status == "closed" else None
        words = list(args)
        if status == "closed" and words and words[0] in CLOSING_REASONS:
            reason = words.pop(0)
        elif status == "closed" and len(words) > 1 and words[-1] in CLOSING_REASONS:
            reason = words.pop()
        if not words:
            return await self.change_status(ctx, status, reason)
        if len(words) > 1:
            return self._not_understood(status, "Give one alert id prefix at a time.")
        return await self._member(words[0], ctx, status, reason)

    async def _member(self, prefix: str, ctx: CommandContext, status: Status,
                      reason: str | None) -> Reply:
        refused = await self.refusal(ctx.user)  # triagers only, before anything is looked up
        if refused is not None:
            return refused
        members = await self.change_member.members(ctx) if self.change_member else ()
        if self.change_member is None or not members:
            return self._not_understood(
                status, "An alert id prefix only works inside an alert group's thread.")
        pick = pick_member(prefix, members)
        if pick.uuid is None:
            return self._not_understood(status, pick.problem or "No such alert.")
        return await self.change_member(ctx, pick.uuid, status, reason)

    @staticmethod
    def _not_understood(status: Status, problem: str) -> Reply:
        if status == "closed":  # the word may have been meant as a reason
            problem += f"\nClosing reasons: {', '.join(KIBANA_REASONS)}"
        return Reply(problem, ephemeral=True)


#: Every verb :meth:`CommandRouter.run` answers; any other word gets the (open) help text.
KNOWN_VERBS = frozenset({"alert", "locate", "whois", "ti", "gcp", "oncall", "isolate",
                         "release", "stats"}) | STATUS_VERBS | ESCALATE_VERBS
