"""The repository's shipped rules with their named lists, as `secbot run` loads them."""

from __future__ import annotations

from pathlib import Path

from secbot.rules.lists import load_lists
from secbot.rules.loader import load_rules
from secbot.rules.ruleset import RuleSet

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "rules"
LISTS_DIR = REPO / "lists"


def shipped_rules() -> RuleSet:
    """``rules/`` compiled with ``lists/`` (their ``inList`` calls name those lists)."""
    return load_rules(RULES_DIR, lists=load_lists(LISTS_DIR))
