"""``secbot demo``: the real service on embedded defaults, in front of the Slack emulator.

Embedded SIEM (SQLite in memory) seeded with realistic alerts that keep arriving, the example
rules, stand-in enrichers, Redis if one answers (else an in-memory store, said loudly), and the
Slack emulator serving a page at http://127.0.0.1:8089 that shows the channels like Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid as uuidlib
from datetime import UTC, datetime, timedelta
from itertools import count as counter

from pydantic import SecretStr
from rich.console import Console

from secbot.ask.state import MemoryInteractions
from secbot.demo.destinations import DemoDestinations, demo_destinations
from secbot.demo.enrichers import demo_enrichers
from secbot.demo.push import DemoIntake, demo_intake, intake_settings, push_alerts
from secbot.demo.synthetic import auth_events, generate, storm
from secbot.rules.ruleset import RuleSet
from secbot.runtime.service import SecBotService
from secbot.runtime.settings import Settings
from secbot.runtime.wiring import build_service
from secbot.siem.embedded import EmbeddedSiem
from secbot.siem.own_embedded import EmbeddedAlertStore
from secbot.store.base import Store
from secbot.store.memory import MemoryStore
from secbot.store.redis import RedisStore
from secbot_emulators.slack import SlackEmulator

AUTH_INDEX = "logs-okta.system-demo"
#: Every key the demo writes starts with this, never with the service's ``SECBOT_REDIS_PREFIX``:
#: the Redis that answers on the default URL may well be a real deployment's.
DEMO_PREFIX = "secbot-demo:"


def demo_prefix() -> str:
    """A fresh prefix under :data:`DEMO_PREFIX` for one demo run.

    Per run, because the seeded SIEM reuses the same alert uuids each time: a shared prefix
    would make the next run see them as already posted and show an empty channel.
    """
    return f"{DEMO_PREFIX}{uuidlib.uuid4().hex}:"


async def demo_store(settings: Settings, console: Console, *, prefix: str | None = None) -> Store:
    """Real Redis if it answers (under a demo-only prefix), else a clearly labelled fallback."""
    prefix = prefix or demo_prefix()
    store = RedisStore.from_url(settings.redis_url, prefix=prefix)
    if await store.ping():
        console.print(f"store: Redis at {settings.redis_url}, keys under {prefix!r}")
        return store
    await store.close()
    console.print(
        f"[yellow]store: Redis not reachable at {settings.redis_url}; using an "
        "in-memory store (nothing persists)[/]"
    )
    return MemoryStore()


async def seeded_siem(count: int) -> EmbeddedSiem:
    siem = EmbeddedSiem(":memory:")
    start = datetime.now(UTC) - timedelta(minutes=count)
    await siem.insert(generate(count, seed=1, start=start, step=timedelta(seconds=30)))
    await siem.insert(auth_events(60), index=AUTH_INDEX)
    return siem


def demo_settings(settings: Settings, slack: SlackEmulator, prefix: str) -> Settings:
    """The user's settings pointed at the emulator, the embedded SIEM and the demo prefix."""
    return settings.model_copy(
        update={
            # Whatever build_service derives from the settings lands under the demo prefix too.
            "redis_prefix": prefix,
            "slack_bot_token": SecretStr(slack.bot_token),
            "slack_app_token": SecretStr(slack.app_token),
            "slack_api_url": slack.api_url,
            "siem": "embedded",
            "default_channel": settings.default_channel or "C0SECALERTS",
            "triagers": settings.triagers or ["S0TRIAGE"],
            "auth_log_indices": [AUTH_INDEX],
            "poll_interval": min(settings.poll_interval, 1.0),
            "slack_pace": 0.0,
            "group_threshold": 10,  # the demo's bursts of 40 fold into a storm group
            "http_port": 0,
            "alert_ttl": 86400,
            # Response actions: triagers approve them, and the demo calls no response API
            # (it has no Kibana or Okta): it says what it would do.
            "approvers": settings.approvers or ["S0TRIAGE"],
            "respond_dry_run": True,
        }
    )


#: Every this many seconds (the first after a short while) one rule bursts: the demo shows
#: a storm folding into one group message whose thread lists every alert.
STORM_EVERY = 180.0
STORM_FIRST = 20.0
STORM_SIZE = 40


async def keep_alerts_coming(siem: EmbeddedSiem, interval: float) -> None:
    next_storm = asyncio.get_running_loop().time() + STORM_FIRST
    for seq in counter(1000):
        await asyncio.sleep(interval)
        await siem.insert(generate(1, seed=seq, start=datetime.now(UTC)))
        if asyncio.get_running_loop().time() >= next_storm:
            next_storm += STORM_EVERY
            await siem.insert(storm(STORM_SIZE, seed=seq, at=datetime.now(UTC)))


async def run_web_demo(
    settings: Settings,
    rules: RuleSet,
    *,
    port: int,
    count: int,
    interval: float,
    duration: float | None,
    console: Console,
) -> None:
    """Serve the demo until Ctrl-C / SIGTERM, or for ``duration`` seconds."""
    async with SlackEmulator.running(port=port) as slack:
        siem = await seeded_siem(count)
        prefix = demo_prefix()
        store = await demo_store(settings, console, prefix=prefix)
        own = EmbeddedAlertStore(":memory:")  # mapped sources' alerts (Threat Stack)
        # The push path and the destinations' outbox need Redis; without it, poll only.
        durable = isinstance(store, RedisStore)
        intake = demo_intake(settings.sources_dir) if durable else None
        try:
            async with demo_destinations(durable) as destinations:
                slack.links = destinations.links()  # the demo page's header links
                service, resources = await build_service(
                    demo_settings(settings, slack, prefix).model_copy(
                        update={**intake_settings(intake), **destinations.settings()}),
                    rules,
                    store=store,
                    siem=siem,
                    enrichers=demo_enrichers(),
                    own_store=own,
                    # DMs and approvals live beside the store: in memory too without Redis.
                    interactions=None if durable else MemoryInteractions(),
                )
                try:
                    _announce(console, slack, rules, destinations, intake, count=count,
                              interval=interval)
                    await _serve(service, siem, intake, interval=interval, duration=duration)
                finally:
                    await resources.aclose()
        finally:
            await store.close()
            await siem.close()
            await own.close()


def _announce(console: Console, slack: SlackEmulator, rules: RuleSet,
              destinations: DemoDestinations, intake: DemoIntake | None, *, count: int,
              interval: float) -> None:
    """The status lines a person starting the demo reads: where to look, what runs."""
    console.print(
        f"SecBot demo: open [bold]{slack.base_url}/[/] — {len(rules)} rules, "
        f"{count} alerts seeded, a new one every {interval:g}s. Ctrl-C stops."
    )
    for label, url in destinations.links().items():
        console.print(f"destinations: {label} at {url}")
    if not destinations.links():
        console.print("destinations: off (the outbox needs Redis): nothing is paged or ticketed")
    if intake is not None:
        console.print(f"push: a Threat Stack-style alert to {intake.url} every "
                      f"{2 * interval:g}s (real HTTP intake, demo token)")


async def _serve(service: SecBotService, siem: EmbeddedSiem, intake: DemoIntake | None, *,
                 interval: float, duration: float | None) -> None:
    """Run the service with the alert feeders beside it until it is stopped."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stop)
    if duration is not None:
        loop.call_later(duration, service.stop)
    tasks = [asyncio.create_task(keep_alerts_coming(siem, interval))]
    if intake is not None:
        tasks.append(asyncio.create_task(push_alerts(intake, 2 * interval)))
    try:
        await service.run()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
