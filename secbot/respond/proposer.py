"""Where proposals come from: a rule's ``respond:`` entries after the post, and the
``isolate`` / ``release`` commands in an alert's thread.

Targets are read from the alert itself (the SIEM's copy for a command), never from what a
person typed alone: ``isolate web-01`` in a thread isolates the alert's own endpoint
(``agent.id``) and is refused when the alert's host is another one.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from types import MappingProxyType

import structlog

from secbot.domain.alert import Alert
from secbot.expressions import EvalBudget, EvalContext
from secbot.pipeline.decision import Decision
from secbot.render import mrkdwn as md
from secbot.respond.approvals import Approvals
from secbot.respond.proposal import Proposal
from secbot.rules.schema import Respond

log = structlog.stdlib.get_logger(__name__)

HOST_FIELDS = ("host.name", "host.hostname")
AGENT_FIELD = "agent.id"  # Elastic Defend's endpoint id (``endpoint_ids``)


@dataclass(frozen=True)
class Requested:
    """The command's answer: text for the thread, ephemeral when refused."""

    text: str
    ephemeral: bool = False


def _text(alert: Alert, name: str | None) -> str:
    value = alert.get_field(name) if name else None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value).strip() if value not in (None, "") else ""


def target_of(alert: Alert, entry: Respond) -> tuple[str, str] | str:
    """(label, ident) for ``entry`` on ``alert``, or why there is none."""
    if entry.action == "isolate_host":
        host, agent = _text(alert, entry.host), _text(alert, AGENT_FIELD)
        if not agent:
            return f"the alert has no `{AGENT_FIELD}` (the Elastic Defend endpoint to isolate)"
        return (host or agent), agent
    name = entry.user if entry.action == "suspend_user" else entry.key
    value = _text(alert, name)
    return (value, value) if value else f"the alert has no `{md.escape(name or '')}`"


class Proposer:
    """The hand-off step for ``respond:``, and the commands' entry point."""

    def __init__(self, approvals: Approvals) -> None:
        self.approvals = approvals
        self.ctx = approvals.ctx

    async def after_post(self, alert: Alert, decision: Decision) -> None:
        rule = self.ctx.rules.by_id(decision.rule_id) if decision.rule_id else None
        if rule is None or not rule.responses or not decision.post or decision.auto_close:
            return
        env = EvalContext(
            included_fields=decision.fields, alert=alert.frozen, budget=EvalBudget(),
            enrichments=MappingProxyType(
                {n: e.data for n, e in decision.enrichments.items() if e.available}))
        for number, choice in enumerate(rule.responses):
            if choice.expression is not None and not choice.expression.decide(env).value:
                continue
            found = target_of(alert, choice.entry)
            pid = f"{alert.uuid}:{number}"
            if isinstance(found, str):
                await self._cannot(alert.uuid, pid, choice.entry.action, found)
                continue
            await self.approvals.propose(Proposal(
                id=pid, alert_uuid=alert.uuid, rule_id=rule.id, action=choice.entry.action,
                label=found[0], ident=found[1], requested_by="rule",
                alert_id=alert.id or alert.uuid))

    async def _cannot(self, uuid: str, pid: str, action: str, why: str) -> None:
        if await self.ctx.state.claim(f"{pid}:cannot", "secbot", self.ctx.record_ttl):
            ref = await self.ctx.store.message_for_alert(uuid)
            if ref is not None:
                await self.ctx.client.chat_postMessage(
                    channel=ref.channel, thread_ts=ref.ts, unfurl_links=False,
                    text=f":warning: SecBot cannot propose {action.replace('_', ' ')}: {why}.")

    async def command(self, user: str, alert_uuid: str | None, alert_id: str, verb: str,
                      host: str | None) -> Requested:
        """``isolate [host]`` / ``release [host]`` typed by a triager in an alert's thread."""
        if not alert_uuid:
            return Requested("Use this inside an alert's thread.", ephemeral=True)
        found = (await self.ctx.siem.get_many([alert_id or alert_uuid])).get(
            alert_id or alert_uuid)
        if found is None:
            return Requested("SecBot cannot find this alert in the SIEM.", ephemeral=True)
        entry = Respond(action="isolate_host", host=HOST_FIELDS[0], user=None, key=None,
                        when=None)
        target = target_of(found, entry)
        if isinstance(target, str):
            return Requested(f"SecBot cannot {verb} here: {target}.", ephemeral=True)
        label = _text(found, "host.name") or _text(found, "host.hostname") or target[0]
        if host and host.lower() not in (label.lower(), target[1].lower()):
            return Requested(f"This alert's host is `{md.escape(label)}`, not "
                             f"`{md.escape(host)}`.", ephemeral=True)
        action = "isolate_host" if verb == "isolate" else "release_host"
        record = await self.ctx.store.load_record(alert_uuid)
        await self.approvals.propose(Proposal(
            id=uuidlib.uuid4().hex, alert_uuid=alert_uuid,
            rule_id=(record.rule_id if record else None) or "", action=action, label=label,
            ident=target[1], requested_by=user, alert_id=alert_id or alert_uuid))
        return Requested(f"Asked for approval: {verb} `{md.escape(label)}`.")
