"""Hand-off of one alert: the SIEM is closed only when decided, and nothing is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from shipped import shipped_rules

from secbot.domain.alert import Alert
from secbot.enrich.engine import EnrichmentEngine
from secbot.enrich.fixture import FixtureEnricher
from secbot.intake.handoff import TriageHandler
from secbot.intake.poller import AlertPoller
from secbot.pipeline.decision import Decision
from secbot.pipeline.pipeline import Pipeline
from secbot.siem.base import SiemError
from secbot.siem.embedded import EmbeddedSiem
from secbot.store.memory import MemoryStore

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
INTERNAL = {"project_id": "sandbox-tools", "labels": {"instance-type": "internal"}}


class RecordingPublisher:
    def __init__(self, fail_times: int = 0) -> None:
        self.published: list[tuple[str, Decision]] = []
        self.corrections: list[tuple[str, str]] = []
        self.fail_times = fail_times

    async def publish(self, alert: Alert, decision: Decision) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("slack down")
        self.published.append((alert.uuid, decision))

    async def correct(self, alert: Alert, decision: Decision, note: str) -> None:
        self.corrections.append((alert.uuid, note))


class ClosingFailsSiem(EmbeddedSiem):
    async def set_status(self, ids: Any, status: Any, *, reason: Any, user: str) -> Any:
        raise SiemError("Kibana at http://kibana:5601 answered 503")


def gcp_source(uuid: str, minute: int) -> dict[str, Any]:
    return {
        "kibana.alert.uuid": uuid,
        "@timestamp": f"2026-11-01T10:{minute:02d}:00Z",
        "kibana.alert.workflow_status": "open",
        "kibana.alert.rule.name": "GCP Service Account Key Creation",
        "cloud": {"project": {"id": "sandbox-tools"}},
        "user": {"email": f"{uuid}@example.com"},
    }


async def setup(
    siem: EmbeddedSiem,
    publisher: RecordingPublisher,
) -> tuple[TriageHandler, AlertPoller, MemoryStore]:
    store = MemoryStore()
    engine = EnrichmentEngine({
        "gcp_project": FixtureEnricher("gcp_project", INTERNAL),
        # The rule closes only for someone HR knows to be employed (rules/gcp_sa_key_created).
        "hr": FixtureEnricher("hr", {"terminated": False, "employment_status": "active"}),
    })
    pipeline = Pipeline(shipped_rules(), engine, store, default_channel="C0DEFAULT")
    handler = TriageHandler(pipeline, siem, store, publisher)
    return handler, AlertPoller(siem, store, overlap_seconds=300), store


async def test_auto_close_reaches_the_siem_with_reason_and_audit() -> None:
    siem, publisher = EmbeddedSiem(), RecordingPublisher()
    await siem.insert([gcp_source("a1", 1)])
    handler, poller, store = await setup(siem, publisher)
    await poller.poll_once(handler)
    closed = await siem.get("a1")
    assert closed is not None and closed.workflow_status == "closed"
    assert closed.get_field("kibana.alert.workflow_reason") == "automated_closure"
    audit = await store.read_audit("a1")
    assert [(e.actor, e.action, e.reason) for e in audit] == [
        ("secbot", "closed", "automated_closure")
    ]
    assert [uuid for uuid, _ in publisher.published] == ["a1"]


async def test_failed_close_is_corrected_to_open_with_the_error() -> None:
    siem, publisher = ClosingFailsSiem(), RecordingPublisher()
    await siem.insert([gcp_source("a2", 1)])
    handler, poller, store = await setup(siem, publisher)
    await poller.poll_once(handler)
    assert [uuid for uuid, _ in publisher.published] == ["a2"]
    [(uuid, note)] = publisher.corrections
    assert uuid == "a2" and "auto-close failed, alert left open" in note and "503" in note
    audit = await store.read_audit("a2")
    assert [(e.action, e.reason[:26]) for e in audit] == [
        ("closed", "automated_closure"), ("open", "auto-close failed, alert l")]
    assert await store.is_posted("a2")


async def test_publish_failure_closes_nothing_and_redelivers_exactly_once() -> None:
    siem, publisher = EmbeddedSiem(), RecordingPublisher(fail_times=1)
    await siem.insert([gcp_source("a3", 1), gcp_source("a4", 2)])
    handler, poller, store = await setup(siem, publisher)
    with pytest.raises(ConnectionError):
        await poller.poll_once(handler)
    still_open = await siem.get("a3")  # never closed before it was shown to people
    assert still_open is not None and still_open.workflow_status == "open"
    assert not await store.is_posted("a3")
    await poller.poll_once(handler)
    await poller.poll_once(handler)
    assert sorted(uuid for uuid, _ in publisher.published) == ["a3", "a4"]
    final = await siem.get("a3")
    assert final is not None and final.workflow_status == "closed"


async def test_second_delivery_of_a_posted_alert_is_ignored() -> None:
    siem, publisher = EmbeddedSiem(), RecordingPublisher()
    handler, _, _ = await setup(siem, publisher)
    alert = Alert.from_hit(gcp_source("a5", 1))
    assert await handler(alert) is not None
    assert await handler(alert) is None
    assert len(publisher.published) == 1
