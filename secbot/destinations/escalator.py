"""Where the flow meets the outbox: after an alert is posted, its escalation's destinations get
an open job; after a status change, every destination it went to gets an update job.

:class:`EscalateAfterPost` is a hand-off step (:class:`secbot.intake.handoff.AfterPost`): it
runs after the post and before the alert is marked posted, so a crash re-runs it, and the
outbox's idempotent enqueue makes that harmless (one open per destination and alert). A
duplicate of an alert already escalated to a destination is not sent there again: its first
alert's page or issue stands for it (its message is threaded under that alert's anyway).

:class:`StatusMirror` is what status changes call once a change is done and audited: the
SIEM is the truth, destinations follow it (acknowledge → PagerDuty acknowledge, closed →
resolve and the Jira transition, webhooks get the status).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import quote, urlencode

import structlog

from secbot.destinations.base import EscalationRequest, Link, StatusUpdate
from secbot.destinations.outbox import Outbox
from secbot.domain.alert import Alert, thaw
from secbot.domain.source import alert_source
from secbot.pipeline.decision import Decision

log = structlog.stdlib.get_logger(__name__)

#: The alert's Slack permalink, when Slack gives one (None: leave the link out).
Permalink = Callable[[str], Awaitable[str | None]]
_DETAIL_MAX = 500


def _text(value: object) -> str:
    text = value if isinstance(value, str) else str(thaw(value))
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


def kibana_link(kibana_url: str | None, space: str, alert: Alert) -> Link | None:
    """Kibana's alert redirect page (a SIEM alert only: a mapped source's is SecBot's own)."""
    if not kibana_url or alert_source(alert) != "elastic":
        return None
    prefix = "" if space == "default" else f"/s/{quote(space, safe='')}"
    query = urlencode({"index": alert.index or "", "timestamp":
                       str(alert.get_field("@timestamp") or "")})
    return Link("Kibana", f"{kibana_url.rstrip('/')}{prefix}/app/security/alerts/redirect/"
                          f"{quote(alert.id or alert.uuid, safe='')}?{query}")


def request_for(alert: Alert, decision: Decision, kind: str, links: Sequence[Link]
                ) -> EscalationRequest:
    """What a destination is asked to open for ``alert`` (plain values: the outbox keeps it)."""
    escalation = decision.escalation
    title = str(decision.message.get("title") or "") if decision.message else ""
    title = alert.rule_name or title or decision.rule_id or "SecBot alert"
    fields = {str(k): _text(v) for k, v in decision.fields.items() if v is not None}
    key = ", ".join(f"{k} {v}" for k, v in list(fields.items())[:3])
    return EscalationRequest(
        alert_uuid=alert.uuid, rule_id=decision.rule_id or "", title=title,
        summary=f"{title}: {key}" if key else title,
        severity=(escalation.severity if escalation and escalation.severity else
                  decision.severity) or "medium",
        kind="page" if kind == "page" else "ticket" if kind == "ticket" else "notify",
        source=alert_source(alert), details=fields, links=tuple(links),
        why=escalation.why if escalation else "")


class EscalateAfterPost:
    """The hand-off step: one open job per destination of ``decision.escalation``."""

    def __init__(self, outbox: Outbox, permalink: Permalink, *, kibana_url: str | None = None,
                 kibana_space: str = "default") -> None:
        self.outbox = outbox
        self.permalink = permalink
        self.kibana_url = kibana_url
        self.kibana_space = kibana_space

    async def after_post(self, alert: Alert, decision: Decision) -> None:
        escalation = decision.escalation
        if escalation is None or not escalation.destinations:
            return
        wanted = list(escalation.destinations)
        if decision.duplicate_of:
            already = await self.outbox.escalated_to(decision.duplicate_of)
            wanted = [(kind, name) for kind, name in wanted if name not in already]
            if not wanted:
                return
        links = await self._links(alert)
        for kind, name in wanted:
            await self.outbox.open(name, request_for(alert, decision, kind, links))

    async def _links(self, alert: Alert) -> list[Link]:
        links = []
        try:
            permalink = await self.permalink(alert.uuid)
        except Exception as exc:  # Slack down: the page matters more than its link
            log.info("no permalink for %s: %s", alert.uuid, type(exc).__name__)
            permalink = None
        if permalink:
            links.append(Link("Slack", permalink))
        kibana = kibana_link(self.kibana_url, self.kibana_space, alert)
        if kibana is not None:
            links.append(kibana)
        return links

    async def escalate_by_hand(self, alert: Alert, decision: Decision) -> list[str]:
        """The destinations given (``@SecBot page``): queued now; returns those newly queued."""
        links = await self._links(alert)
        assert decision.escalation is not None
        return [name for kind, name in decision.escalation.destinations
                if await self.outbox.open(name, request_for(alert, decision, kind, links))]


class StatusMirror:
    """Told by status changes (emoji, commands, answers, Jira): queue the updates."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def status_changed(self, uuids: Sequence[str], status: str, reason: str | None,
                             actor: str) -> None:
        at = time.time()  # one change, one time: its retries keep one Idempotency-Key
        for uuid in uuids:
            await self.outbox.update(StatusUpdate(uuid, status, reason, actor, at))


__all__ = ["EscalateAfterPost", "Permalink", "StatusMirror", "kibana_link", "request_for"]
