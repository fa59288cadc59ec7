"""Helpers shared by CLI commands: settings loading with the contract's exit codes, and the one
way a command reports an error (:func:`fail`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from secbot.domain.secrets import redact
from secbot.runtime.settings import Settings, SettingsError, load_settings

EXIT_INVALID_SETTINGS = 2


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with ``code``.

    ``message`` is plain text, never markup: it is redacted (an error may quote a Redis or
    Kibana URL with its password, or a refused setting's value) and then markup-escaped, so a
    value's own brackets print as typed instead of vanishing into a style or, for a stray
    closing tag, crashing the command with a traceback instead of its exit code.
    """
    err_console().print(f"[bold red]error:[/] {escape(redact(message))}", markup=True)
    raise typer.Exit(code)


def settings_or_exit(config: Path | None, **flags: Any) -> Settings:
    """Settings, or exit 2 with one line per invalid variable.

    Command-line flags (already typed by typer) win over the environment and the file.
    """
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        fail(str(exc), EXIT_INVALID_SETTINGS)
    return settings.model_copy(update={k: v for k, v in flags.items() if v is not None})
