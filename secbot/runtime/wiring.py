"""The composition root: the one place that reads settings and builds clients.

Everything else receives what it needs. ``build_service`` returns the service and a
``Resources`` object that closes every client it built.
"""

from __future__ import annotations

import math
import socket as socketlib
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from secbot.ask.state import Interactions
from secbot.chat.app import SlackHandlers, build_app, status_command
from secbot.commands.investigate import Investigator
from secbot.commands.members import MemberStatus
from secbot.commands.router import CommandRouter
from secbot.commands.stats import StatsCommand
from secbot.enrich.base import Enricher
from secbot.enrich.engine import EnrichmentEngine
from secbot.intake.handoff import TriageHandler
from secbot.intake.poller import AlertPoller
from secbot.intake.sources import IntakeSource
from secbot.pipeline.pipeline import Pipeline
from secbot.pipeline.related import RelatedAlerts
from secbot.publish.pacing import ChannelPacer
from secbot.publish.slack import SlackPublisher
from secbot.respond.window import AutoApproveWindow, WindowError
from secbot.rules.ruleset import RuleSet
from secbot.runtime.enrichers import build_enrichers
from secbot.runtime.errors import ConfigError
from secbot.runtime.escalation import EscalationParts, build_escalation
from secbot.runtime.health import HealthState
from secbot.runtime.intake_wiring import (
    build_intake,
    intake_sources,
    rule_partition,
    with_own_store,
)
from secbot.runtime.interactive import InteractiveParts, build_interactive, interactions_for
from secbot.runtime.lease import LeaseKeeper
from secbot.runtime.metrics import Metrics
from secbot.runtime.resources import Resources
from secbot.runtime.service import SecBotService, ServiceParts, socket_connected
from secbot.runtime.settings import Settings
from secbot.runtime.siem_clients import build_siem
from secbot.runtime.trust import (
    TrustParts,
    build_trust,
    connect_trust,
    review_reactions,
    trust_state_for,
)
from secbot.siem.base import AlertArchive, Siem
from secbot.stats.weekly import WeeklyReport
from secbot.store.base import Store
from secbot.store.redis import RedisStore
from secbot.triage.people import Directory, Triagers
from secbot.triage.reactions import ReactionTriage, parse_reaction_map
from secbot.triage.status_change import StatusChanger


def check_run_settings(settings: Settings) -> None:
    """What ``secbot run`` needs beyond the schema, each problem naming its variable."""
    problems = []
    if settings.slack_bot_token is None:
        problems.append("SLACK_BOT_TOKEN: required (xoxb-…)")
    if settings.slack_app_token is None:
        problems.append("SLACK_APP_TOKEN: required for Socket Mode (xapp-…)")
    if not settings.default_channel:
        problems.append("SECBOT_DEFAULT_CHANNEL: required (unmatched alerts must go somewhere)")
    if settings.siem == "elastic" and not settings.elasticsearch_url:
        problems.append("SECBOT_ELASTICSEARCH_URL: required with SECBOT_SIEM=elastic")
    if problems:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems))
    try:
        parse_reaction_map(settings.reactions)
    except ValueError as exc:
        raise ConfigError(f"SECBOT_REACTIONS: {exc}") from exc
    if settings.auto_approve_hours:
        try:
            AutoApproveWindow.parse(settings.auto_approve_hours)
        except WindowError as exc:
            raise ConfigError(f"SECBOT_AUTO_APPROVE_HOURS: {exc}") from exc


def slack_client(settings: Settings, session: aiohttp.ClientSession) -> AsyncWebClient:
    """The Web API client. A shared ``session`` keeps connections alive between calls (without
    one, slack_sdk opens a new connection per request).

    Only 429 is retried inside the client: Slack did not act on a rate-limited call. A 5xx or
    a dropped connection may come *after* Slack posted the message, and a blind retry would
    post it twice; those failures surface instead, the poller retries the alert, and the
    publisher finds its earlier post (message metadata) before posting again.
    """
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        session=session,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=5)],
    )


async def build_slack_side(
    settings: Settings, web: AsyncWebClient, store: Store, siem: Siem, engine: EnrichmentEngine,
    rules: RuleSet | None = None, interactions: Interactions | None = None,
    escalation: EscalationParts | None = None,
    trust: TrustParts | None = None,
) -> tuple[AsyncSocketModeHandler, InteractiveParts]:
    """The bolt app and its Socket Mode handler (connected later by the service), and the
    interactive rooms' parts (asking, approvals) when ``rules`` and ``interactions`` are given."""
    bot = await web.auth_test()
    escalation = escalation or EscalationParts()
    after_change = escalation.mirror  # the destinations mirror every change (issue 13)
    triagers = Triagers(web, settings.triagers)  # one membership cache for emoji and commands
    changer = StatusChanger(
        web, siem, store, triagers, Directory(web), ttl=settings.alert_ttl,
        after_change=after_change, judge=trust.judge if trust else None,
    )
    reactions = ReactionTriage(
        changer,
        store,
        parse_reaction_map(settings.reactions),
        bot_user_id=str(bot.get("user_id") or ""),
    )
    investigator = Investigator(
        engine,
        siem,
        auth_indices=settings.auth_log_indices,
        lookback=timedelta(days=settings.locate_lookback_days),
    )
    interactive = InteractiveParts()
    if rules is not None and interactions is not None:
        interactive = build_interactive(settings, web, store, siem, rules,
                                        str(bot.get("user_id") or ""), interactions,
                                        outbox=escalation.after_post[0] if escalation.after_post
                                        else None, after_change=after_change)
    router = CommandRouter(investigator, status_command(changer), triagers, MemberStatus(changer),
                           respond=interactive.respond, stats=StatsCommand(siem),
                           escalator=escalation.hand)
    review = (review_reactions(trust, changer, web, rules, str(bot.get("user_id") or ""))
              if trust is not None and rules is not None else None)
    handlers = SlackHandlers(web, store, reactions, router, link_ttl=settings.alert_ttl,
                             review=review)
    assert settings.slack_bot_token is not None and settings.slack_app_token is not None
    app = build_app(web, handlers, actions=interactive.actions, views=interactive.views)
    socket = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value(),
                                    web_client=web)
    return socket, interactive


@dataclass(frozen=True)
class _Core:
    """The clients every other part is built on."""

    redis: aioredis.Redis
    store: Store
    siem: Siem
    own_store: AlertArchive | None
    sources: Mapping[str, IntakeSource]
    engine: EnrichmentEngine
    metrics: Metrics
    web: AsyncWebClient


def _build_core(settings: Settings, resources: Resources, store: Store | None, siem: Siem | None,
                enrichers: Mapping[str, Enricher] | None, own_store: AlertArchive | None) -> _Core:
    redis_client = aioredis.Redis.from_url(
        settings.redis_url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=2.0
    )
    resources.closers.append(redis_client.aclose)
    if siem is None:
        siem = build_siem(settings)
        resources.closers.append(siem.close)
    sources = intake_sources(settings)
    siem, own_store = with_own_store(settings, siem, sources, own_store, resources)
    if enrichers is None:
        built = build_enrichers(settings, redis=redis_client)
        resources.closers.append(built.aclose)
        enrichers = built
    metrics = Metrics()
    engine = EnrichmentEngine(
        enrichers, timeout=settings.enrich_timeout, observe=metrics.observe_enrichment
    )
    session = aiohttp.ClientSession()
    resources.closers.append(session.close)
    return _Core(redis=redis_client, store=store or RedisStore(redis_client, settings.redis_prefix),
                 siem=siem, own_store=own_store, sources=sources, engine=engine, metrics=metrics,
                 web=slack_client(settings, session))


def _build_publisher(settings: Settings, core: _Core, resources: Resources) -> SlackPublisher:
    publisher = SlackPublisher(
        core.web,
        core.store,
        ttl=settings.alert_ttl,
        pacer=ChannelPacer(rate=settings.slack_pace),
        group_threshold=settings.storm_threshold,
    )
    publisher.start()  # shows groups, resuming those a stopped process left half shown
    resources.closers.append(publisher.aclose)
    return publisher


async def build_service(
    settings: Settings,
    rules: RuleSet,
    *,
    store: Store | None = None,
    siem: Siem | None = None,
    enrichers: Mapping[str, Enricher] | None = None,
    own_store: AlertArchive | None = None,
    interactions: Interactions | None = None,
    report_clock: Callable[[], datetime] | None = None,
    trust_clock: Callable[[], datetime] | None = None,
) -> tuple[SecBotService, Resources]:
    """Build every client from ``settings`` and wire the service.

    ``store``, ``siem``, ``enrichers`` and ``own_store`` (mapped sources' alerts) may be given
    instead (the demo passes its embedded stores and stand-in enrichers); what is given is
    not closed by ``Resources``. ``report_clock``, ``trust_clock``: clocks for tests.
    """
    check_run_settings(settings)
    resources = Resources()
    core = _build_core(settings, resources, store, siem, enrichers, own_store)
    trust = build_trust(settings, trust_state_for(settings, core.redis, core.store), core.store,
                        clock=trust_clock)
    pipeline = Pipeline(
        rules, core.engine, core.store, default_channel=settings.default_channel,
        alert_ttl=settings.alert_ttl, expression_seconds=settings.expression_timeout,
        related=RelatedAlerts(core.siem, kibana_url=settings.kibana_url,
                              space=settings.kibana_space),
        gatekeeper=trust.gatekeeper,
    )
    publisher = _build_publisher(settings, core, resources)
    escalation = build_escalation(settings, core.redis, core.web, core.store, core.siem)
    resources.closers.extend(escalation.closers)
    socket, interactive = await build_slack_side(
        settings, core.web, core.store, core.siem, core.engine, rules,
        interactions or interactions_for(settings, core.redis), escalation=escalation,
        trust=trust)
    connect_trust(trust, core.web, core.store, core.siem, rules)
    handler = TriageHandler(
        pipeline, core.siem, core.store, publisher,
        # A claim lives as long as the lease: a replica killed mid-alert blocks that alert
        # for about as long as it blocks polling, not for minutes.
        claim_ttl=max(1, math.ceil(settings.lease_ttl)),
        posted_ttl=settings.alert_ttl,
        after_post=[*escalation.after_post, *interactive.after_post, *trust.after_post],
    )
    background = [*interactive.loops, *escalation.loops(), *trust.loops,
                  *report_loops(settings, core.siem, core.store, core.web, report_clock)]
    parts = _service_parts(settings, core, pipeline, handler, socket, escalation, background)
    return SecBotService(parts), resources


def _service_parts(settings: Settings, core: _Core, pipeline: Pipeline, handler: TriageHandler,
                   socket: AsyncSocketModeHandler, escalation: EscalationParts,
                   background: list[Callable[[], Coroutine[Any, Any, None]]]) -> ServiceParts:
    health = HealthState(
        socket_connected=socket_connected(socket),
        store_ping=core.store.ping,
        poll_stale_after=max(60.0, 10 * settings.poll_interval),
        destinations=escalation.states if escalation.enabled else None,
    )
    poller = AlertPoller(core.siem, core.store, overlap_seconds=settings.poll_overlap,
                         page_size=settings.poll_page_size,
                         partition=rule_partition(pipeline.matcher))
    return ServiceParts(
        poller=poller,
        handler=handler,
        socket=socket,
        health=health,
        metrics=core.metrics,
        poll_interval=settings.poll_interval,
        lease=LeaseKeeper(core.store, "poller", ttl=settings.lease_ttl),
        http_port=settings.http_port,
        intake=build_intake(settings, core.redis, core.sources, core.own_store, core.metrics,
                            escalation.jira_hook),
        background=background,
    )


def report_loops(settings: Settings, siem: Siem, store: Store, web: AsyncWebClient,
                 clock: Callable[[], datetime] | None) -> list[Callable[[], Coroutine[Any, Any,
                                                                                   None]]]:
    """The weekly statistics report when ``SECBOT_REPORT_CHANNEL`` is set (every replica
    checks; one posts, :mod:`secbot.stats.weekly`)."""
    if not settings.report_channel:
        return []
    weekly = WeeklyReport(siem, store, web, settings.report_channel,
                          owner=f"{socketlib.gethostname()}:{uuid.uuid4().hex[:8]}", clock=clock,
                          weekday=settings.report_weekday, hour=settings.report_hour)
    return [weekly.run]


__all__ = ["ConfigError", "Resources", "build_service", "build_siem", "build_slack_side",
           "check_run_settings", "report_loops", "slack_client"]
