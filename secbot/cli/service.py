"""``secbot run`` (the service) and ``secbot demo`` (the main job on embedded defaults)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import structlog
import typer
from rich.console import Console

from secbot.cli.common import EXIT_INVALID_SETTINGS
from secbot.demo.app import demo_store, run_web_demo, seeded_siem
from secbot.demo.enrichers import demo_enrichers
from secbot.demo.synthetic import generate
from secbot.enrich.engine import EnrichmentEngine
from secbot.intake.handoff import TriageHandler
from secbot.intake.poller import AlertPoller
from secbot.pipeline.pipeline import Pipeline
from secbot.publish.console import ConsolePublisher
from secbot.rules.lists import lists_dir_beside, load_lists
from secbot.rules.loader import RuleLoadError, load_rules
from secbot.rules.ruleset import RuleSet
from secbot.runtime.destinations import configured_destinations
from secbot.runtime.logs import LogLineWriter, configure_logging, register_settings_secrets
from secbot.runtime.settings import Settings, SettingsError, load_settings
from secbot.runtime.wiring import ConfigError, build_service, check_run_settings

log = structlog.stdlib.get_logger(__name__)


def _fail(message: str, code: int = 1) -> NoReturn:
    # A log line like every other (DESIGN.md §8: every line is one JSON object), not rich text.
    log.error(message, exit_code=code)
    raise typer.Exit(code)


def _settings(config: Path | None, **flags: Any) -> Settings:
    """Settings with logging configured around them: JSON from the first line, and the
    settings' own secrets masked in every line after.

    Command-line flags (already typed by typer) win over the environment and the file.
    """
    configure_logging()  # before anything can log (or fail) — the level comes with the settings
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        _fail(str(exc), EXIT_INVALID_SETTINGS)
    settings = settings.model_copy(update={k: v for k, v in flags.items() if v is not None})
    configure_logging(settings.log_level)
    register_settings_secrets(settings)
    return settings


def _rules(settings: Settings, destinations: frozenset[str] | None = None) -> RuleSet:
    """The rules; with ``destinations``, an ``escalate`` naming another is an error
    (``path:line``): ``secbot run`` refuses to start rather than never page."""
    lists_dir = lists_dir_beside(settings.lists_dir, settings.rules_dir)
    try:
        lists = load_lists(lists_dir)  # named lists first: rules' inList names them
    except RuleLoadError as exc:
        _fail(f"lists in {lists_dir} are invalid:\n{exc}")
    try:
        return load_rules(settings.rules_dir, timeout=settings.expression_timeout, lists=lists,
                          destinations=destinations)
    except RuleLoadError as exc:
        _fail(f"rules in {settings.rules_dir} are invalid:\n{exc}")


def run_command(config: Path | None) -> None:
    """``secbot run`` (options and help text: :mod:`secbot.cli.entry`)."""
    settings = _settings(config)
    try:
        check_run_settings(settings)
    except ConfigError as exc:
        _fail(str(exc), EXIT_INVALID_SETTINGS)
    rules = _rules(settings, configured_destinations(settings))
    asyncio.run(_serve(settings, rules))


async def _serve(settings: Settings, rules: RuleSet) -> None:
    # Signals are caught before anything is built: a SIGTERM during start-up is a clean stop.
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    service, resources = await build_service(settings, rules)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stop)
    if stop_requested.is_set():
        service.stop()
    try:
        await service.run()
    finally:
        await resources.aclose()


async def _console_demo(
    settings: Settings,
    rules: RuleSet,
    count: int,
    follow: bool,
    interval: float,
    show_messages: bool,
    console: Console,
) -> None:
    """The pipeline printing to the terminal instead of Slack (``secbot demo --console``)."""
    siem = await seeded_siem(count)
    store = await demo_store(settings, console)
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


def demo_command(config: Path | None, rules: Path | None, *, count: int, port: int,
                 interval: float, duration: float | None, console_mode: bool, follow: bool,
                 show_messages: bool) -> None:
    """``secbot demo`` (options and help text: :mod:`secbot.cli.entry`)."""
    settings = _settings(config, rules_dir=rules, siem="embedded")
    ruleset = _rules(settings)
    if console_mode:
        # --console is the human view: its report goes to stdout as text, logs stay JSON on stderr.
        console = Console(highlight=False)
        job = _console_demo(settings, ruleset, count, follow, interval, show_messages, console)
    else:
        # The web demo's status lines (store, URL) are log lines like the rest.
        console = Console(file=LogLineWriter("secbot.demo"), highlight=False, soft_wrap=True,
                          force_terminal=False, no_color=True)
        job = run_web_demo(
            settings,
            ruleset,
            port=port,
            count=count,
            interval=interval,
            duration=duration,
            console=console,
        )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(job)
