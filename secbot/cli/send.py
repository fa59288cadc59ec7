"""``secbot send --source NAME [FILE…]``: push alert JSON to the intake (DESIGN.md §3, §11).

Reads files (or stdin when none, or ``-``): one JSON object, a JSON array, ``{"alerts": [...]}``
or NDJSON. Posts them to ``SECBOT_INTAKE_URL`` with ``SECBOT_INTAKE_TOKEN`` in batches, and
retries what the intake did not refuse for good (unreachable, 5xx, 429 — honouring
``Retry-After``). Exit codes, for script actions (ElastAlert ``command``):

====  =========================================================================
0     every alert was accepted (202 for every batch)
1     the intake refused alerts (4xx other than 429: bad token, unknown source,
      bad alert, too large); not worth retrying as is
2     usage or configuration: no token, unreadable file, input that is not JSON
3     the intake was unreachable, or kept answering 5xx/429, after the retries
====  =========================================================================

A batch is all-or-nothing at the intake, so after an exit of 1 or 3 the alerts of earlier
batches were accepted and the rest were not; re-sending everything is safe (SecBot handles
each alert uuid once).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer

from secbot.cli.common import fail, settings_or_exit
from secbot.domain.errors import SecBotError

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
#: Alerts per request: well under the default 1 MiB body limit for typical alerts.
BATCH = 200
RETRIES = 4
#: Longest Retry-After honoured; a longer one counts as "unavailable" (exit 3).
MAX_WAIT = 30.0


class InputError(SecBotError):
    """The input is not alert JSON; the message says which file and where."""


@dataclass(frozen=True)
class Outcome:
    """What the intake finally said about one batch."""

    code: int
    accepted: int
    message: str


def parse_input(text: str, name: str) -> list[Any]:
    """Alerts of one input: JSON (object, array, ``{"alerts": …}``) or else NDJSON."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
        items: list[Any] = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError:
                raise InputError(f"{name}: line {number}: not valid JSON") from None
        return items
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and set(data) == {"alerts"} and isinstance(data["alerts"], list):
        return list(data["alerts"])
    return [data]


def _read_inputs(files: Sequence[Path]) -> list[Any]:
    if not files or [str(f) for f in files] == ["-"]:
        return parse_input(sys.stdin.read(), "<stdin>")
    alerts: list[Any] = []
    for path in files:
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read: {exc}") from None
        alerts.extend(parse_input(text, str(path)))
    return alerts


def _retry_after(response: httpx.Response, attempt: int) -> float:
    header = str(response.headers.get("Retry-After", ""))
    try:
        return float(header)
    except ValueError:
        return min(MAX_WAIT, 0.5 * 2.0**attempt)


def post_batch(client: httpx.Client, url: str, batch: list[Any]) -> Outcome:
    """One batch, retried while the failure may be temporary."""
    body = json.dumps({"alerts": batch}).encode()
    last = "no answer"
    for attempt in range(RETRIES + 1):
        wait = min(MAX_WAIT, 0.5 * 2.0**attempt)
        try:
            response = client.post(url, content=body)
        except httpx.HTTPError as exc:
            last = f"unreachable: {type(exc).__name__}"
        else:
            if response.status_code == 202:
                return Outcome(EXIT_OK, int(response.json().get("accepted", 0)), "accepted")
            if response.status_code < 500 and response.status_code != 429:
                return Outcome(EXIT_REJECTED, 0, f"{response.status_code}: {_error(response)}")
            last = f"{response.status_code}: {_error(response)}"
            wait = _retry_after(response, attempt)
            if wait > MAX_WAIT:
                break
        if attempt < RETRIES:
            time.sleep(wait)
    return Outcome(EXIT_UNAVAILABLE, 0, last)


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))[:500]
    except ValueError:
        return response.text[:200]


def send_command(source: str, files: list[Path] | None, config: Path | None, *,
                 url: str | None, timeout: float) -> None:
    """``secbot send`` (options and help text: :mod:`secbot.cli.entry`)."""
    settings = settings_or_exit(config, intake_url=url)
    if settings.intake_token is None:
        _exit(EXIT_USAGE, "SECBOT_INTAKE_TOKEN: required (the Bearer token of this source)")
    try:
        alerts = _read_inputs(files or [])
    except InputError as exc:
        _exit(EXIT_USAGE, str(exc))
    if not alerts:
        _exit(EXIT_USAGE, "no alerts in the input")
    endpoint = f"{settings.intake_url.rstrip('/')}/v1/alerts/{source}"
    headers = {"Authorization": f"Bearer {settings.intake_token.get_secret_value()}",
               "Content-Type": "application/json"}
    accepted = 0
    with httpx.Client(timeout=timeout, headers=headers) as client:
        for start in range(0, len(alerts), BATCH):
            outcome = post_batch(client, endpoint, alerts[start:start + BATCH])
            if outcome.code != EXIT_OK:
                _exit(outcome.code, f"{accepted} of {len(alerts)} alerts accepted; alerts "
                                    f"{start}..{min(len(alerts), start + BATCH) - 1}: "
                                    f"{outcome.message}")
            accepted += outcome.accepted
    typer.echo(f"{accepted} alerts accepted")


def _exit(code: int, message: str) -> NoReturn:
    fail(message, code)  # redacted and shown literally, like every CLI error
