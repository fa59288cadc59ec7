"""``secbot run`` (the service) and ``secbot demo`` (the main job on embedded defaults)."""

from __future__ import annotations

import asyncio
import signal
import uuid as uuidlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from secbot.cli.common import EXIT_INVALID_SETTINGS, fail, settings_or_exit
from secbot.console_publisher import ConsolePublisher
from secbot.demo_enrichers import demo_enrichers
from secbot.enrich.engine import EnrichmentEngine
from secbot.logs import configure_logging
from secbot.pipeline.pipeline import Pipeline
from secbot.poller import AlertPoller
from secbot.rules.loader import RuleLoadError, load_rules
from secbot.rules.ruleset import RuleSet
from secbot.settings import Settings
from secbot.siem.embedded import EmbeddedSiem
from secbot.store.base import Store
from secbot.store.memory import MemoryStore
from secbot.store.redis import RedisStore
from secbot.synthetic import generate
from secbot.triage import TriageHandler
from secbot.wiring import ConfigError, build_service, check_run_settings

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML settings file")]


def run_command(config: ConfigOpt = None) -> None:
    """The service: Socket Mode app, SIEM poller and pipeline in one asyncio process."""
    settings = settings_or_exit(config)
    try:
        check_run_settings(settings)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID_SETTINGS)
    try:
        rules = load_rules(settings.rules_dir, timeout=settings.expression_timeout)
    except RuleLoadError as exc:
        fail(f"rules in {settings.rules_dir} are invalid:\n{exc}")
    configure_logging(settings.log_level)
    asyncio.run(_serve(settings, rules))


async def _serve(settings: Settings, rules: RuleSet) -> None:
    service, resources = await build_service(settings, rules)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stop)
    try:
        await service.run()
    finally:
        await resources.aclose()


async def _demo_store(settings: Settings, console: Console) -> Store:
    """Real Redis if it answers (under a throwaway prefix), else a clearly labelled fallback."""
    store = RedisStore.from_url(settings.redis_url, prefix=f"secbot-demo:{uuidlib.uuid4().hex}:")
    if await store.ping():
        console.print(f"store: Redis at {settings.redis_url}")
        return store
    await store.close()
    console.print(
        f"[yellow]store: Redis not reachable at {settings.redis_url}; using an "
        "in-memory store (nothing persists)[/]"
    )
    return MemoryStore()


async def _demo(
    settings: Settings, count: int, follow: bool, interval: float, show_messages: bool
) -> None:
    console = Console(highlight=False)
    rules = load_rules(settings.rules_dir, timeout=settings.expression_timeout)
    siem = EmbeddedSiem(":memory:")
    start = datetime.now(UTC) - timedelta(minutes=count)
    await siem.insert(generate(count, seed=1, start=start, step=timedelta(seconds=30)))
    store = await _demo_store(settings, console)
    pipeline = Pipeline(
        rules,
        EnrichmentEngine(demo_enrichers(), timeout=settings.enrich_timeout),
        store,
        default_channel=settings.default_channel or "C0SECALERTS",
    )
    publisher = ConsolePublisher(console, show_messages=show_messages)
    handler = TriageHandler(pipeline, siem, store, publisher)
    poller = AlertPoller(
        siem, store, overlap_seconds=settings.poll_overlap, page_size=settings.poll_page_size
    )
    console.print(
        f"{len(rules)} rules from {settings.rules_dir}; {count} alerts seeded in the "
        "embedded SIEM\n"
    )
    try:
        await poller.poll_once(handler)
        seq = count
        while follow:
            await asyncio.sleep(interval)
            await siem.insert(generate(1, seed=seq, start=datetime.now(UTC)))
            seq += 1
            await poller.poll_once(handler)
    finally:
        console.print(publisher.summary())
        await store.close()
        await siem.close()


def demo_command(
    config: ConfigOpt = None,
    rules: Annotated[Path | None, typer.Option(help="rules directory")] = None,
    count: Annotated[int, typer.Option(min=1, max=10_000, help="alerts to seed")] = 24,
    follow: Annotated[bool, typer.Option(help="keep generating alerts until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option(help="seconds between new alerts with --follow")] = 3.0,
    show_messages: Annotated[bool, typer.Option(help="print each message's text")] = False,
) -> None:
    """Run the whole pipeline on embedded defaults: no Slack or Elastic account needed."""
    settings = settings_or_exit(config, rules_dir=rules, siem="embedded")
    try:
        asyncio.run(_demo(settings, count, follow, interval, show_messages))
    except RuleLoadError as exc:
        fail(f"rules in {settings.rules_dir} are invalid:\n{exc}")
    except KeyboardInterrupt:
        pass
