"""AlertPoller: exactly-once hand-off across late alerts, handler failures and restarts."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secbot.domain.alert import Alert
from secbot.intake.poller import AlertPoller
from secbot.runtime.settings import Settings
from secbot.runtime.siem_clients import build_elastic_siem
from secbot.siem.base import Checkpoint
from secbot.siem.embedded import EmbeddedSiem
from secbot.store.memory import MemoryStore
from secbot_emulators.elastic import ElasticEmulator

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
MakeAlert = Callable[..., dict[str, Any]]


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def _no_secbot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read SECBOT_* first; a developer's exported variables must not leak in."""
    for name in [n for n in os.environ if n.startswith("SECBOT_")]:
        monkeypatch.delenv(name)


class Recorder:
    """A handler that counts deliveries per uuid and marks alerts posted, like the pipeline."""

    def __init__(self, store: MemoryStore, fail_on: str | None = None) -> None:
        self.store = store
        self.fail_on = fail_on
        self.calls: Counter[str] = Counter()
        self.order: list[str] = []

    async def __call__(self, alert: Alert) -> None:
        if alert.uuid == self.fail_on:
            raise RuntimeError(f"handler failed on {alert.uuid}")
        self.calls[alert.uuid] += 1
        self.order.append(alert.uuid)
        await self.store.mark_posted(alert.uuid, ttl=3600)


@pytest.fixture
async def siem() -> AsyncIterator[EmbeddedSiem]:
    embedded = EmbeddedSiem(":memory:")
    yield embedded
    await embedded.close()


async def test_every_alert_once_across_pages_and_polls(
    siem: EmbeddedSiem, make_alert: MakeAlert
) -> None:
    # Ten alerts share each timestamp: pages of 7 split ties, the overlap re-reads them all.
    await siem.insert([make_alert(f"a{i:02d}", at(i // 10)) for i in range(45)])
    store = MemoryStore()
    recorder = Recorder(store)
    poller = AlertPoller(siem, store, overlap_seconds=3600, page_size=7)
    assert await poller.poll_once(recorder) == 45
    assert await poller.poll_once(recorder) == 0
    assert recorder.order == [f"a{i:02d}" for i in range(45)]
    assert set(recorder.calls.values()) == {1}
    saved = await store.get_checkpoint("alerts")
    assert saved is not None and Checkpoint.loads(saved) == Checkpoint(at(4), "a44")


async def test_late_alert_inside_the_overlap_is_delivered_once(
    siem: EmbeddedSiem, make_alert: MakeAlert
) -> None:
    await siem.insert([make_alert(f"a{i}", at(i * 10)) for i in range(5)])
    store = MemoryStore()
    recorder = Recorder(store)
    poller = AlertPoller(siem, store, overlap_seconds=60, page_size=2)
    assert await poller.poll_once(recorder) == 5
    # Indexed late, stamped before the checkpoint (at(40)) but inside the 60 s overlap.
    await siem.insert([make_alert("late", at(5)), make_alert("too-late", at(-100))])
    assert await poller.poll_once(recorder) == 1
    assert await poller.poll_once(recorder) == 0
    assert recorder.calls["late"] == 1
    assert "too-late" not in recorder.calls  # beyond the overlap: the documented trade-off
    saved = await store.get_checkpoint("alerts")
    assert saved is not None and Checkpoint.loads(saved).uuid == "a4"


async def test_handler_failure_keeps_checkpoint_then_resumes(
    siem: EmbeddedSiem, make_alert: MakeAlert
) -> None:
    await siem.insert([make_alert(f"a{i}", at(i)) for i in range(8)])
    store = MemoryStore()
    failing = Recorder(store, fail_on="a5")
    poller = AlertPoller(siem, store, overlap_seconds=0, page_size=3)
    with pytest.raises(RuntimeError, match="a5"):
        await poller.poll_once(failing)
    saved = await store.get_checkpoint("alerts")
    assert saved is not None and Checkpoint.loads(saved) == Checkpoint(at(4), "a4")
    failing.fail_on = None
    assert await poller.poll_once(failing) == 3
    assert failing.order == [f"a{i}" for i in range(8)]
    assert set(failing.calls.values()) == {1}


async def test_restart_resumes_from_the_store(siem: EmbeddedSiem, make_alert: MakeAlert) -> None:
    await siem.insert([make_alert(f"a{i}", at(i)) for i in range(6)])
    store = MemoryStore()
    recorder = Recorder(store)
    assert await AlertPoller(siem, store, overlap_seconds=300).poll_once(recorder) == 6
    await siem.insert([make_alert(f"b{i}", at(10 + i)) for i in range(3)])
    # A new process: no memory of what it handled, only the store's checkpoint and markers.
    restarted = AlertPoller(siem, store, overlap_seconds=300, page_size=4)
    assert await restarted.poll_once(recorder) == 3
    assert set(recorder.calls.values()) == {1}
    assert len(recorder.calls) == 9


async def test_start_position_applies_only_without_checkpoint(
    siem: EmbeddedSiem, make_alert: MakeAlert
) -> None:
    await siem.insert([make_alert(f"a{i}", at(i)) for i in range(4)])
    store = MemoryStore()
    recorder = Recorder(store)
    poller = AlertPoller(siem, store, overlap_seconds=0, start=Checkpoint(at(1), "a1"))
    assert await poller.poll_once(recorder) == 2
    assert recorder.order == ["a2", "a3"]


async def test_late_visibility_on_the_elastic_emulator(make_alert: MakeAlert) -> None:
    async with ElasticEmulator.running() as emu:
        siem = build_elastic_siem(Settings(elasticsearch_url=emu.url, kibana_url=emu.kibana_url))
        try:
            index = ".alerts-security.alerts-default"
            emu.index_documents(index, [make_alert(f"a{i}", at(i * 10)) for i in range(4)])
            # Stamped before the others but searchable only 0.3 s later (a delayed rule run).
            emu.index_documents(index, [make_alert("late", at(1))], visible_after=0.3)
            store = MemoryStore()
            recorder = Recorder(store)
            poller = AlertPoller(siem, store, overlap_seconds=120, page_size=3)
            assert await poller.poll_once(recorder) == 4
            await asyncio.sleep(0.35)
            assert await poller.poll_once(recorder) == 1
            assert await poller.poll_once(recorder) == 0
            assert recorder.calls["late"] == 1 and set(recorder.calls.values()) == {1}
        finally:
            await siem.close()


async def test_partitions_run_concurrently_and_a_failure_holds_the_checkpoint(
    make_alert: Callable[..., dict[str, Any]],
) -> None:
    """Alerts of different partitions overlap in time; one partition's failure stops only the
    checkpoint, and the next poll delivers the failed alert and the rest of its partition."""
    siem, store = EmbeddedSiem(), MemoryStore()
    await siem.insert(
        [
            make_alert(f"a{i}", f"2026-11-01T10:00:0{i}Z", rule_name="A" if i % 2 else "B")
            for i in range(6)
        ]
    )
    running, peak, seen = 0, 0, []  # type: ignore[var-annotated]
    fail_once = {"a3"}

    async def handler(alert: Alert) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if alert.uuid in fail_once:
            fail_once.discard(alert.uuid)
            raise RuntimeError("slack down")
        seen.append(alert.uuid)
        await store.mark_posted(alert.uuid, 3600)

    poller = AlertPoller(siem, store, overlap_seconds=300, partition=lambda a: a.rule_name)
    with pytest.raises(RuntimeError):
        await poller.poll_once(handler)
    assert peak == 2  # both partitions were in flight together
    assert "a5" not in seen and set(seen) == {"a0", "a1", "a2", "a4"}
    await poller.poll_once(handler)
    assert sorted(seen) == ["a0", "a1", "a2", "a3", "a4", "a5"]  # each exactly once
