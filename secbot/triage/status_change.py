"""Status changes from Slack (emoji or text command): authorize, find the group, run the saga,
edit the message, and say what happened.

A message stands for a group (DESIGN.md §10): its first alert plus the duplicates threaded
under it. A change asked for on the message changes every alert of the group not yet in that
status, one audit entry each. Kibana's ``reason`` only takes its fixed list, so the person goes
into an alert tag (``closed_by:<email or user id>``) and the audit stream; Kibana's own
``workflow_user`` is the API key's user. Acting on alerts already in the target status is a
quiet no-op — unless an earlier attempt changed them and could not finish, which this one then
completes (:mod:`secbot.triage.saga`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.group import GROUP_PREFIX
from secbot.domain.record import AlertRecord, StatusIntent
from secbot.domain.secrets import redact
from secbot.domain.status import Status
from secbot.publish.groups import recount
from secbot.render.blocks import with_status
from secbot.siem.base import Siem
from secbot.store.base import Store
from secbot.store.records import AlertRecords
from secbot.triage.people import USER_ID, Directory, MembershipUnknownError, Triagers
from secbot.triage.saga import TAG_VERB, Request, SagaResult, SideEffects, StatusSaga, Target
from secbot.triage.saga import attempt as best_effort

__all__ = ["TAG_VERB", "AfterChange", "Outcome", "OutcomeKind", "StatusChanger", "status_line"]

log = structlog.stdlib.get_logger(__name__)


class OutcomeKind(Enum):
    """What a status change request came to."""

    CHANGED = "changed"  # the SIEM and the audit show the new status (see ``problems``)
    NOOP = "noop"  # the alerts already had that status: nothing written
    REFUSED = "refused"  # the user may not do this here: nothing written
    MISSING = "missing"  # the alert is gone from the SIEM: nothing written
    FAILED = "failed"  # not (completely) done: the person is told, a retry may finish it


@dataclass(frozen=True)
class Outcome:
    """What happened, and the text to tell the user. ``problems`` are best-effort steps of a
    CHANGED outcome that failed (tag, message edit); the person must hear about them."""

    kind: OutcomeKind
    text: str
    problems: tuple[str, ...] = ()

    @property
    def needs_telling(self) -> bool:
        """True when the edited message alone does not tell the person what happened."""
        return self.kind in (OutcomeKind.REFUSED, OutcomeKind.MISSING, OutcomeKind.FAILED) or (
            bool(self.problems)
        )


class AfterChange(Protocol):
    """Told once a change is done and audited (the destinations mirror it: the outbox). It
    only queues work, so a failure is one more problem to tell, never an undone change."""

    async def status_changed(self, uuids: Sequence[str], status: str, reason: str | None,
                             actor: str) -> None: ...


class StatusChanger:
    """One place that changes an alert group's status on behalf of a Slack user."""

    def __init__(
        self,
        client: AsyncWebClient,
        siem: Siem,
        store: Store,
        triagers: Triagers,
        directory: Directory,
        *,
        ttl: int = 30 * 86400,
        side_effects: SideEffects | None = None,
        after_change: AfterChange | None = None,
        judge: AfterChange | None = None,
    ) -> None:
        self.after_change = after_change
        # told too, beside the destinations: compares the change with an auto-close decision
        # (issue 15, secbot/review/judge.py); a failure loses a statistic, never the change
        self.judge = judge
        self.client = client
        self.siem = siem
        self.store = store
        self.triagers = triagers
        self.directory = directory
        self.ttl = ttl
        self.records = AlertRecords(store, ttl)
        self.policy = side_effects or SideEffects()
        self.saga = StatusSaga(siem, store, self.records, self.policy)

    async def change(self, uuid: str, status: Status, reason: str | None, user: str) -> Outcome:
        """Change the group whose message leads to ``uuid`` (its first alert)."""
        refusal = await self._authorize(user)
        if refusal is not None:
            return refusal
        record = await self.records.load(uuid)
        try:
            targets = await self._targets(uuid, record)
        except Exception as exc:  # the SIEM cannot be read: nothing was changed
            return Outcome(
                OutcomeKind.FAILED,
                "SecBot did not change this alert: it could not read it from the SIEM "
                f"({redact(f'{type(exc).__name__}: {exc}')}). React again to retry.",
            )
        if not targets:
            return Outcome(OutcomeKind.MISSING, f"Alert {uuid} is no longer in the SIEM.")
        changing = [t for t in targets if t.current != status]
        finishing = await self._unfinished(targets, status)
        if not changing and not finishing:
            return Outcome(OutcomeKind.NOOP, f"Already {status}.")
        reason = reason if status == "closed" else None
        request = Request(status, reason, user, await self._credit(user))
        result = await self.saga.run(request, changing, finishing)
        return await self._finish(uuid, record, request, result, len(targets))

    async def _authorize(self, user: str) -> Outcome | None:
        try:
            allowed = await self.triagers.allows(user)
        except MembershipUnknownError as exc:
            return Outcome(
                OutcomeKind.REFUSED,
                "SecBot did not change this alert's status: Slack could not tell it who is in "
                f"{', '.join(exc.groups)}. Try again shortly.",
            )
        if not allowed:
            return Outcome(
                OutcomeKind.REFUSED,
                "You are not in SECBOT_TRIAGERS, so SecBot did not change "
                "this alert's status. Ask a triager.",
            )
        return None

    async def _targets(self, uuid: str, record: AlertRecord | None) -> list[Target]:
        """The group's alerts as the SIEM shows them now (gone ones left out): a group
        header's every member, or an alert's message's alert and its duplicates."""
        if uuid.startswith(GROUP_PREFIX):
            members: tuple[str, ...] = tuple(await self.store.group_members(uuid))
        else:
            # Without a record (expired, or from an older SecBot) the uuid is the SIEM id.
            members = record.group if record else (uuid,)
        loaded: list[AlertRecord | None] = []
        for start in range(0, len(members), 64):  # bounded: not one Redis connection per member
            loaded += await asyncio.gather(*(
                self.records.load(m) if m != uuid else _same(record)
                for m in members[start : start + 64]))
        ids = [(rec.id if rec else "") or m for m, rec in zip(members, loaded, strict=True)]
        found = await self.siem.get_many(ids)  # bounded: one read per chunk, not per alert
        return [
            Target(m, alert_id, alert.workflow_status, (rec.rule_id if rec else None) or "")
            for m, alert_id, rec in zip(members, ids, loaded, strict=True)
            if (alert := found.get(alert_id)) is not None
        ]

    async def _unfinished(
        self, targets: Sequence[Target], status: Status
    ) -> list[tuple[Target, StatusIntent]]:
        """Alerts already in ``status`` whose change (to that status) was begun, not audited."""
        out = []
        for target in targets:
            if target.current != status:
                continue
            intent = await self.records.pending_change(target.uuid)
            if intent is not None and intent.status == status:
                out.append((target, intent))
        return out

    async def _credit(self, user: str) -> str:
        try:
            return await self.directory.credit(user)
        except Exception:  # Slack unreachable: credit the user id, do not block the change
            return user

    async def _finish(
        self, uuid: str, record: AlertRecord | None, request: Request, result: SagaResult,
        group_size: int,
    ) -> Outcome:
        """Step 5 (the message) and the answer for the person."""
        if not result.done:
            return Outcome(
                OutcomeKind.FAILED,
                f"SecBot did not complete this status change: {result.failure}. "
                "React again to retry.",
            )
        problems = list(result.problems)
        if result.failure is not None:
            problems.append(f"not every alert of this message changed ({result.failure})")
        line = status_line(request.status, request.reason, request.slack_user, result.at,
                           alerts=group_size)
        if result.failure is not None:  # a partial change: never show the group as all done
            line += f" · only {len(result.done):,} of {group_size:,} alerts changed"
        group = uuid if uuid.startswith(GROUP_PREFIX) else (record.group_id if record else None)
        updated, problem = (None, None) if group else await self._edit_message(uuid, record, line)
        if problem is not None:
            problems.append(problem)
        for intent in result.done:
            await self.records.set_status(
                intent.uuid, request.status, updated if intent.uuid == uuid else None
            )
        if group:  # the header's counts and the member lines are redrawn from the records
            await recount(self.store, group, self.ttl)
        elif record is not None and record.duplicates:  # the first alert of a duplicates group
            await recount(self.store, uuid, self.ttl)
        await self._tell_judge(result, request)
        problem = await self._tell_destinations(result, request)
        if problem is not None:
            problems.append(problem)
        count = len(result.done)
        text = f"{request.status.capitalize()}" + (f" ({count} alerts)." if count > 1 else ".")
        if problems:
            text = (f"{text} The SIEM and the audit show it, but " + "; ".join(problems) + ".")
        return Outcome(OutcomeKind.CHANGED, text, tuple(problems))

    async def _tell_judge(self, result: SagaResult, request: Request) -> None:
        if self.judge is None or not result.done:
            return
        try:
            await self.judge.status_changed([i.uuid for i in result.done], request.status,
                                            request.reason, request.credit)
        except Exception as exc:
            log.warning("agreement not recorded: %s", redact(f"{type(exc).__name__}: {exc}"))

    async def _tell_destinations(self, result: SagaResult, request: Request) -> str | None:
        if self.after_change is None or not result.done:
            return None
        try:
            await self.after_change.status_changed([i.uuid for i in result.done],
                                                   request.status, request.reason,
                                                   request.credit)
        except Exception as exc:
            return ("PagerDuty/Jira/webhooks were not told "
                    f"({redact(f'{type(exc).__name__}: {exc}')})")
        return None

    async def _edit_message(
        self, uuid: str, record: AlertRecord | None, line: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The message with its new status line, as now shown (None: not edited), and what
        went wrong if it could not be edited."""
        ref = await self.store.message_for_alert(uuid)
        message = record.message if record else None
        if ref is None or message is None:
            return None, "SecBot no longer has this message's content, so it is not updated"
        updated = with_status(message, line, trusted=True)

        async def edit() -> object:
            return await self.client.chat_update(
                channel=ref.channel, ts=ref.ts, text=updated.get("text", ""),
                blocks=updated["blocks"],
            )

        _, error = await best_effort(edit, self.policy, "message edit")
        if error is not None:
            return None, f"the Slack message could not be updated ({error})"
        return updated, None


async def _same(record: AlertRecord | None) -> AlertRecord | None:
    return record


def status_line(status: str, reason: str | None, user: str, at: datetime, *, alerts: int = 1
                ) -> str:
    """ "Closed by @user · reason · time" (the user id is Slack's, never alert text), plus how
    many alerts the message stands for when it is more than one."""
    who = f"<@{user}>" if USER_ID.match(user) else user
    parts = [f"{status.capitalize()} by {who}"]
    if reason:
        parts.append(reason)
    parts.append(at.strftime("%Y-%m-%d %H:%M UTC"))
    if alerts > 1:
        more = alerts - 1
        parts.append(f"{alerts} alerts: this one and {more} duplicate{'s' if more > 1 else ''}")
    return " · ".join(parts)
