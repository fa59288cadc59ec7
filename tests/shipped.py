"""The repository's shipped rules with their named lists, as `secbot run` loads them."""

from __future__ import annotations

from pathlib import Path

from secbot.rules.lists import load_lists
from secbot.rules.loader import load_rules
from secbot.rules.ruleset import RuleSet

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "rules"
LISTS_DIR = REPO / "lists"

#: The environment a ``secbot run`` process needs for the shipped rules: ``rules/`` with the
#: ``lists/`` their ``inList`` calls name; and, because the shipped rules escalate to
#: pagerduty and jira and ``secbot run`` refuses rules naming a destination that is not
#: configured, both destinations at a port nothing listens on (an escalated alert's page waits
#: in the outbox; nothing else changes).
SHIPPED_RUN_ENV: dict[str, str] = {
    "SECBOT_RULES_DIR": str(RULES_DIR),
    "SECBOT_LISTS_DIR": str(LISTS_DIR),
    "SECBOT_PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9",
    "SECBOT_PAGERDUTY_ROUTING_KEY": "R0UT1NGKEY0000000000000000000000",
    "SECBOT_JIRA_URL": "http://127.0.0.1:9",
    "SECBOT_JIRA_EMAIL": "secbot@example.com",
    "SECBOT_JIRA_API_TOKEN": "jira-token-unused",
    "SECBOT_JIRA_PROJECT": "SEC",
}


def shipped_rules() -> RuleSet:
    """``rules/`` compiled with ``lists/`` (their ``inList`` calls name those lists)."""
    return load_rules(RULES_DIR, lists=load_lists(LISTS_DIR))
