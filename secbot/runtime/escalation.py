"""The escalation parts of the service (issue 13), built from settings: destinations, the
outbox and its worker, the hand-off step that enqueues opens, the status mirror that enqueues
updates, the Slack notices of outcomes, and the Jira webhook's way back.

Nothing is built when no destination is configured (``EscalationParts.enabled`` False): the
rules loader refused any ``escalate`` naming one, so there is nothing to send.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from secbot.commands.escalate import HandKind
from secbot.destinations.escalator import EscalateAfterPost, StatusMirror
from secbot.destinations.jobs import DestinationState
from secbot.destinations.notices import SlackNotices
from secbot.destinations.outbox import Outbox, OutboxWorker
from secbot.domain.escalation import Escalated
from secbot.intake.jira_webhook import CloseFailed, JiraHook, ResolvedIssue, labels_uuid
from secbot.pipeline.decision import Decision
from secbot.runtime.destinations import build_destinations, build_outbox, destination_client
from secbot.runtime.settings import Settings
from secbot.siem.base import Siem
from secbot.store.base import Store
from secbot.triage.people import Directory, Triagers
from secbot.triage.status_change import OutcomeKind, StatusChanger

#: Jira has no closing reason Kibana knows; a resolved issue says "dealt with", not why.
JIRA_CLOSE_REASON = "other"


@dataclass
class EscalationParts:
    """What the service gets; all empty when no destination is configured."""

    outbox: Outbox | None = None
    worker: OutboxWorker | None = None
    after_post: list[EscalateAfterPost] = field(default_factory=list)
    hand: HandEscalation | None = None  # @SecBot page / ticket
    mirror: StatusMirror | None = None
    jira_hook: JiraHook | None = None
    closers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.outbox is not None

    async def states(self) -> list[DestinationState]:
        return await self.outbox.states() if self.outbox is not None else []

    def loops(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        return [self.worker.run] if self.worker is not None else []


class _JiraActors(Triagers):
    """Who may close from Jira: the person Jira names (``jira:<who>``), authenticated by the
    webhook's secret, not by Slack."""

    async def allows(self, user: str) -> bool:
        return user.startswith("jira:")


class _JiraDirectory(Directory):
    async def credit(self, user: str) -> str:
        return user  # already "jira:<email>": there is no Slack user to look up


class JiraCloser:
    """:class:`~secbot.intake.jira_webhook.IssueResolved`: the issue's alert is closed through
    the same status change as a ✅ (SIEM, audit, tag, message, and the other destinations)."""

    def __init__(self, outbox: Outbox, changer: StatusChanger) -> None:
        self.outbox = outbox
        self.changer = changer

    async def issue_resolved(self, issue: ResolvedIssue) -> str:
        uuid = (await self.outbox.store.alert_for_reference("jira", issue.key)
                or labels_uuid(issue.labels))
        if uuid is None:
            return f"no SecBot alert for {issue.key}"
        outcome = await self.changer.change(uuid, "closed", JIRA_CLOSE_REASON, issue.actor)
        if outcome.kind == OutcomeKind.FAILED:
            raise CloseFailed(outcome.text)
        return f"{outcome.kind.value} {uuid}: {outcome.text}"


class HandEscalation:
    """``@SecBot page|ticket [destination]`` (:class:`secbot.commands.escalate.Escalator`):
    the alert goes to that destination through the outbox, like a matched ``escalate`` entry
    (idempotent: a second ``page`` pages once)."""

    def __init__(self, step: EscalateAfterPost, outbox: Outbox, siem: Siem, store: Store
                 ) -> None:
        self.step = step
        self.outbox = outbox
        self.siem = siem
        self.store = store

    async def escalate_by_hand(self, uuid: str, kind: HandKind, destination: str,
                               who: str) -> str:
        if destination not in self.outbox.names:
            known = ", ".join(sorted(self.outbox.names))
            return f"{destination} is not configured on this SecBot (configured: {known})."
        record = await self.store.load_record(uuid)
        alert_id = (record.id if record is not None else "") or uuid
        alert = (await self.siem.get_many([alert_id])).get(alert_id)
        if alert is None:
            return f"Alert {uuid} is no longer in the SIEM; nothing was sent."
        escalated = Escalated(-1, None, None, ((kind, destination),),
                              f"{kind} by {who} from Slack")
        decision = Decision(
            alert_uuid=uuid, rule_id=record.rule_id if record else None, channel=None,
            post=False, auto_close=False, close_reason=None, explanation=escalated.why,
            severity=(record.severity if record else "") or alert.severity or "medium",
            fields=dict(record.fields) if record else {}, escalation=escalated)
        sent = await self.step.escalate_by_hand(alert, decision)
        if not sent:
            return f"This alert was already sent to {destination}."
        verb = "Paging" if kind == "page" else "Ticketing in"
        return f"{verb} {destination}; the message shows it once {destination} has it."


def permalinks(web: AsyncWebClient, store: Store) -> Callable[[str], Coroutine[Any, Any,
                                                                             str | None]]:
    async def permalink(uuid: str) -> str | None:
        ref = await store.message_for_alert(uuid)
        if ref is None:
            return None
        with contextlib.suppress(SlackApiError):
            answer = await web.chat_getPermalink(channel=ref.channel, message_ts=ref.ts)
            link = answer.get("permalink")
            return str(link) if link else None
        return None

    return permalink


def build_escalation(settings: Settings, redis_client: aioredis.Redis, web: AsyncWebClient,
                     store: Store, siem: Siem) -> EscalationParts:
    http = destination_client(settings)
    destinations = build_destinations(settings, http)
    if not destinations:
        return EscalationParts(closers=[http.aclose])
    parts = EscalationParts(closers=[http.aclose])
    notices = SlackNotices(web, store, lambda uuid: outbox.store.receipts(uuid),
                           ttl=settings.alert_ttl)
    outbox, parts.worker = build_outbox(settings, redis_client, destinations, notices)
    parts.outbox = outbox
    parts.mirror = StatusMirror(outbox)
    step = EscalateAfterPost(outbox, permalinks(web, store), kibana_url=settings.kibana_url,
                             kibana_space=settings.kibana_space)
    parts.after_post.append(step)
    parts.hand = HandEscalation(step, outbox, siem, store)
    secret = settings.jira_webhook_secret
    if secret is not None and "jira" in destinations:
        changer = StatusChanger(web, siem, store, _JiraActors(web, []), _JiraDirectory(web),
                                ttl=settings.alert_ttl, after_change=parts.mirror)
        parts.jira_hook = JiraHook(secret.get_secret_value(), JiraCloser(outbox, changer))
    return parts


__all__ = ["EscalationParts", "HandEscalation", "JiraCloser", "build_escalation", "permalinks"]
