"""Wiring of the intake side: alert sources, SecBot's own alerts store for mapped sources,
the push listener and the poller's rule partition (used by :mod:`secbot.runtime.wiring`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import redis.asyncio as aioredis

from secbot.domain.alert import Alert
from secbot.intake.jira_webhook import JiraHook
from secbot.intake.listener import IntakeConfig
from secbot.intake.queue import IntakeQueue
from secbot.intake.sources import ELASTIC, IntakeSource, SourceLoadError, load_sources
from secbot.pipeline.match import Matcher
from secbot.runtime.errors import ConfigError
from secbot.runtime.metrics import Metrics
from secbot.runtime.resources import Resources
from secbot.runtime.service import IntakeParts
from secbot.runtime.settings import Settings
from secbot.runtime.siem_clients import build_own_store
from secbot.siem.base import AlertArchive, Siem
from secbot.siem.routing import RoutingSiem


def intake_sources(settings: Settings) -> dict[str, IntakeSource]:
    """``elastic`` and the mapped sources of ``SECBOT_SOURCES_DIR`` (invalid: ConfigError)."""
    try:
        return load_sources(settings.sources_dir)
    except SourceLoadError as exc:
        raise ConfigError(f"SECBOT_SOURCES_DIR: invalid source mappings:\n{exc}") from exc


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
