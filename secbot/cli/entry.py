"""The ``secbot`` commands as typer sees them: names, options, help texts (DESIGN.md §3).

Each command here is a thin wrapper that imports its implementation when it runs: importing
them all up front (slack_bolt, elasticsearch, the Google clients, pydantic settings) cost
about a second before ``secbot --help`` or ``secbot stats`` did anything. This module imports
typer and the standard library only; the help texts live here, once, and the implementations
(``secbot/cli/<command>.py``) take plain arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML settings file")]
DirArg = Annotated[Path, typer.Argument(help="rules directory")]
ListsOpt = Annotated[
    Path | None,
    typer.Option("--lists", help="named lists directory (default: SECBOT_LISTS_DIR, 'lists')"),
]

app = typer.Typer(
    name="secbot",
    no_args_is_help=True,
    add_completion=False,
    help="Triage Elastic Security alerts from Slack.",
)
rules_app = typer.Typer(no_args_is_help=True, help="Validate, test and backtest rule files.")
app.add_typer(rules_app, name="rules")


@app.command("run")
def run_command(config: ConfigOpt = None) -> None:
    """The service: Socket Mode app, SIEM poller and pipeline in one asyncio process."""
    from secbot.cli import service

    service.run_command(config)


@app.command("demo")
def demo_command(
    config: ConfigOpt = None,
    rules: Annotated[Path | None, typer.Option(help="rules directory")] = None,
    count: Annotated[int, typer.Option(min=1, max=10_000, help="alerts to seed")] = 24,
    port: Annotated[int, typer.Option(help="port of the Slack emulator and its page")] = 8089,
    interval: Annotated[float, typer.Option(help="seconds between new alerts")] = 5.0,
    duration: Annotated[float | None, typer.Option(help="stop after N seconds")] = None,
    console_mode: Annotated[
        bool, typer.Option("--console", help="print to the terminal instead of the web page")
    ] = False,
    follow: Annotated[bool, typer.Option(help="with --console: keep generating alerts")] = False,
    show_messages: Annotated[bool, typer.Option(help="with --console: print texts")] = False,
) -> None:
    """The main job on embedded defaults: no Slack or Elastic account needed."""
    from secbot.cli import service

    service.demo_command(config, rules, count=count, port=port, interval=interval,
                         duration=duration, console_mode=console_mode, follow=follow,
                         show_messages=show_messages)


@app.command("audit")
def audit_command(
    alert_uuid: Annotated[
        str | None, typer.Argument(help="one alert's trail (default: all)")
    ] = None,
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="newest N entries")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Who changed which alert's status, when, to what, and why (humans and SecBot)."""
    from secbot.cli import audit

    audit.audit_command(alert_uuid, config, limit=limit, as_json=as_json)


@app.command("send")
def send_command(
    source: Annotated[str, typer.Option("--source", help="intake source, e.g. elastic")],
    files: Annotated[list[Path] | None, typer.Argument(help="alert JSON files (default stdin)")]
    = None,
    config: ConfigOpt = None,
    url: Annotated[str | None, typer.Option(help="intake URL (SECBOT_INTAKE_URL)")] = None,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 10.0,
) -> None:
    """Post alert JSON to the intake; exit 0 only when every alert was accepted."""
    from secbot.cli import send

    send.send_command(source, files, config, url=url, timeout=timeout)


@app.command("stats")
def stats_command(
    since: Annotated[str, typer.Option("--since", help="period: 24h, 7d, 2w …")] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    config: ConfigOpt = None,
) -> None:
    """Per rule and source: alerts, auto-closed, closed by people (by reason), acknowledged,
    open, median time to first human action and to close; top five; change vs the period
    before."""
    from secbot.cli import stats

    stats.stats_command(since, as_json=as_json, config=config)


@rules_app.command("validate")
def validate_command(directory: DirArg = Path("rules"), lists_dir: ListsOpt = None) -> None:
    """Schema, expressions, enricher names, templates, destinations, named lists. Errors as
    path:line: message; exit 1."""
    from secbot.cli import rules

    rules.validate_command(directory, lists_dir)


@rules_app.command("test")
def test_command(
    directory: DirArg = Path("rules"),
    default_channel: Annotated[
        str | None, typer.Option(help="channel for rules without route")
    ] = None,
    lists_dir: ListsOpt = None,
) -> None:
    """Run every rule's inline tests; ends with 'N passed, N failed'."""
    from secbot.cli import rules

    rules.test_command(directory, default_channel, lists_dir)


@rules_app.command("backtest")
def backtest_command(
    alerts: Annotated[Path, typer.Option("--alerts", help="NDJSON of alert _sources or ES hits")],
    directory: DirArg = Path("rules"),
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    lists_dir: ListsOpt = None,
) -> None:
    """Per rule: matched, deduplicated, would auto-close, would escalate, would post (+ human
    agreement)."""
    from secbot.cli import rules

    rules.backtest_command(alerts, directory, as_json=as_json, lists_dir=lists_dir)


@rules_app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of rule files (for editors' YAML validation)."""
    from secbot.cli import rules

    rules.schema_command()


@rules_app.command("trust")  # reads Redis, so it lives in cli/trust.py
def trust_command(
    directory: DirArg = Path("rules"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
    restore: Annotated[str | None, typer.Option(
        "--restore", help="lift review's demotion of this rule id")] = None,
    config: ConfigOpt = None,
) -> None:
    """Per auto-close rule: mode, decisions, agreements, disagreements (with alert links),
    precision, whether promotion from shadow is suggested."""
    from secbot.cli import trust

    trust.trust_command(directory, as_json=as_json, restore=restore, config=config)


__all__ = ["app", "rules_app"]
