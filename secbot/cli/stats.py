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
from secbot.domain.errors import SecBotError
from secbot.domain.source import SIEM_SOURCE
from secbot.intake.sources import SourceLoadError, load_sources
from secbot.runtime.settings import Settings
from secbot.runtime.siem_clients import build_own_store, build_siem
from secbot.siem.base import AlertArchive, Siem
from secbot.siem.routing import RoutingSiem
from secbot.stats.report import PeriodError, StatsReport, fetch_report, parse_period, to_json
from secbot.stats.table import render_text


def mapped_sources(settings: Settings) -> list[str]:
    """The mapped sources of ``SECBOT_SOURCES_DIR`` (their alerts are in the own store)."""
    try:
        sources = load_sources(settings.sources_dir)
    except SourceLoadError as exc:
        fail(f"SECBOT_SOURCES_DIR: invalid source mappings:\n{exc}")
    return [name for name in sources if name != SIEM_SOURCE]


def _stores(settings: Settings, mapped: list[str]) -> tuple[Siem, AlertArchive | None]:
    """The SIEM and, with mapped sources, the own alerts store."""
    return build_siem(settings), build_own_store(settings) if mapped else None


def stats_siem(settings: Settings, mapped: list[str]) -> Siem:
    """The SIEM, with the own alerts store routed beside it when mapped sources exist."""
    siem, own = _stores(settings, mapped)
    return siem if own is None else RoutingSiem(siem, own, mapped)


async def _report(settings: Settings, period: timedelta) -> StatsReport:
    siem = stats_siem(settings, mapped_sources(settings))
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
    except SecBotError as exc:  # SiemError, the runtime's ConfigError
        fail(str(exc))  # fail redacts
    if as_json:
        print(json.dumps(to_json(report)))
        return
    print(render_text(report))


__all__ = ["mapped_sources", "stats_command", "stats_siem"]
