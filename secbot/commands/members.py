"""``@SecBot close|ack|reopen <uuid prefix>`` in a group's thread: exactly one member.

A group's message changes every alert of the group (DESIGN.md §10); a triager who wants one
of them names it by the start of its uuid, as shown on its line in the thread. The prefix
must be long enough to mean something (:data:`MIN_PREFIX`) and fit exactly one member: an
ambiguous or unknown prefix changes nothing and is answered with an ephemeral naming the
problem. The change itself is the same saga as an emoji's (intent, SIEM, one audit entry,
tag), on that one alert only; the group's other alerts and its message are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from secbot.commands.context import CommandContext, Reply
from secbot.domain.record import StatusIntent
from secbot.domain.secrets import redact
from secbot.domain.status import Status
from secbot.publish.groups import recount
from secbot.render import mrkdwn as md
from secbot.triage.saga import Request, Target
from secbot.triage.status_change import StatusChanger

#: Fewest uuid characters that name a member: short enough to type, long enough that two
#: members of one group rarely share them (and if they do, the person is asked for more).
MIN_PREFIX = 6
#: How many characters of a uuid replies show.
SHOWN = 12


class MemberCommands(Protocol):
    """What the router needs to act on one member of a thread's group."""

    async def members(self, ctx: CommandContext) -> Sequence[str]:
        """The uuids the thread of ``ctx`` stands for (empty outside a group's thread)."""
        ...

    async def __call__(
        self, ctx: CommandContext, uuid: str, status: Status, reason: str | None
    ) -> Reply:
        """Change member ``uuid`` (already resolved) and answer the person."""
        ...


@dataclass(frozen=True)
class MemberPick:
    """The one member a prefix names, or why it names none."""

    uuid: str | None = None
    problem: str | None = None


def short(uuid: str) -> str:
    """The uuid as replies show it: its start, as inline code (alert data, escaped)."""
    return md.code(uuid[:SHOWN] + ("…" if len(uuid) > SHOWN else ""))


def pick_member(prefix: str, members: Sequence[str]) -> MemberPick:
    """The member whose uuid starts with ``prefix`` (case-insensitive), if exactly one does."""
    shown = md.code(prefix[:40])
    if len(prefix) < MIN_PREFIX:
        return MemberPick(problem=f"{shown} is too short: give at least {MIN_PREFIX} "
                          "characters of the alert id shown in this thread.")
    wanted = prefix.lower()
    found = [m for m in dict.fromkeys(members) if m.lower().startswith(wanted)]
    if not found:
        return MemberPick(problem=f"No alert of this thread's group has an id starting with "
                          f"{shown} ({len(set(members))} alerts in the group).")
    if len(found) > 1:
        names = ", ".join(short(m) for m in found[:5])
        return MemberPick(problem=f"{shown} fits {len(found)} alerts of this group ({names}"
                          f"{', …' if len(found) > 5 else ''}): give more characters.")
    return MemberPick(uuid=found[0])


class MemberStatus:
    """Changes exactly one alert of a group, through the status changer's saga."""

    def __init__(self, changer: StatusChanger) -> None:
        self.changer = changer

    async def members(self, ctx: CommandContext) -> Sequence[str]:
        """The thread's members as the store lists them (a storm or ``group.by`` header, an
        alert's message with its duplicates, a batch line), else the thread's alert's group."""
        if ctx.thread_ts:
            found = await self.changer.records.members_of_thread(ctx.channel, ctx.thread_ts)
            if found:
                return found
        return ctx.alert.group if ctx.alert is not None else ()

    async def __call__(
        self, ctx: CommandContext, uuid: str, status: Status, reason: str | None
    ) -> Reply:
        """The caller (the router) has checked that ``ctx.user`` is a triager."""
        changer = self.changer
        record = await changer.records.load(uuid)
        alert_id = (record.id if record else "") or uuid
        try:
            alert = (await changer.siem.get_many([alert_id])).get(alert_id)
        except Exception as exc:  # the SIEM cannot be read: nothing was changed
            return Reply(f"SecBot did not change alert {short(uuid)}: it could not read it from "
                         f"the SIEM ({md.escape(redact(str(exc)))}). Try again.", ephemeral=True)
        if alert is None:
            return Reply(f"Alert {short(uuid)} is no longer in the SIEM.", ephemeral=True)
        target = Target(uuid, alert_id, alert.workflow_status,
                        (record.rule_id if record else None) or "")
        finishing = await self._unfinished(target, status)
        if target.current == status and not finishing:
            return Reply(f"Alert {short(uuid)} is already {status}.", ephemeral=True)
        reason = reason if status == "closed" else None
        request = Request(status, reason, ctx.user, await self._credit(ctx.user))
        result = await changer.saga.run(request, [] if finishing else [target], finishing)
        if not result.done:
            return Reply(f"SecBot did not change alert {short(uuid)}: "
                         f"{md.escape(result.failure or 'unknown error')}. Try again.",
                         ephemeral=True)
        await changer.records.set_status(uuid, status)
        if record is not None and record.group_id:  # its line and the header counts follow
            await recount(changer.store, record.group_id, changer.ttl)
        text = (f"{status.capitalize()} {short(uuid)} (only this alert of the group) by "
                f"<@{ctx.user}>" + (f" · {reason}" if reason else ""))
        if result.problems:  # the change stands; say what did not follow it
            text += " · but " + "; ".join(md.escape(p) for p in result.problems)
        return Reply(text)

    async def _unfinished(self, target: Target, status: Status
                          ) -> list[tuple[Target, StatusIntent]]:
        """An earlier change of this alert to ``status`` that landed but was not audited."""
        if target.current != status:
            return []
        intent = await self.changer.records.pending_change(target.uuid)
        return [(target, intent)] if intent is not None and intent.status == status else []

    async def _credit(self, user: str) -> str:
        try:
            return await self.changer.directory.credit(user)
        except Exception:  # Slack unreachable: credit the user id, do not block the change
            return user


__all__ = ["MIN_PREFIX", "MemberCommands", "MemberPick", "MemberStatus", "pick_member", "short"]
