"""``secbot rules trust [DIR] [--json] [--restore RULE]``: how far each auto-close rule can be
trusted, from what SecBot recorded in Redis (``SECBOT_REDIS_URL``, ``SECBOT_REDIS_PREFIX``).

``--json`` prints one document ``{"promote_after", "rules": [{"rule", "mode", "held",
"expires", "decisions", "agreements", "disagreements", "disagreement_alerts": [{"alert",
"link", "why", "by"}], "precision", "promote_suggested"}]}``, like ``secbot stats --json``.
``--restore RULE`` lifts a demotion by review (the rule enforces again unless its own mode
or expiry says shadow).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
import typer

from secbot.cli.common import fail, settings_or_exit
from secbot.review.state import RedisTrustState
from secbot.review.trust import report_json, report_text, trust_report
from secbot.rules.lists import validate_lists
from secbot.rules.loader import RuleLoadError, load_rules
from secbot.rules.ruleset import RuleSet
from secbot.runtime.settings import Settings
from secbot.store.base import StoreUnavailable


async def _run(settings: Settings, rules: RuleSet, as_json: bool, restore: str | None) -> str:
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True,
                                     socket_timeout=5.0, socket_connect_timeout=2.0)
    state = RedisTrustState(client, settings.redis_prefix)
    try:
        if restore is not None:
            done = await state.restore(restore)
            return (f"{restore}: demotion lifted" if done else
                    f"{restore}: was not demoted")
        rows = await trust_report(state, rules, today=datetime.now(UTC).date(),
                                  promote_after=settings.trust_promote_after)
    finally:
        await client.aclose()
    if as_json:
        return json.dumps(report_json(rows, settings.trust_promote_after))
    return report_text(rows, settings.trust_promote_after)


def trust_command(directory: Path, *, as_json: bool, restore: str | None,
                  config: Path | None) -> None:
    """``secbot rules trust`` (options and help text: :mod:`secbot.cli.entry`)."""
    settings = settings_or_exit(config)
    lists, problems = validate_lists(settings.lists_dir)
    try:
        if problems:
            raise RuleLoadError(problems)
        rules = load_rules(directory, lists=lists)
    except RuleLoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise typer.Exit(1) from exc
    if restore is not None and rules.by_id(restore) is None:
        fail(f"{restore}: no such rule in {directory}")
    try:
        print(asyncio.run(_run(settings, rules, as_json, restore)))
    except StoreUnavailable as exc:
        fail(f"cannot read the trust state: {exc}")


__all__ = ["trust_command"]
