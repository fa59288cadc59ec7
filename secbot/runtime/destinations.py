"""Destinations and the outbox from settings (part of the composition root).

PagerDuty is configured when ``SECBOT_PAGERDUTY_ROUTING_KEY`` is set; Jira when
``SECBOT_JIRA_URL``, ``SECBOT_JIRA_EMAIL``, ``SECBOT_JIRA_API_TOKEN`` and ``SECBOT_JIRA_PROJECT``
all are; every ``SECBOT_WEBHOOKS`` entry is one destination by its name.
"""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis

from secbot.destinations.base import Destination
from secbot.destinations.jira import JiraDestination
from secbot.destinations.jobs import OutcomeSink
from secbot.destinations.outbox import Outbox, OutboxWorker
from secbot.destinations.pagerduty import PagerDutyDestination
from secbot.destinations.redis_outbox import RedisOutboxStore
from secbot.destinations.webhook import WebhookDestination
from secbot.runtime.settings import Settings

#: Seconds for one destination call: the outbox retries, so a slow service costs one lease.
CALL_TIMEOUT = 10.0


def destination_client(settings: Settings) -> httpx.AsyncClient:
    """One pooled client for every destination (no redirects: a 3xx is an error to see).
    A call never outlives half the outbox lease, so a live worker's job is never retried
    by another while it still waits for an answer."""
    timeout = min(CALL_TIMEOUT, settings.outbox_lease / 2)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
                             follow_redirects=False,
                             headers={"User-Agent": "SecBot (+destinations)"})


def configured_destinations(settings: Settings) -> frozenset[str]:
    """The names rules may use in ``escalate`` (``page:`` / ``ticket:``)."""
    names = set(settings.webhooks)
    if settings.pagerduty_routing_key is not None:
        names.add("pagerduty")
    if (settings.jira_url and settings.jira_email and settings.jira_api_token is not None
            and settings.jira_project):
        names.add("jira")
    return frozenset(names)


def build_destinations(settings: Settings, client: httpx.AsyncClient) -> dict[str, Destination]:
    names = configured_destinations(settings)
    built: dict[str, Destination] = {
        name: WebhookDestination(client, name, str(target.url),
                                 target.secret.get_secret_value())
        for name, target in settings.webhooks.items()
    }
    if "pagerduty" in names and settings.pagerduty_routing_key is not None:
        built["pagerduty"] = PagerDutyDestination(
            client, settings.pagerduty_events_url,
            settings.pagerduty_routing_key.get_secret_value())
    if "jira" in names and settings.jira_api_token is not None:
        assert settings.jira_url and settings.jira_email and settings.jira_project
        built["jira"] = JiraDestination(
            client, settings.jira_url, settings.jira_email,
            settings.jira_api_token.get_secret_value(), settings.jira_project,
            issue_type=settings.jira_issue_type, close_transition=settings.jira_close_transition)
    return built


def build_outbox(settings: Settings, redis_client: aioredis.Redis,
                 destinations: dict[str, Destination], sink: OutcomeSink | None,
                 ) -> tuple[Outbox, OutboxWorker]:
    """The outbox (enqueue side) and its worker; a dead worker's job is retried once its
    lease (``SECBOT_OUTBOX_LEASE``) runs out."""
    store = RedisOutboxStore(redis_client, settings.redis_prefix, keep=settings.alert_ttl)
    outbox = Outbox(store, frozenset(destinations))
    worker = OutboxWorker(outbox, destinations, sink,
                          lease=settings.outbox_lease)
    return outbox, worker


__all__ = ["build_destinations", "build_outbox", "configured_destinations",
           "destination_client"]
