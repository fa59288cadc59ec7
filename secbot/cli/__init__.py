"""The ``secbot`` command line (DESIGN.md §3)."""

from __future__ import annotations

import typer

from secbot.cli.audit import audit_command
from secbot.cli.rules import rules_app
from secbot.cli.send import send_command
from secbot.cli.service import demo_command, run_command
from secbot.cli.stats import stats_command
from secbot.cli.trust import trust_command

app = typer.Typer(
    name="secbot",
    no_args_is_help=True,
    add_completion=False,
    help="Triage Elastic Security alerts from Slack.",
)
app.add_typer(rules_app, name="rules")
rules_app.command("trust")(trust_command)  # reads Redis, so it lives in cli/trust.py
app.command("run")(run_command)
app.command("demo")(demo_command)
app.command("audit")(audit_command)
app.command("send")(send_command)
app.command("stats")(stats_command)


def main() -> None:
    app()
