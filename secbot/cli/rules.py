"""``secbot rules validate | test | backtest | schema``."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from secbot.cli.common import fail
from secbot.offline.backtest import BacktestInputError, BacktestReport, backtest
from secbot.offline.rule_tests import rules_without_tests, run_rule_tests
from secbot.review.trust import expiry_warnings
from secbot.rules.lists import NamedLists, lists_dir_beside, validate_lists
from secbot.rules.loader import RuleLoadError, RuleProblem, load_rules, validate_rules
from secbot.rules.ruleset import RuleSet
from secbot.rules.schema import rule_json_schema
from secbot.runtime.settings import Settings, SettingsError, load_settings

#: Destination names ``escalate`` may always use in ``rules validate``: the built-ins. A
#: reviewer in CI has no PagerDuty or Jira credentials, yet a misspelt name must still fail.
BUILTIN_DESTINATIONS = frozenset({"pagerduty", "jira"})


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))


def known_destinations(settings: Settings) -> frozenset[str]:
    """What ``escalate`` entries may name: the built-ins and the SECBOT_WEBHOOKS names."""
    return BUILTIN_DESTINATIONS | frozenset(settings.webhooks)


def _lists(option: Path | None, rules_dir: Path) -> tuple[Path, NamedLists, list[RuleProblem]]:
    directory = option if option is not None else lists_dir_beside(_settings().lists_dir,
                                                                   rules_dir)
    lists, problems = validate_lists(directory)
    return directory, lists, problems


def _load_or_exit(directory: Path, lists_dir: Path | None) -> RuleSet:
    _, lists, problems = _lists(lists_dir, directory)
    try:
        if problems:
            raise RuleLoadError(problems)
        return load_rules(directory, lists=lists)
    except RuleLoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise typer.Exit(1) from exc


def _warnings(ruleset: RuleSet) -> list[str]:
    """``path:line: warning: message`` lines: printed, never counted as problems."""
    return [*(f"{rule.path}:1: warning: rule {rule.id!r} lacks a positive or a negative test"
              for rule in rules_without_tests(ruleset)),
            *expiry_warnings(ruleset, datetime.now(UTC).date())]  # 14 days ahead (issue 15)


def validate_command(directory: Path, lists_dir: Path | None) -> None:
    """``secbot rules validate`` (options and help text: :mod:`secbot.cli.entry`)."""
    where, lists, problems = _lists(lists_dir, directory)
    ruleset, rule_problems = validate_rules(
        directory, lists=lists, destinations=known_destinations(_settings()))
    problems = [*problems, *rule_problems]
    for problem in problems:
        print(problem)
    for warning in _warnings(ruleset):
        print(warning)
    if problems:
        print(f"{len(problems)} problem(s) in {directory} and {where}", file=sys.stderr)
        raise typer.Exit(1)
    print(f"{len(ruleset)} rules OK, {len(lists)} lists OK")


def test_command(directory: Path, default_channel: str | None, lists_dir: Path | None
                 ) -> None:
    """``secbot rules test`` (options and help text: :mod:`secbot.cli.entry`)."""
    ruleset = _load_or_exit(directory, lists_dir)
    outcomes = asyncio.run(run_rule_tests(ruleset, default_channel=default_channel))
    for outcome in outcomes:
        mark = "PASS" if outcome.passed else "FAIL"
        print(f"{mark} {outcome.rule_id}: {outcome.name}")
        for failure in outcome.failures:
            print(f"     {outcome.path}: {failure}")
    passed = sum(o.passed for o in outcomes)
    failed = len(outcomes) - passed
    print(f"{passed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


def _print_table(report: BacktestReport) -> None:
    table = Table(title=f"Backtest over {report.alerts} alerts")
    for column in (
        "rule",
        "matched",
        "deduplicated",
        "would auto-close",
        "would escalate",
        "would post",
        "humans closed too",
        "risky auto-closes",
    ):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for stats in report.rules.values():
        table.add_row(
            stats.rule_id,
            str(stats.matched),
            str(stats.deduplicated),
            str(stats.would_auto_close),
            str(stats.would_escalate),
            str(stats.would_post),
            str(stats.humans_closed_too),
            str(len(stats.risky_auto_closes)),
        )
    console = Console(width=max(140, Console().width))
    console.print(table)
    for stats in report.rules.values():
        if stats.would_send:
            sent = ", ".join(f"{name} {count}" for name, count in sorted(stats.would_send.items()))
            console.print(f"would escalate: {stats.rule_id} → {sent}", markup=False)
    for stats in report.rules.values():
        for uuid in stats.risky_auto_closes:
            console.print(
                f"risky auto-close: {stats.rule_id} would close {uuid} "
                "(humans kept it open/acknowledged)",
                markup=False,
            )


def backtest_command(alerts: Path, directory: Path, *, as_json: bool, lists_dir: Path | None
                     ) -> None:
    """``secbot rules backtest`` (options and help text: :mod:`secbot.cli.entry`)."""
    ruleset = _load_or_exit(directory, lists_dir)
    if not alerts.is_file():
        fail(f"{alerts}: no such alerts file")
    try:
        report = asyncio.run(backtest(ruleset, alerts))
    except BacktestInputError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_table(report)


def schema_command() -> None:
    """``secbot rules schema``: the JSON Schema of rule files."""
    print(json.dumps(rule_json_schema(), indent=2))
