"""``secbot audit [ALERT_UUID]``: the status-change trail, from the Redis audit stream.

Everything printed goes through :func:`~secbot.domain.secrets.redact`: audit reasons carry
SIEM error text (a failed auto-close names the Kibana URL), and the Redis URL in an error may
carry a password. Terminal output is also markup-escaped, so rich shows ``[REDACTED]`` and
an alert's own brackets literally instead of reading them as styles.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from secbot.cli.common import fail, settings_or_exit
from secbot.domain.secrets import redact
from secbot.runtime.settings import Settings
from secbot.store.base import AuditEntry, StoreUnavailable
from secbot.store.redis import RedisStore


async def _read(settings: Settings, uuid: str | None, limit: int) -> list[AuditEntry]:
    store = RedisStore.from_url(settings.redis_url, settings.redis_prefix)
    try:
        return await store.read_audit(uuid, limit=limit)
    finally:
        await store.close()


def audit_command(alert_uuid: str | None, config: Path | None, *, limit: int, as_json: bool
                  ) -> None:
    """``secbot audit`` (options and help text: :mod:`secbot.cli.entry`)."""
    settings = settings_or_exit(config)
    try:
        entries = asyncio.run(_read(settings, alert_uuid, limit))
    except StoreUnavailable as exc:
        fail(f"Redis at {settings.redis_url} is unavailable: {exc}")  # fail redacts
    if as_json:
        for e in entries:
            print(
                json.dumps(
                    {
                        "alert": e.alert_uuid,
                        "who": e.actor,
                        "what": e.action.value,  # the status string (DESIGN.md §3)
                        "why": redact(e.reason),
                        "when": e.at.isoformat(),
                        "rule": e.rule_id,
                        "extra": {k: redact(v) for k, v in e.extra.items()},
                    }
                )
            )
        return
    if not entries:
        print("no audit entries" + (f" for {alert_uuid}" if alert_uuid else ""))
        return
    table = Table(title=f"Audit trail{' of ' + alert_uuid if alert_uuid else ''}")
    for column in ("when (UTC)", "alert", "who", "what", "why", "rule"):
        table.add_column(column)
    for e in entries:
        cells = (e.alert_uuid, e.actor, e.action.value, e.reason, e.rule_id)
        table.add_row(e.at.strftime("%Y-%m-%d %H:%M:%S"), *(escape(redact(c)) for c in cells))
    Console(width=160).print(table)
