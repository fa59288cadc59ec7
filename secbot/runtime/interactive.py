"""Composition of the interactive rooms: asking the person (``secbot/ask/``) and response
actions with approval (``secbot/respond/``).

What they add to the service: steps after an alert is posted (the hand-off), button and modal
listeners (the bolt app), and background loops (due questions). Built here, from settings,
so ``wiring.py`` only passes the parts on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from slack_sdk.web.async_client import AsyncWebClient

from secbot.ask.answers import AskAnswers
from secbot.ask.asker import Asker
from secbot.ask.base import AskContext, Escalator, ThreadEscalation
from secbot.ask.blocks import JUSTIFY_VIEW
from secbot.ask.escalation import ByHand, RuleEscalation
from secbot.ask.state import Interactions, RedisInteractions
from secbot.chat.app import ActionHandler, ViewHandler
from secbot.commands.context import CommandContext, Reply
from secbot.commands.router import RespondCommand
from secbot.intake.handoff import AfterPost
from secbot.respond.approvals import Approvals
from secbot.respond.base import RespondContext
from secbot.respond.calls import ResponseApis
from secbot.respond.proposer import Proposer
from secbot.respond.running import RunningSweep
from secbot.respond.window import AutoApproveWindow
from secbot.rules.ruleset import RuleSet
from secbot.runtime.settings import Settings
from secbot.siem.base import Siem
from secbot.store.base import Store
from secbot.triage.people import Directory, Triagers
from secbot.triage.status_change import AfterChange, StatusChanger


@dataclass
class InteractiveParts:
    """What the interactive rooms hand the service."""

    after_post: list[AfterPost] = field(default_factory=list)
    actions: list[tuple[str | re.Pattern[str], ActionHandler]] = field(default_factory=list)
    views: list[tuple[str, ViewHandler]] = field(default_factory=list)
    loops: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    respond: RespondCommand | None = None  # the isolate / release commands


def interactions_for(settings: Settings, redis_client: aioredis.Redis) -> Interactions:
    """The shared state of DMs and approvals: Redis, beside the store."""
    return RedisInteractions(redis_client, settings.redis_prefix)


def bot_status_changer(settings: Settings, web: AsyncWebClient, store: Store, siem: Siem,
                       bot_user_id: str, after_change: AfterChange | None = None
                       ) -> StatusChanger:
    """Status changes SecBot makes itself, on an answer's behalf: the same saga as a
    triager's emoji (SIEM, audit, tag, message), authorised for the bot user only."""
    return StatusChanger(web, siem, store, Triagers(web, [bot_user_id]), Directory(web),
                         ttl=settings.alert_ttl, after_change=after_change)


def build_interactive(
    settings: Settings,
    web: AsyncWebClient,
    store: Store,
    siem: Siem,
    rules: RuleSet,
    bot_user_id: str,
    interactions: Interactions,
    *,
    outbox: ByHand | None = None,
    after_change: AfterChange | None = None,
) -> InteractiveParts:
    """Asking and response actions. ``outbox``: the destinations' escalate-by-hand (issue
    13) when wired; without it, ``{escalate: true}`` acknowledges and says so in the thread."""
    # after_change: SecBot's own status changes reach the destinations too (issue 13)
    changer = bot_status_changer(settings, web, store, siem, bot_user_id, after_change)
    fallback = ThreadEscalation(changer, bot_user_id)
    escalator: Escalator = (fallback if outbox is None
                            else RuleEscalation(outbox, siem, rules, fallback))
    ctx = AskContext(
        client=web, store=store, state=interactions, siem=siem, rules=rules, status=changer,
        escalator=escalator,
        bot_user_id=bot_user_id, record_ttl=settings.alert_ttl,
    )
    answers = AskAnswers(ctx)
    parts = InteractiveParts()
    parts.after_post.append(Asker(ctx))
    parts.actions.append((re.compile(r"^secbot_ask_(yes|no)$"), answers))
    parts.views.append((JUSTIFY_VIEW, answers))
    parts.loops.append(answers.run)
    approvals = Approvals(respond_context(settings, web, store, siem, rules, interactions))
    proposer = Proposer(approvals)
    parts.after_post.append(proposer)
    parts.actions.append((re.compile(r"^secbot_(approve|deny|undo)$"), approvals))
    parts.loops.append(RunningSweep(approvals.ctx).run)  # runs left by a stopped replica
    parts.respond = respond_command(proposer)
    return parts


def respond_context(settings: Settings, web: AsyncWebClient, store: Store, siem: Siem,
                    rules: RuleSet, interactions: Interactions, *,
                    now: Callable[[], datetime] | None = None) -> RespondContext:
    """Response actions: approvers, the night window, dry run, the response APIs."""
    kibana_key = settings.kibana_api_key or settings.elasticsearch_api_key
    apis = ResponseApis(
        kibana_url=settings.kibana_url, kibana_space=settings.kibana_space,
        kibana_api_key=kibana_key.get_secret_value() if kibana_key else None,
        okta_url=settings.okta_url,
        okta_token=settings.okta_token.get_secret_value() if settings.okta_token else None,
        gcp_iam_url=settings.gcp_iam_url)
    window = (AutoApproveWindow.parse(settings.auto_approve_hours)
              if settings.auto_approve_hours else None)
    return RespondContext(
        client=web, store=store, state=interactions, siem=siem, rules=rules,
        approvers=Triagers(web, settings.approvers), apis=apis, window=window,
        dry_run=settings.respond_dry_run, record_ttl=settings.alert_ttl,
        **({"now": now} if now is not None else {}))


def respond_command(proposer: Proposer) -> RespondCommand:
    """``@SecBot isolate|release [host]`` in a thread → a proposal awaiting approval."""

    async def run(ctx: CommandContext, verb: str, host: str | None) -> Reply:
        answer = await proposer.command(ctx.user, ctx.alert_uuid,
                                        ctx.alert.id if ctx.alert else "", verb, host)
        return Reply(answer.text, ephemeral=answer.ephemeral)

    return run
