"""The demo's destinations: the PagerDuty Events v2 and Jira stand-ins, started beside the Slack
emulator so the shipped rules' ``escalate`` entries really page and ticket (issue 13).

Terminated Bob's and VIP Carol's alerts match ``escalate`` entries in
``rules/okta_login_new_country.yaml`` and ``rules/gcp_sa_key_created.yaml``: the outbox calls
the stand-ins over HTTP exactly as it calls PagerDuty and Jira, and the message gets its
``🚨 paged · Jira SEC-1`` line. The stand-ins' own pages (incidents at ``/``, issues at
``/browse/<key>`` and ``/issues/``) are linked from the demo page's header.

Destinations need Redis (the outbox is a Redis structure): without it the demo runs without
them and says so, as it does for the push intake.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from secbot_emulators.jira import JiraStandIn
from secbot_emulators.pagerduty_events import PagerDutyEvents

JIRA_PROJECT = "SEC"
JIRA_EMAIL = "secbot-demo@example.com"


@dataclass(frozen=True)
class DemoDestinations:
    """The running stand-ins (None when the demo has no Redis for the outbox)."""

    pagerduty: PagerDutyEvents | None = None
    jira: JiraStandIn | None = None

    def settings(self) -> dict[str, Any]:
        """The settings update that points SecBot at the stand-ins, or turns destinations
        off (a developer's exported ``SECBOT_PAGERDUTY_ROUTING_KEY`` must not page from a
        demo)."""
        if self.pagerduty is None or self.jira is None:
            return {"pagerduty_routing_key": None, "jira_api_token": None, "jira_url": None,
                    "webhooks": {}}
        email, token = self.jira.credentials
        return {
            "pagerduty_events_url": self.pagerduty.events_url,
            "pagerduty_routing_key": SecretStr(self.pagerduty.routing_key),
            "jira_url": self.jira.url,
            "jira_email": email,
            "jira_api_token": SecretStr(token),
            "jira_project": JIRA_PROJECT,
            # The stand-in's own workflow, whatever a developer's environment says.
            "jira_issue_type": "Task",
            "jira_close_transition": "Done",
            "jira_webhook_secret": None,
            "webhooks": {},
        }

    def links(self) -> dict[str, str]:
        """Header links of the demo page: label → the stand-in's page."""
        if self.pagerduty is None or self.jira is None:
            return {}
        return {"PagerDuty incidents": f"{self.pagerduty.url}/",
                "Jira issues": f"{self.jira.url}/issues/"}


@contextlib.asynccontextmanager
async def demo_destinations(enabled: bool) -> AsyncIterator[DemoDestinations]:
    """The two stand-ins on ephemeral ports (fresh credentials per run), stopped on exit."""
    if not enabled:
        yield DemoDestinations()
        return
    # 32 characters, like a real integration key; a fresh one per run.
    routing_key = secrets.token_hex(16)
    jira = JiraStandIn(email=JIRA_EMAIL, token=secrets.token_urlsafe(18),
                       projects=(JIRA_PROJECT,))
    async with PagerDutyEvents(routing_key).serving() as pagerduty, jira.serving():
        yield DemoDestinations(pagerduty=pagerduty, jira=jira)


__all__ = ["JIRA_PROJECT", "DemoDestinations", "demo_destinations"]
