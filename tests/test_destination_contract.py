"""One contract for the three destinations, built the way production builds them (settings →
``build_destinations``) and pointed at their stand-ins over real HTTP:

- ``open`` gives a receipt, and opening the same alert again changes nothing the service's user
  would see twice (one page, one issue, one delivery);
- ``update`` after ``open`` shows the new status there (page resolved, issue Done, status body);
- 429 / 5xx / a refused connection are retryable (with ``Retry-After``); 400 / 401 are not.

Then what each destination must get right on its own: PagerDuty's event shape, Jira's label,
comment and missing transition, the webhook's signature and idempotency key.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from secbot.destinations.base import (
    Destination,
    DestinationError,
    EscalationRequest,
    Link,
    Receipt,
    StatusUpdate,
)
from secbot.destinations.jira import label_for
from secbot.runtime.destinations import build_destinations, destination_client
from secbot.runtime.settings import load_settings
from secbot_emulators.jira import JiraStandIn
from secbot_emulators.pagerduty_events import DEFAULT_ROUTING_KEY, PagerDutyEvents
from secbot_emulators.providers_http import REFUSED_URL
from secbot_emulators.standin_http import StandIn
from secbot_emulators.webhook_receiver import WebhookReceiver

UUID = "6c1f0e8a-8f25-4d8a-9a51-1c2b3d4e5f60"
SECRET = "whsec-0123456789abcdef"
PERMALINK = "https://example.slack.com/archives/C0SEC/p1700000000000100"


def request(uuid: str = UUID, severity: str = "critical") -> EscalationRequest:
    return EscalationRequest(
        alert_uuid=uuid, rule_id="okta_vip_login", title="VIP sign-in from a new country",
        summary="VIP sign-in from a new country: ceo@example.com from 203.0.113.9",
        severity=severity, kind="page", source="elastic",
        details={"user.email": "ceo@example.com", "source.ip": "203.0.113.9"},
        links=(Link("Slack", PERMALINK), Link("Kibana", "http://kibana.local/app/security")),
        why="escalate[0]: user is in list vips")


@dataclass
class Case:
    """A destination and its stand-in, and how to read what a user of that service sees."""

    name: str
    server: StandIn
    settings: Callable[[str], dict[str, Any]]
    opened: Callable[[Any, str], int]  # how many pages / issues / deliveries for the alert
    closed: Callable[[Any, str], bool]  # the alert's page/issue shows it closed
    refuse: Callable[[Any], dict[str, Any]]  # settings that make the service refuse (400/401)


def _webhooks(url: str) -> dict[str, Any]:
    return {"webhooks": {"xsoar": {"url": f"{url}/incident", "secret": SECRET}}}


def _webhook_closed(server: WebhookReceiver, uuid: str) -> bool:
    return any(d.json()["type"] == "SecBot status" and str(d.headers.get("Idempotency-Key"))
               .startswith(f"{uuid}:status:closed") for d in server.deliveries)


CASES = {
    "pagerduty": lambda: Case(
        "pagerduty", PagerDutyEvents(),
        lambda url: {"pagerduty_events_url": url, "pagerduty_routing_key": DEFAULT_ROUTING_KEY},
        lambda s, uuid: sum(1 for k in s.incidents if k == uuid) and s.pages,
        lambda s, uuid: s.state(uuid) == "resolved",
        lambda s: {"pagerduty_routing_key": "tooshort"}),
    "jira": lambda: Case(
        "jira", JiraStandIn(),
        lambda url: {"jira_url": url, "jira_email": "secbot@example.com",
                     "jira_api_token": "jira-token-123", "jira_project": "SEC"},
        lambda s, uuid: len(s.by_label(label_for(uuid))),
        lambda s, uuid: all(i.status == "Done" for i in s.by_label(label_for(uuid))),
        lambda s: {"jira_api_token": "wrong-token"}),
    "xsoar": lambda: Case(
        "xsoar", WebhookReceiver(), _webhooks,
        lambda s, uuid: sum(1 for k in s.unique() if k == f"{uuid}:open"),
        _webhook_closed,
        lambda s: {}),
}


@dataclass
class Built:
    case: Case
    destination: Destination
    client: httpx.AsyncClient

    def rebuild(self, **overrides: Any) -> Destination:
        options = {**self.case.settings(self.case.server.url), **overrides}
        return build_destinations(load_settings(**options), self.client)[self.case.name]


@pytest.fixture(params=sorted(CASES))
async def built(request: pytest.FixtureRequest) -> AsyncIterator[Built]:
    case: Case = CASES[request.param]()
    async with case.server.serving():
        settings = load_settings(**case.settings(case.server.url))
        async with destination_client(settings) as client:
            destinations = build_destinations(settings, client)
            assert set(destinations) == {case.name}
            yield Built(case, destinations[case.name], client)


async def test_open_gives_a_receipt_and_is_idempotent(built: Built) -> None:
    first = await built.destination.open(request())
    again = await built.destination.open(request())
    assert isinstance(first, Receipt) and first.destination == built.case.name
    assert first.reference == again.reference and first.text
    assert built.case.opened(built.case.server, UUID) == 1


async def test_update_after_open_closes_it_there(built: Built) -> None:
    receipt = await built.destination.open(request())
    update = StatusUpdate(UUID, "closed", "benign_positive", "U0TRIAGER")
    await built.destination.update(update, receipt)
    await built.destination.update(update, receipt)  # a repeat after a crash is harmless
    assert built.case.closed(built.case.server, UUID)
    assert built.case.opened(built.case.server, UUID) == 1


@pytest.mark.parametrize("status", [429, 502, 503])
async def test_throttling_and_server_errors_are_retryable(built: Built, status: int) -> None:
    built.case.server.fail_next(status, retry_after=7)
    with pytest.raises(DestinationError) as caught:
        await built.destination.open(request())
    assert caught.value.retryable and caught.value.retry_after == 7
    assert built.case.opened(built.case.server, UUID) == 0
    await built.destination.open(request())  # and it works once the service is back
    assert built.case.opened(built.case.server, UUID) == 1


async def test_refused_requests_are_permanent(built: Built) -> None:
    overrides = built.case.refuse(built.case.server)
    destination = built.rebuild(**overrides) if overrides else built.destination
    if not overrides:
        built.case.server.fail_next(400)
    with pytest.raises(DestinationError) as caught:
        await destination.open(request())
    assert not caught.value.retryable
    assert str(caught.value).startswith(("PagerDuty", "Jira", "Webhook"))


async def test_a_refused_connection_is_retryable(built: Built) -> None:
    name = built.case.name
    url_key = {"pagerduty": "pagerduty_events_url", "jira": "jira_url"}.get(name)
    overrides = ({url_key: REFUSED_URL} if url_key else
                 {"webhooks": {"xsoar": {"url": REFUSED_URL, "secret": SECRET}}})
    with pytest.raises(DestinationError) as caught:
        await built.rebuild(**overrides).open(request())
    assert caught.value.retryable


# --- PagerDuty -----------------------------------------------------------------------------


async def test_pagerduty_trigger_has_the_documented_shape() -> None:
    async with PagerDutyEvents().serving() as pd:
        settings = load_settings(pagerduty_events_url=pd.url,
                                 pagerduty_routing_key=DEFAULT_ROUTING_KEY)
        async with destination_client(settings) as client:
            page = build_destinations(settings, client)["pagerduty"]
            receipt = await page.open(request(severity="high"))
            await page.update(StatusUpdate(UUID, "acknowledged", None, "U0TRIAGER"), receipt)
            assert pd.state(UUID) == "acknowledged"
    event = pd.events[0]
    assert event["event_action"] == "trigger" and event["dedup_key"] == UUID
    assert event["payload"]["severity"] == "error"  # PagerDuty has no "high"
    assert event["payload"]["source"] == "elastic"
    assert event["payload"]["custom_details"]["user.email"] == "ceo@example.com"
    assert {"href": PERMALINK, "text": "Slack"} in event["links"]
    assert pd.events[1] == {"routing_key": DEFAULT_ROUTING_KEY,
                            "event_action": "acknowledge", "dedup_key": UUID}
    assert receipt.text == "🚨 paged"


async def test_pagerduty_400_names_what_was_invalid() -> None:
    async with PagerDutyEvents().serving() as pd:
        settings = load_settings(pagerduty_events_url=pd.url,
                                 pagerduty_routing_key="X" * 31)
        async with destination_client(settings) as client:
            with pytest.raises(DestinationError) as caught:
                await build_destinations(settings, client)["pagerduty"].open(request())
    assert "HTTP 400" in str(caught.value) and "routing_key" in str(caught.value)
    assert "X" * 31 not in str(caught.value) or "routing_key" in str(caught.value)


# --- Jira ------------------------------------------------------------------------------------


def _jira_settings(url: str, **extra: Any) -> Any:
    return load_settings(jira_url=url, jira_email="secbot@example.com",
                         jira_api_token="jira-token-123", jira_project="SEC", **extra)


async def test_jira_issue_is_labelled_commented_and_linked() -> None:
    async with JiraStandIn().serving() as jira:
        settings = _jira_settings(jira.url)
        async with destination_client(settings) as client:
            receipt = await build_destinations(settings, client)["jira"].open(request())
    issue = jira.issues["SEC-1"]
    assert f"secbot-{UUID}" in issue.fields["labels"]
    assert receipt.text == "Jira SEC-1" and receipt.url == f"{jira.url}/browse/SEC-1"
    assert len(issue.comments) == 1 and PERMALINK in json.dumps(issue.comments[0]["body"])
    assert ("GET", "/rest/api/3/search/jql") in jira.requests
    assert ("GET", "/rest/api/3/search") not in jira.requests


async def test_jira_missing_transition_is_a_clear_permanent_error() -> None:
    async with JiraStandIn().serving() as jira:
        jira.transitions = {"11": "To Do", "41": "Resolve"}
        settings = _jira_settings(jira.url, jira_close_transition="Close")
        async with destination_client(settings) as client:
            destination = build_destinations(settings, client)["jira"]
            receipt = await destination.open(request())
            with pytest.raises(DestinationError) as caught:
                await destination.update(StatusUpdate(UUID, "closed", None, "x"), receipt)
    assert not caught.value.retryable
    assert "no transition named 'Close'" in str(caught.value) and "'Resolve'" in str(caught.value)


async def test_jira_404_is_permanent() -> None:
    async with JiraStandIn().serving() as jira:
        settings = _jira_settings(jira.url)
        async with destination_client(settings) as client:
            destination = build_destinations(settings, client)["jira"]
            gone = Receipt("jira", "SEC-999", "Jira SEC-999")
            with pytest.raises(DestinationError) as caught:
                await destination.update(StatusUpdate(UUID, "closed", None, "x"), gone)
    assert not caught.value.retryable and "HTTP 404" in str(caught.value)


# --- webhooks --------------------------------------------------------------------------------


async def test_webhook_is_signed_over_the_exact_body_with_a_stable_key() -> None:
    async with WebhookReceiver().serving() as hook:
        settings = load_settings(**_webhooks(hook.url))
        async with destination_client(settings) as client:
            destination = build_destinations(settings, client)["xsoar"]
            receipt = await destination.open(request())
            await destination.open(request())
            await destination.update(StatusUpdate(UUID, "closed", "false_positive", "U1"),
                                     receipt)
    first, repeat, status = hook.deliveries
    assert all(d.verifies(SECRET) for d in hook.deliveries)
    assert not first.verifies("another-secret")
    assert first.headers["Idempotency-Key"] == repeat.headers["Idempotency-Key"] == f"{UUID}:open"
    body = first.json()
    assert set(body) == {"name", "type", "severity", "details", "labels", "rawJSON"}
    assert body["severity"] == 4 and {"type": "secbot_uuid", "value": UUID} in body["labels"]
    assert json.loads(body["rawJSON"])["alert_uuid"] == UUID
    assert status.json()["type"] == "SecBot status"
    assert {"type": "status", "value": "closed"} in status.json()["labels"]
    assert receipt.text == "sent to xsoar"


async def test_webhook_close_reopen_close_are_three_keys_and_a_retry_keeps_its_key() -> None:
    """A SOAR de-duplicating by Idempotency-Key must see the second close (after a reopen),
    and must not see a retried delivery of one change as new."""
    async with WebhookReceiver().serving() as hook:
        settings = load_settings(**_webhooks(hook.url))
        async with destination_client(settings) as client:
            destination = build_destinations(settings, client)["xsoar"]
            receipt = await destination.open(request())
            for status, at in (("closed", 100.0), ("closed", 100.0), ("open", 200.0),
                               ("closed", 300.0)):
                await destination.update(StatusUpdate(UUID, status, None, "U1", at), receipt)
    keys = [d.headers["Idempotency-Key"] for d in hook.deliveries[1:]]
    assert keys[0] == keys[1] == f"{UUID}:status:closed:100000"  # the retry
    assert keys[2] == f"{UUID}:status:open:200000"
    assert keys[3] == f"{UUID}:status:closed:300000" != keys[0]  # the second close is new


def test_destination_secrets_are_redacted_once_registered() -> None:
    from secbot.domain.secrets import forget_secrets, redact
    from secbot.runtime.logs import register_settings_secrets

    settings = load_settings(webhooks={"xsoar": {"url": "https://soar.example/x",
                                                 "secret": "whsec-very-secret"}},
                             jira_webhook_secret="jira-hook-secret",
                             pagerduty_routing_key=DEFAULT_ROUTING_KEY,
                             jira_api_token="jira-api-token-1")
    try:
        register_settings_secrets(settings)
        text = redact(f"whsec-very-secret jira-hook-secret {DEFAULT_ROUTING_KEY} "
                      "jira-api-token-1")
    finally:
        forget_secrets()
    assert text == " ".join(["[REDACTED]"] * 4)
