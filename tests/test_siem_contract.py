"""The Siem contract, run unchanged against every backend.

``embedded`` is the SQLite store; ``elastic`` is :class:`ElasticSiem` with real
``AsyncElasticsearch`` and ``httpx`` clients talking to the Elastic/Kibana emulator.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from secbot.domain.alert import parse_timestamp
from secbot.resilience.retry import RetryPolicy
from secbot.runtime.settings import Settings
from secbot.runtime.siem_clients import build_elastic_siem
from secbot.siem.base import OWN_ALERTS_INDEX, Checkpoint, Siem, SiemError
from secbot.siem.embedded import EmbeddedSiem
from secbot.siem.own_elastic import ElasticAlertStore
from secbot.siem.own_embedded import EmbeddedAlertStore
from secbot_emulators.elastic import ElasticEmulator

ALERTS = ".alerts-security.alerts-default"
Seeder = Callable[[list[dict[str, Any]], str | None], Awaitable[None]]


@pytest.fixture(autouse=True)
def _no_secbot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read SECBOT_* first; a developer's exported variables must not leak in."""
    for name in [n for n in os.environ if n.startswith("SECBOT_")]:
        monkeypatch.delenv(name)


@dataclass
class Backend:
    name: str
    siem: Siem
    seed: Seeder


@pytest.fixture(params=["embedded", "elastic", "own-embedded", "own-elastic"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param.startswith("own-"):
        async with own_store_backend(request.param) as own:  # issue 12: mapped sources
            yield own
        return
    if request.param == "embedded":
        embedded = EmbeddedSiem(":memory:")

        async def seed_embedded(docs: list[dict[str, Any]], index: str | None) -> None:
            await embedded.insert(docs, index=index)

        yield Backend("embedded", embedded, seed_embedded)
        await embedded.close()
        return
    async with ElasticEmulator.running(api_key="test-key") as emu:
        settings = Settings(
            elasticsearch_url=emu.url,
            kibana_url=emu.kibana_url,
            elasticsearch_api_key="test-key",
            alerts_index=ALERTS,
        )
        elastic = build_elastic_siem(settings)

        async def seed_elastic(docs: list[dict[str, Any]], index: str | None) -> None:
            emu.index_documents(index or ALERTS, docs)

        yield Backend("elastic", elastic, seed_elastic)
        await elastic.close()


@contextlib.asynccontextmanager
async def own_store_backend(name: str) -> AsyncIterator[Backend]:
    """SecBot's own alerts store (mapped intake sources), on SQLite or its own ES index."""
    if name == "own-embedded":
        store = EmbeddedAlertStore(":memory:")

        async def seed_own(docs: list[dict[str, Any]], index: str | None) -> None:
            await store.insert(docs, index=index)

        yield Backend(name, store, seed_own)
        await store.close()
        return
    async with ElasticEmulator.running(api_key="test-key") as emu:
        es = AsyncElasticsearch(emu.url, api_key="test-key", max_retries=0)
        own = ElasticAlertStore(es)

        async def seed_own_es(docs: list[dict[str, Any]], index: str | None) -> None:
            emu.index_documents(index or OWN_ALERTS_INDEX, docs)

        yield Backend(name, own, seed_own_es)
        await own.close()


BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


async def drain(siem: Siem, since: Checkpoint | None, limit: int) -> tuple[list[str], int]:
    """All pages from ``since`` (overlap 0 after the first page), as uuids; and page count."""
    uuids: list[str] = []
    pages = 0
    while True:
        page = await siem.fetch_new(since, limit=limit)
        pages += 1
        uuids += [alert.uuid for alert in page.alerts]
        if not page.more:
            return uuids, pages
        last = page.alerts[-1]
        assert last.timestamp is not None
        since = Checkpoint(last.timestamp, last.uuid)


async def test_sample_alerts_load_and_come_in_order(
    backend: Backend, sample_alerts: list[dict[str, Any]]
) -> None:
    await backend.seed(list(reversed(sample_alerts)), None)
    page = await backend.siem.fetch_new(None)
    assert not page.more
    assert [a.id for a in page.alerts] == [hit["_id"] for hit in sample_alerts]
    first, _, endpoint = page.alerts
    assert first.rule_name == "threat-match-rule"
    assert first.get_field("host.name") == "security-linux-1"
    assert endpoint.get_field("user.name") == "user1"
    assert endpoint.get_field("host.ip")[0] == "10.249.37.72"
    assert endpoint.timestamp == parse_timestamp("2023-04-27T11:03:57.906Z")


async def test_paging_across_more_than_limit(
    backend: Backend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    # Three alerts per second: the uuid tiebreaker must order ties and page through them.
    docs = [make_alert(f"uuid-{i:03d}", at(i // 3)) for i in range(25)]
    await backend.seed(list(reversed(docs)), None)
    uuids, pages = await drain(backend.siem, None, limit=10)
    assert uuids == [f"uuid-{i:03d}" for i in range(25)]
    assert pages == 3


async def test_overlap_rereads_recent_alerts(
    backend: Backend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    await backend.seed([make_alert(f"u{i}", at(i)) for i in range(10)], None)
    since = Checkpoint(at(9), "u9")
    assert (await backend.siem.fetch_new(since)).alerts == []
    page = await backend.siem.fetch_new(since, overlap_seconds=3.5)
    assert [a.uuid for a in page.alerts] == ["u6", "u7", "u8", "u9"]
    page = await backend.siem.fetch_new(Checkpoint(at(4), "u4"))
    assert [a.uuid for a in page.alerts] == [f"u{i}" for i in range(5, 10)]


async def test_building_block_and_triaged_alerts_are_excluded(
    backend: Backend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    await backend.seed(
        [
            make_alert("open-1", at(1)),
            make_alert("bb", at(2), building_block=True),
            make_alert("closed", at(3), status="closed"),
            make_alert("acked", at(4), status="acknowledged"),
            make_alert("open-2", at(5)),
            make_alert("future", datetime.now(UTC) + timedelta(hours=1)),
        ],
        None,
    )
    page = await backend.siem.fetch_new(None)
    assert [a.uuid for a in page.alerts] == ["open-1", "open-2"]


async def test_set_status_with_reason_and_noop(
    backend: Backend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    await backend.seed([make_alert("a1", at(1)), make_alert("a2", at(2))], None)
    before = datetime.now(UTC) - timedelta(seconds=1)
    change = await backend.siem.set_status(["a1"], "closed", reason="false_positive", user="U123")
    assert (change.updated, change.noops, list(change.missing)) == (1, 0, [])
    alert = await backend.siem.get("a1")
    assert alert is not None
    assert alert.workflow_status == "closed"
    assert alert.get_field("kibana.alert.workflow_reason") == "false_positive"
    assert alert.get_field("kibana.alert.workflow_user")
    updated_at = parse_timestamp(alert.get_field("kibana.alert.workflow_status_updated_at"))
    assert updated_at is not None and updated_at >= before

    again = await backend.siem.set_status(["a1", "a2"], "closed", reason=None, user="U123")
    assert (again.updated, again.noops) == (1, 1)
    assert [a.uuid for a in (await backend.siem.fetch_new(None)).alerts] == []

    reopened = await backend.siem.set_status(["a1", "nope"], "open", reason=None, user="U9")
    assert (reopened.updated, reopened.noops, list(reopened.missing)) == (1, 0, ["nope"])
    alert = await backend.siem.get("a1")
    assert alert is not None and alert.workflow_status == "open"
    assert not alert.has_field("kibana.alert.workflow_reason")
    with pytest.raises(ValueError, match="invalid closing reason"):
        await backend.siem.set_status(["a1"], "closed", reason="bored", user="U9")


async def test_add_tags(backend: Backend, make_alert: Callable[..., dict[str, Any]]) -> None:
    await backend.seed([make_alert("t1", at(1))], None)
    await backend.siem.add_tags(["t1"], ["closed_by:U123"])
    await backend.siem.add_tags(["t1"], ["closed_by:U123", "secbot"])
    alert = await backend.siem.get("t1")
    assert alert is not None
    assert list(alert.get_field("kibana.alert.workflow_tags")) == ["closed_by:U123", "secbot"]
    assert await backend.siem.get("missing") is None


async def test_search_by_user_email(
    backend: Backend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    await backend.seed(
        [
            make_alert("s1", at(1), user_email="ann@example.com"),
            make_alert("s2", at(2), user_email="bob@example.com"),
            make_alert("s3", at(3), **{"user.email": "ann@example.com"}),  # literal dotted key
        ],
        None,
    )
    found = await backend.siem.search({"user.email": "ann@example.com"})
    assert [doc["kibana.alert.uuid"] for doc in found] == ["s3", "s1"]
    recent = await backend.siem.search({"user.email": "ann@example.com"}, since=at(2))
    assert [doc["kibana.alert.uuid"] for doc in recent] == ["s3"]
    logs = [
        {
            "@timestamp": at(i).isoformat(),
            "user": {"email": "ann@example.com"},
            "source": {"ip": f"10.0.0.{i}"},
            "event": {"action": "login"},
        }
        for i in range(3)
    ]
    await backend.seed(logs, "logs-auth")
    hits = await backend.siem.search({"user.email": "ann@example.com"}, index="logs-auth", size=2)
    assert [doc["source"]["ip"] for doc in hits] == ["10.0.0.2", "10.0.0.1"]
    assert await backend.siem.search({"user.email": "x"}, index="no-such-index") == []


# --- bulk changes: bounded reads, partial results (issue 11) -----------------------------------


async def test_get_many_keys_by_the_id_asked_for(
    backend: Backend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    await backend.seed([make_alert(f"m{i}", at(i)) for i in range(3)], None)
    found = await backend.siem.get_many(["m0", "m2", "nope", "m2"])
    assert sorted(found) == ["m0", "m2"]
    assert found["m2"].uuid == "m2" and found["m0"].workflow_status == "open"
    assert await backend.siem.get_many([]) == {}


async def test_open_related_finds_open_alerts_sharing_any_entity(
    backend: Backend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    await backend.seed(
        [
            make_alert("r-old", at(1), user_email="ann@example.com"),  # before the window
            make_alert("r-user", at(10), user_email="ann@example.com"),
            make_alert("r-host", at(11), **{"host.name": "web-1"}),
            make_alert("r-closed", at(12), status="closed", user_email="ann@example.com"),
            make_alert("r-bb", at(13), building_block=True, user_email="ann@example.com"),
            make_alert("r-other", at(14), user_email="bob@example.com"),
        ],
        None,
    )
    found = await backend.siem.open_related(
        {"user.email": ["ann@example.com"], "host.name": ["web-1"]}, since=at(5))
    assert [a.uuid for a in found] == ["r-host", "r-user"]  # newest first
    one = await backend.siem.open_related({"user.email": ["ann@example.com"]}, since=at(0),
                                          size=1)
    assert [a.uuid for a in one] == ["r-user"]
    assert await backend.siem.open_related({}, since=at(0)) == []


@dataclass
class BulkBackend:
    name: str
    siem: Any  # EmbeddedSiem or ElasticSiem: both take ``chunk``
    seed: Seeder
    fail_second_batch: Callable[[], None]


@pytest.fixture(params=["embedded", "elastic"])
async def bulk_backend(request: pytest.FixtureRequest) -> AsyncIterator[BulkBackend]:
    """A SIEM sending two ids per status call, and a way to fail its second call for good."""
    if request.param == "embedded":
        embedded = EmbeddedSiem(":memory:", chunk=2)

        async def seed_embedded(docs: list[dict[str, Any]], index: str | None) -> None:
            await embedded.insert(docs, index=index)

        yield BulkBackend("embedded", embedded, seed_embedded,
                          lambda: embedded.faults.fail_after(1))
        await embedded.close()
        return
    async with ElasticEmulator.running(api_key="test-key") as emu:
        settings = Settings(elasticsearch_url=emu.url, kibana_url=emu.kibana_url,
                            elasticsearch_api_key="test-key", alerts_index=ALERTS)
        elastic = build_elastic_siem(settings, retry=RetryPolicy(attempts=2, base=0.01, cap=0.02))
        elastic.chunk = 2

        async def seed_elastic(docs: list[dict[str, Any]], index: str | None) -> None:
            emu.index_documents(index or ALERTS, docs)

        yield BulkBackend("elastic", elastic, seed_elastic,
                          lambda: emu.kibana.fail_route("status", status=500, after=1))
        await elastic.close()


async def test_a_bulk_change_failing_midway_says_which_ids_changed_and_which_failed(
    bulk_backend: BulkBackend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    siem = bulk_backend.siem
    await bulk_backend.seed(
        [make_alert(f"b{i}", at(i)) for i in range(5)]
        + [make_alert("b-closed", at(9), status="closed")],
        None,
    )
    bulk_backend.fail_second_batch()
    ids = ["b0", "b1", "b-closed", "b2", "b3", "nope", "b4"]
    change = await siem.set_status(ids, "closed", reason="benign_positive", user="U1")
    assert change.changed == ("b0", "b1")
    assert change.already == ("b-closed",) and change.missing == ("nope",)
    assert set(change.failed) == {"b2", "b3", "b4"} and not change.complete
    assert change.error  # what went wrong, for the person who asked
    assert (change.updated, change.noops) == (2, 1)
    statuses = {i: (await siem.get(i)).workflow_status for i in ("b0", "b1", "b2", "b3", "b4")}
    assert statuses == {"b0": "closed", "b1": "closed", "b2": "open", "b3": "open",
                        "b4": "open"}


async def test_a_bulk_change_failing_at_once_raises_and_changes_nothing(
    bulk_backend: BulkBackend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    siem = bulk_backend.siem
    await bulk_backend.seed([make_alert(f"c{i}", at(i)) for i in range(3)], None)
    bulk_backend.fail_second_batch()
    first = await siem.set_status(["c0", "c1"], "acknowledged", reason=None, user="U1")
    assert first.changed == ("c0", "c1")
    with pytest.raises(SiemError):
        await siem.set_status(["c2"], "acknowledged", reason=None, user="U1")
    assert (await siem.get("c2")).workflow_status == "open"


# --- stats (issue 15): computed by the store, counted the same by every backend ------------------

def _acted(uuid: str, ts: datetime, status: str, *, after: float, user: str,
           reason: str | None = None, tags: tuple[str, ...] = (), rule: str = "R1",
           **fields: Any) -> dict[str, Any]:
    from tests.conftest import make_alert_source

    doc = make_alert_source(uuid, ts, status=status, rule_name=rule, **fields)
    doc["kibana.alert.workflow_user"] = user
    doc["kibana.alert.workflow_status_updated_at"] = (
        (ts + timedelta(seconds=after)).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    if reason is not None:
        doc["kibana.alert.workflow_reason"] = reason
    if tags:
        doc["kibana.alert.workflow_tags"] = list(tags)
    return doc


async def test_stats_count_per_rule_with_people_and_secbot_apart(
    backend: Backend, make_alert: Callable[..., dict[str, Any]]
) -> None:
    await backend.seed([
        make_alert("o1", at(1), rule_name="R1"),
        _acted("k1", at(2), "acknowledged", after=60, user="U1"),
        _acted("c1", at(3), "closed", after=120, user="U1", reason="false_positive",
               tags=("closed_by:U1",)),
        _acted("c2", at(4), "closed", after=300, user="U2", reason="duplicate"),
        _acted("c3", at(5), "closed", after=600, user="u_kibana_profile"),
        _acted("a1", at(6), "closed", after=1, user="secbot", reason="automated_closure"),
        _acted("a2", at(7), "closed", after=2, user="u_kibana_profile",
               reason="automated_closure", tags=("closed_by:secbot",)),
        _acted("r1", at(8), "closed", after=900, user="U3", reason="true_positive",
               tags=("closed_by:secbot", "reopened_by:U1", "closed_by:U3")),
        make_alert("x1", at(9), rule_name="R2"),
        make_alert("bb", at(10), rule_name="R1", building_block=True),
        make_alert("old", at(-7200), rule_name="R1"),
    ], None)
    stats = await backend.siem.stats(at(0), at(3600))
    rows = {row.rule: row for row in stats.rows}
    assert set(rows) == {"R1", "R2"}
    r1 = rows["R1"]
    assert (r1.alerts, r1.auto_closed, r1.closed, r1.acknowledged, r1.open) == (8, 2, 4, 1, 1)
    assert dict(r1.closed_by_reason) == {"false_positive": 1, "duplicate": 1,
                                         "true_positive": 1, "unspecified": 1}
    assert r1.mttr_s == pytest.approx(450.0)  # median of 120, 300, 600, 900
    assert r1.mtta_s == pytest.approx(300.0)  # median of 60, 120, 300, 600, 900
    r2 = rows["R2"]
    assert (r2.alerts, r2.open, r2.closed, r2.mtta_s, r2.mttr_s) == (1, 1, 0, None, None)
    assert {row.source for row in stats.rows} == {"elastic"}
    empty = await backend.siem.stats(at(7200), at(9000))
    assert empty.rows == ()
    both = await backend.siem.stats(at(0), at(3600), previous_since=at(-7300))
    assert {row.rule: row.alerts for row in both.rows} == {"R1": 8, "R2": 1}
    assert [(row.rule, row.alerts, row.open) for row in both.previous] == [("R1", 1, 1)]
