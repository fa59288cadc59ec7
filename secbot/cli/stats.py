"""``secbot stats [--since 7d] [--json]``: alerts per rule and per source, computed by the SIEM.

Reads the SIEM of the settings (``SECBOT_SIEM``: Elasticsearch aggregations, or SQL on the
embedded SQLite file) and, when mapped sources are configured, SecBot's own alerts store
beside it. One stats request per store covers the period and the one before it (for the
change); no alert is downloaded. ``--json`` prints one object (DESIGN.md §3).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from secbot.cli.common import fail, settings_or_exit
from secbot.domain.source import SIEM_SOURCE
from secbot.runtime.intake_wiring import ConfigError, build_own_store, intake_sources
from secbot.runtime.settings import Settings
from secbot.runtime.wiring import build_siem
from secbot.siem.base import Siem, SiemError
from secbot.siem.routing import RoutingSiem
from secbot.stats.report import PeriodError, StatsReport, fetch_report, parse_period, to_json
from secbot.stats.table import render_text


def stats_siem(settings: Settings) -> Siem:
    """The SIEM, with the own alerts store routed beside it when mapped sources exist."""
    siem = build_siem(settings)
    mapped = [name for name in intake_sources(settings) if name != SIEM_SOURCE]
    if not mapped:
        return siem
    return RoutingSiem(siem, build_own_store(settings), mapped)


async def _report(settings: Settings, period: timedelta) -> StatsReport:
    siem = stats_siem(settings)
    try:
        return await fetch_report(siem, period, datetime.now(UTC))
    finally:
        await siem.close()


def stats_command(since: str, *, as_json: bool, config: Path | None) -> None:
    """``secbot stats`` (options and help text: :mod:`secbot.cli.entry`)."""
    try:
        period = parse_period(since)
    except PeriodError as exc:
        fail(str(exc), 2)
    settings = settings_or_exit(config)
    try:
        report = asyncio.run(_report(settings, period))
    except (SiemError, ConfigError) as exc:
        fail(str(exc))  # fail redacts
    if as_json:
        print(json.dumps(to_json(report)))
        return
    print(render_text(report))


__all__ = ["stats_command", "stats_siem"]
