"""The composition root: the one place that reads settings and builds clients.

Everything else receives what it needs. ``build_service`` returns the service and a
``Resources`` object that closes every client it built.
"""

from __future__ import annotations

import contextlib
import math
import socket as socketlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from secbot.ask.state import Interactions
from secbot.chat.app import SlackHandlers, build_app, status_command
from secbot.commands.investigate import Investigator
from secbot.commands.members import MemberStatus
from secbot.commands.router import CommandRouter
from secbot.commands.stats import StatsCommand
from secbot.domain.alert import Alert
from secbot.domain.errors import SecBotError
from secbot.enrich.base import Enricher
from secbot.enrich.engine import EnrichmentEngine
from secbot.intake.handoff import TriageHandler
from secbot.intake.jira_webhook import JiraHook
from secbot.intake.listener import IntakeConfig
from secbot.intake.poller import AlertPoller
from secbot.intake.queue import IntakeQueue
from secbot.intake.sources import ELASTIC, IntakeSource, SourceLoadError, load_sources
from secbot.pipeline.match import Matcher
from secbot.pipeline.pipeline import Pipeline
from secbot.pipeline.related import RelatedAlerts
from secbot.publish.pacing import ChannelPacer
from secbot.publish.slack import SlackPublisher
from secbot.respond.window import AutoApproveWindow, WindowError
from secbot.rules.ruleset import RuleSet
from secbot.runtime.enrichers import build_enrichers
from secbot.runtime.escalation import EscalationParts, build_escalation
from secbot.runtime.health import HealthState
from secbot.runtime.interactive import InteractiveParts, build_interactive, interactions_for
from secbot.runtime.lease import LeaseKeeper
from secbot.runtime.metrics import Metrics
from secbot.runtime.service import IntakeParts, SecBotService, ServiceParts, socket_connected
from secbot.runtime.settings import Settings
from secbot.runtime.siem_clients import build_elastic_siem
from secbot.runtime.trust import (
    TrustParts,
    build_trust,
    connect_trust,
    review_reactions,
    trust_state_for,
)
from secbot.siem.base import AlertArchive, Siem
from secbot.siem.embedded import EmbeddedSiem
from secbot.siem.own_elastic import ElasticAlertStore
from secbot.siem.own_embedded import EmbeddedAlertStore
from secbot.siem.routing import RoutingSiem
from secbot.stats.weekly import WeeklyReport
from secbot.store.base import Store
from secbot.store.redis import RedisStore
from secbot.triage.people import Directory, Triagers
from secbot.triage.reactions import ReactionTriage, parse_reaction_map
from secbot.triage.status_change import StatusChanger


class ConfigError(SecBotError):
    """Settings that validate alone but cannot run the service; names the variable."""


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


@dataclass
class Resources:
    """Clients the composition root built, closed in reverse order."""

    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                await closer()


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


def build_siem(settings: Settings) -> Siem:
    if settings.siem == "embedded":
        return EmbeddedSiem(settings.embedded_db)
    return build_elastic_siem(settings)


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


def intake_sources(settings: Settings) -> dict[str, IntakeSource]:
    """``elastic`` and the mapped sources of ``SECBOT_SOURCES_DIR`` (invalid: ConfigError)."""
    try:
        return load_sources(settings.sources_dir)
    except SourceLoadError as exc:
        raise ConfigError(f"SECBOT_SOURCES_DIR: invalid source mappings:\n{exc}") from exc


def build_own_store(settings: Settings) -> AlertArchive:
    """SecBot's own alerts store for mapped sources: beside the SIEM it is configured for
    (a table of the embedded SQLite file, or an index of the same Elasticsearch)."""
    if settings.siem == "embedded":
        return EmbeddedAlertStore(settings.embedded_db)
    if not settings.elasticsearch_url:
        raise ConfigError("SECBOT_ELASTICSEARCH_URL: required for the alerts store of mapped "
                          "sources with SECBOT_SIEM=elastic")
    key = settings.elasticsearch_api_key
    es = AsyncElasticsearch(settings.elasticsearch_url,
                            api_key=key.get_secret_value() if key else None,
                            request_timeout=10.0, max_retries=0, retry_on_timeout=False)
    return ElasticAlertStore(es)


def with_own_store(settings: Settings, siem: Siem, sources: Mapping[str, IntakeSource],
                   own_store: AlertArchive | None, resources: Resources
                   ) -> tuple[Siem, AlertArchive | None]:
    """The Siem the app uses: the SIEM alone, or, when mapped sources exist, a
    :class:`RoutingSiem` sending ``<source>:<id>`` alerts to the own store. Built whether or
    not this replica listens for pushes: every replica handles Slack reactions."""
    mapped = [name for name in sources if name != ELASTIC]
    if not mapped:
        return siem, None
    if own_store is None:
        own_store = build_own_store(settings)
        resources.closers.append(own_store.close)
    return RoutingSiem(siem, own_store, mapped), own_store


def build_intake(settings: Settings, redis_client: aioredis.Redis,
                 sources: Mapping[str, IntakeSource], archive: AlertArchive | None = None,
                 metrics: Metrics | None = None, jira: JiraHook | None = None
                 ) -> IntakeParts | None:
    """The push intake, or None when ``SECBOT_INTAKE_PORT=0`` or no token is configured
    (with no token every request would be refused: the port is not opened at all)."""
    if not settings.intake_port or not (settings.intake_tokens or jira):
        return None
    queue = IntakeQueue(redis_client, settings.redis_prefix,
                        reclaim_after=max(2.0, settings.lease_ttl))
    tokens = {name: secret.get_secret_value() for name, secret in settings.intake_tokens.items()}
    config = IntakeConfig(sources=sources, tokens=tokens, queue=queue,
                          max_bytes=settings.intake_max_bytes, rate=settings.intake_rate,
                          observe=metrics.observe_intake if metrics is not None else None,
                          jira=jira)
    return IntakeParts(config=config, port=settings.intake_port, archive=archive)


def rule_partition(matcher: Matcher) -> Callable[[Alert], str]:
    """Alerts of different rules are independent, so the poller may run them concurrently;
    one rule's alerts stay in order (its dedup threading and storm groups depend on it).
    The match made here is the one the pipeline uses (one ``match.when`` per alert)."""

    def key(alert: Alert) -> str:
        rule = matcher.peek(alert).rule
        return rule.id if rule is not None else ""

    return key


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
    not closed by ``Resources``. ``report_clock`` is the weekly report's clock (tests).
    """
    check_run_settings(settings)
    resources = Resources()
    redis_client = aioredis.Redis.from_url(
        settings.redis_url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=2.0
    )
    resources.closers.append(redis_client.aclose)
    store = store or RedisStore(redis_client, settings.redis_prefix)
    trust = build_trust(settings, trust_state_for(settings, redis_client, store), store,
                        clock=trust_clock)
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
    web = slack_client(settings, session)
    pipeline = Pipeline(
        rules, engine, store, default_channel=settings.default_channel,
        alert_ttl=settings.alert_ttl, expression_seconds=settings.expression_timeout,
        related=RelatedAlerts(siem, kibana_url=settings.kibana_url, space=settings.kibana_space),
        gatekeeper=trust.gatekeeper,
    )
    publisher = SlackPublisher(
        web,
        store,
        ttl=settings.alert_ttl,
        pacer=ChannelPacer(rate=settings.slack_pace),
        group_threshold=settings.storm_threshold,
    )
    publisher.start()  # shows groups, resuming those a stopped process left half shown
    resources.closers.append(publisher.aclose)
    escalation = build_escalation(settings, redis_client, web, store, siem)
    resources.closers.extend(escalation.closers)
    socket, interactive = await build_slack_side(
        settings, web, store, siem, engine, rules,
        interactions or interactions_for(settings, redis_client), escalation=escalation,
        trust=trust)
    connect_trust(trust, web, store, siem, rules)
    health = HealthState(
        socket_connected=socket_connected(socket),
        store_ping=store.ping,
        poll_stale_after=max(60.0, 10 * settings.poll_interval),
        destinations=escalation.states if escalation.enabled else None,
    )
    parts = ServiceParts(
        poller=AlertPoller(
            siem,
            store,
            overlap_seconds=settings.poll_overlap,
            page_size=settings.poll_page_size,
            partition=rule_partition(pipeline.matcher),
        ),
        # A claim lives as long as the lease: a replica killed mid-alert blocks that alert
        # for about as long as it blocks polling, not for minutes.
        handler=TriageHandler(
            pipeline,
            siem,
            store,
            publisher,
            claim_ttl=max(1, math.ceil(settings.lease_ttl)),
            posted_ttl=settings.alert_ttl,
            after_post=[*escalation.after_post, *interactive.after_post, *trust.after_post],
        ),
        socket=socket,
        health=health,
        metrics=metrics,
        poll_interval=settings.poll_interval,
        lease=LeaseKeeper(store, "poller", ttl=settings.lease_ttl),
        http_port=settings.http_port,
        intake=build_intake(settings, redis_client, sources, own_store, metrics,
                            escalation.jira_hook),
        background=[*interactive.loops, *escalation.loops(), *trust.loops,
                    *report_loops(settings, siem, store, web, report_clock)],
    )
    return SecBotService(parts), resources


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
