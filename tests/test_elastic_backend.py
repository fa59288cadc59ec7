"""ElasticSiem against the emulator with the real clients: fidelity, Kibana quirks, faults.

Every fault test ends the same way: the poller delivered every alert exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch, BadRequestError, NotFoundError

from secbot.domain.alert import Alert
from secbot.intake.poller import AlertPoller
from secbot.resilience.retry import RetryPolicy
from secbot.runtime.settings import Settings
from secbot.runtime.siem_clients import build_elastic_siem
from secbot.siem.base import Checkpoint, SiemError
from secbot.siem.elastic import ElasticSiem, polling_query
from secbot.store.memory import MemoryStore
from secbot_emulators.elastic import ElasticEmulator

ALERTS = ".alerts-security.alerts-default"
BACKING = ".internal.alerts-security.alerts-default-000001"
KEY = "test-api-key"
FAST = RetryPolicy(attempts=40, base=0.05, cap=0.4, budget=8.0)
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
MakeAlert = Callable[..., dict[str, Any]]


@pytest.fixture(autouse=True)
def _no_secbot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read SECBOT_* first; a developer's exported variables must not leak in."""
    for name in [n for n in os.environ if n.startswith("SECBOT_")]:
        monkeypatch.delenv(name)


@pytest.fixture
async def emu() -> AsyncIterator[ElasticEmulator]:
    async with ElasticEmulator.running(api_key=KEY) as emulator:
        yield emulator


def make_siem(
    emu: ElasticEmulator, *, timeout: float = 5.0, retry: RetryPolicy = FAST, **overrides: Any
) -> ElasticSiem:
    values: dict[str, Any] = {
        "elasticsearch_url": emu.url,
        "kibana_url": emu.kibana_url,
        "elasticsearch_api_key": KEY,
        "alerts_index": ALERTS,
    }
    values.update(overrides)
    return build_elastic_siem(Settings(**values), request_timeout=timeout, retry=retry)


def seed(emu: ElasticEmulator, make_alert: MakeAlert, count: int, prefix: str = "a") -> None:
    emu.index_documents(
        ALERTS, [make_alert(f"{prefix}{i:03d}", BASE + timedelta(seconds=i)) for i in range(count)]
    )


class Recorder:
    """Counts hand-offs per uuid; ``on`` runs a hook before a given uuid is recorded."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()
        self.hooks: dict[str, Callable[[], None]] = {}

    async def __call__(self, alert: Alert) -> None:
        hook = self.hooks.pop(alert.uuid, None)
        if hook is not None:
            hook()
        self.calls[alert.uuid] += 1
        await self.store.mark_posted(alert.uuid, ttl=3600)


async def deliver_all(
    siem: ElasticSiem,
    expected: int,
    *,
    page_size: int = 7,
    hooks: dict[str, Callable[[], None]] | None = None,
    attempts: int = 5,
) -> Recorder:
    """Poll like the service loop (SiemError → try again later) until nothing is new."""
    store = MemoryStore()
    recorder = Recorder(store)
    recorder.hooks.update(hooks or {})
    poller = AlertPoller(siem, store, overlap_seconds=600, page_size=page_size)
    for _ in range(attempts):
        try:
            await poller.poll_once(recorder)
        except SiemError:
            await asyncio.sleep(0.2)
            continue
        if sum(recorder.calls.values()) >= expected:
            break
    await poller.poll_once(recorder)  # a final quiet poll re-reads the overlap
    assert len(recorder.calls) == expected
    assert set(recorder.calls.values()) == {1}, "an alert was delivered more than once"
    return recorder


# --- emulator fidelity with the real clients -----------------------------------------------


async def test_product_header_and_cluster_info(emu: ElasticEmulator) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as raw:
        ok = await raw.get("/", headers={"Authorization": f"ApiKey {KEY}"})
        denied = await raw.get("/")
        missing = await raw.get("/nope/_doc/1", headers={"Authorization": f"ApiKey {KEY}"})
    for response in (ok, denied, missing):
        assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    assert ok.json()["version"]["number"].startswith("9.")
    assert denied.status_code == 401
    assert denied.json()["error"]["root_cause"][0]["type"] == "security_exception"
    es = AsyncElasticsearch(emu.url, api_key=KEY)
    try:
        assert (await es.info())["tagline"] == "You Know, for Search"
    finally:
        await es.close()


async def test_error_bodies_surface_as_elasticsearch_exceptions(emu: ElasticEmulator) -> None:
    es = AsyncElasticsearch(emu.url, api_key=KEY, max_retries=0)
    try:
        with pytest.raises(NotFoundError) as missing:
            await es.search(index="no-such-index", query={"match_all": {}})
        cause = missing.value.body["error"]["root_cause"][0]
        assert (cause["type"], cause["resource.id"]) == (
            "index_not_found_exception",
            "no-such-index",
        )
        assert "no such index [no-such-index]" in str(missing.value)
        with pytest.raises(BadRequestError) as bad:
            await es.search(index=ALERTS, query={"fuzzy": {"user.name": "x"}})
        assert bad.value.message == "parsing_exception"
        empty = await es.search(index="no-such-index", ignore_unavailable=True)
        assert empty["hits"]["hits"] == []
    finally:
        await es.close()


async def test_bulk_doc_and_pit_with_shard_doc_tiebreaker(
    emu: ElasticEmulator, make_alert: MakeAlert
) -> None:
    es = AsyncElasticsearch(emu.url, api_key=KEY, max_retries=0)
    try:
        stamp = BASE.isoformat()
        operations: list[dict[str, Any]] = []
        for i in range(5):
            operations += [
                {"create": {"_index": ALERTS, "_id": f"p{i}"}},
                make_alert(f"p{i}", stamp),
            ]
        assert not (await es.bulk(operations=operations))["errors"]
        assert (await es.get(index=ALERTS, id="p3"))["_index"] == BACKING
        pit = await es.open_point_in_time(index=ALERTS, keep_alive="1m")
        emu.index_documents(ALERTS, [make_alert("after-pit", stamp)])  # not in the snapshot
        seen, after = [], None
        while True:
            page = await es.search(
                pit={"id": pit["id"], "keep_alive": "1m"},
                size=2,
                sort=[{"@timestamp": "asc"}],
                search_after=after,
            )
            hits = page["hits"]["hits"]
            if not hits:
                break
            assert all(len(hit["sort"]) == 2 for hit in hits)  # + implicit _shard_doc
            seen += [hit["_id"] for hit in hits]
            after = hits[-1]["sort"]
        assert seen == [f"p{i}" for i in range(5)]
        assert (await es.close_point_in_time(id=pit["id"]))["num_freed"] == 1
    finally:
        await es.close()


def test_polling_query_shape() -> None:
    since = Checkpoint(datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), "u-1")
    body = polling_query(since, 300, 200)
    assert body["size"] == 201 and body["track_total_hits"] is False
    assert body["sort"] == [
        {"@timestamp": {"order": "asc"}},
        {"kibana.alert.uuid": {"order": "asc"}},
    ]
    window = body["query"]["bool"]["filter"][0]["range"]["@timestamp"]
    assert window["gte"] == "2024-05-01T11:55:00.123Z" and window["lte"] == "now"
    assert body["query"]["bool"]["filter"][1] == {"term": {"kibana.alert.workflow_status": "open"}}
    assert body["query"]["bool"]["must_not"] == [
        {"exists": {"field": "kibana.alert.building_block_type"}}
    ]
    assert body["search_after"] == [1714564500123, "u-1"]
    assert "search_after" not in polling_query(None, 300, 200)


# --- Kibana ------------------------------------------------------------------------------


async def test_kibana_requires_xsrf_or_version_header(
    emu: ElasticEmulator, make_alert: MakeAlert
) -> None:
    seed(emu, make_alert, 1)
    path = "/api/detection_engine/signals/status"
    body = {"signal_ids": ["a000"], "status": "acknowledged"}
    auth = {"Authorization": f"ApiKey {KEY}"}
    async with httpx.AsyncClient(base_url=emu.kibana_url, headers=auth) as kibana:
        refused = await kibana.post(path, json=body)
        assert refused.status_code == 400
        assert refused.json()["message"] == "Request must contain a kbn-xsrf header."
        versioned = await kibana.post(
            path, json=body, headers={"elastic-api-version": "2023-10-31"}
        )
        assert versioned.json()["updated"] == 1
        bad_reason = await kibana.post(
            path,
            headers={"kbn-xsrf": "x"},
            json={"signal_ids": ["a000"], "status": "closed", "reason": "bored"},
        )
        assert bad_reason.status_code == 400
        assert bad_reason.json() == {
            "message": "bored is an invalid closing reason.",
            "status_code": 400,
        }
    assert emu.document(ALERTS, "a000")["kibana.alert.workflow_user"]  # type: ignore[index]


async def test_older_kibana_without_reason_is_remembered(
    emu: ElasticEmulator, make_alert: MakeAlert
) -> None:
    seed(emu, make_alert, 2)
    emu.kibana.supports_reason = False
    siem = make_siem(emu)
    try:
        change = await siem.set_status(["a000"], "closed", reason="false_positive", user="U1")
        assert change.updated == 1
        closed = emu.document(ALERTS, "a000") or {}
        assert closed["kibana.alert.workflow_status"] == "closed"
        assert "kibana.alert.workflow_reason" not in closed
        posts = [r for r in emu.requests if r[0] == "kibana"]
        assert len(posts) == 2  # rejected with the reason, accepted without it
        await siem.set_status(["a001"], "closed", reason="duplicate", user="U1")
        assert len([r for r in emu.requests if r[0] == "kibana"]) == 3  # no second rejection
    finally:
        await siem.close()


async def test_update_by_query_fallback_without_kibana(
    emu: ElasticEmulator, make_alert: MakeAlert
) -> None:
    seed(emu, make_alert, 2)
    siem = make_siem(emu, kibana_url=None)
    try:
        change = await siem.set_status(["a000", "a001"], "closed", reason="duplicate", user="U1")
        again = await siem.set_status(["a000"], "closed", reason="duplicate", user="U1")
        assert (change.updated, again.updated, again.noops) == (2, 0, 1)
        await siem.add_tags(["a000"], ["closed_by:U1"])
        doc = emu.document(ALERTS, "a000") or {}
        assert doc["kibana.alert.workflow_reason"] == "duplicate"
        assert doc["kibana.alert.workflow_user"] is None
        assert doc["kibana.alert.workflow_tags"] == ["closed_by:U1"]
        assert not [r for r in emu.requests if r[0] == "kibana"]
        assert any("_update_by_query" in r[2] for r in emu.requests)
    finally:
        await siem.close()


async def test_kibana_closing_reasons_as_kibana_9_2_validates_them(
    emu: ElasticEmulator, make_alert: MakeAlert
) -> None:
    seed(emu, make_alert, 3)
    path = "/api/detection_engine/signals/status"
    headers = {"kbn-xsrf": "x", "Authorization": f"ApiKey {KEY}"}
    async with httpx.AsyncClient(base_url=emu.kibana_url, headers=headers) as kibana:

        async def close(doc_id: str, reason: Any) -> httpx.Response:
            body = {"signal_ids": [doc_id], "status": "closed", "reason": reason}
            return await kibana.post(path, json=body)

        assert (await close("a000", "true_positive")).json()["updated"] == 1
        assert (emu.document(ALERTS, "a000") or {})["kibana.alert.workflow_reason"] == (
            "true_positive")
        refused = await close("a001", "x" * 1025)  # the schema caps custom reasons at 1024
        assert refused.status_code == 400 and refused.json()["error"] == "Bad Request"
        assert (await close("a001", "")).status_code == 400
        assert (await close("a001", "tuesday_drill")).json() == {
            "message": "tuesday_drill is an invalid closing reason.", "status_code": 400}
        emu.kibana.custom_reasons = ["tuesday_drill"]  # the advanced setting lists it now
        assert (await close("a001", "tuesday_drill")).json()["updated"] == 1
        assert (emu.document(ALERTS, "a001") or {})["kibana.alert.workflow_reason"] == (
            "tuesday_drill")
        acked = await kibana.post(path, json={"signal_ids": ["a002"], "status": "acknowledged",
                                              "reason": "duplicate"})
        assert acked.json()["updated"] == 1
    assert "kibana.alert.workflow_reason" not in (emu.document(ALERTS, "a002") or {})


async def test_update_by_query_interprets_painless_instead_of_trusting_it(
    emu: ElasticEmulator, make_alert: MakeAlert
) -> None:
    """A wrong script does exactly the wrong thing; syntax outside the subset is refused."""
    seed(emu, make_alert, 2)
    es = AsyncElasticsearch(emu.url, api_key=KEY)
    query = {"terms": {"_id": ["a000"]}}
    try:
        typo = "if (ctx._source['kibana.alert.workflow_status'] != null) {" \
               " ctx._source['kibana.alert.workflow_statsu'] = params.status }"
        await es.update_by_query(index=ALERTS, query=query, refresh=True, script={
            "source": typo, "lang": "painless", "params": {"status": "closed"}})
        doc = emu.document(ALERTS, "a000") or {}
        assert doc["kibana.alert.workflow_status"] == "open"
        assert doc["kibana.alert.workflow_statsu"] == "closed"
        noop = await es.update_by_query(index=ALERTS, query=query, script={
            "source": "ctx.op = 'noop'; ctx._source.x = 1", "lang": "painless"})
        assert noop["updated"] == 0 and "x" not in (emu.document(ALERTS, "a000") or {})
        with pytest.raises(BadRequestError) as refused:
            await es.update_by_query(index=ALERTS, query=query, script={
                "source": "ctx._source.count += 1", "lang": "painless"})
        assert refused.value.error == "script_exception"
    finally:
        await es.close()


# --- faults: every alert exactly once --------------------------------------------------------


async def test_outage_503_for_two_seconds(emu: ElasticEmulator, make_alert: MakeAlert) -> None:
    seed(emu, make_alert, 30)
    siem = make_siem(emu)
    try:
        # The outage starts mid-drain: retries must neither skip nor repeat alerts.
        started = time.monotonic()
        hooks = {"a010": lambda: emu.fail_for(2.0, status=503)}
        await deliver_all(siem, 30, hooks=hooks)
        assert time.monotonic() - started >= 2.0
        assert emu.faults.injected > 1
    finally:
        await siem.close()


async def test_429_bursts_with_retry_after(emu: ElasticEmulator, make_alert: MakeAlert) -> None:
    seed(emu, make_alert, 20)
    siem = make_siem(emu)
    try:
        emu.fail_next(3, status=429, retry_after=1)
        hooks = {"a012": lambda: emu.fail_next(4, status=429)}
        await deliver_all(siem, 20, hooks=hooks)
        assert emu.faults.injected == 7
    finally:
        await siem.close()


async def test_hang_longer_than_client_timeout(emu: ElasticEmulator, make_alert: MakeAlert) -> None:
    seed(emu, make_alert, 15)
    siem = make_siem(emu, timeout=0.3)
    try:
        hooks = {"a005": lambda: emu.hang_next(2, 1.0)}
        started = time.monotonic()
        await deliver_all(siem, 15, hooks=hooks)
        assert time.monotonic() - started >= 0.6  # two client timeouts happened
    finally:
        await siem.close()


async def test_outage_longer_than_retry_budget_resumes_later(
    emu: ElasticEmulator, make_alert: MakeAlert
) -> None:
    seed(emu, make_alert, 12)
    siem = make_siem(emu, retry=RetryPolicy(attempts=3, base=0.05, cap=0.1, budget=0.5))
    try:
        emu.fail_for(1.0, status=502)
        with pytest.raises(SiemError, match="unavailable"):
            await siem.fetch_new(None)
        await deliver_all(siem, 12, attempts=10)
    finally:
        await siem.close()


async def test_kibana_503_is_retried(emu: ElasticEmulator, make_alert: MakeAlert) -> None:
    seed(emu, make_alert, 1)
    siem = make_siem(emu)
    try:
        emu.fail_next(2, status=503, target="kibana")
        change = await siem.set_status(["a000"], "acknowledged", reason=None, user="U1")
        assert change.updated == 1
        assert (emu.document(ALERTS, "a000") or {})["kibana.alert.workflow_status"] == (
            "acknowledged"
        )
    finally:
        await siem.close()


async def test_wrong_api_key_names_url_and_index(
    emu: ElasticEmulator, make_alert: MakeAlert
) -> None:
    seed(emu, make_alert, 1)
    siem = make_siem(emu, elasticsearch_api_key="wrong")
    try:
        with pytest.raises(SiemError) as failure:
            await siem.fetch_new(None)
        message = str(failure.value)
        assert emu.url.removeprefix("http://") in message and ALERTS in message
        assert "401" in message and len(emu.requests) == 1  # not retried
    finally:
        await siem.close()
    kibana_denied = make_siem(emu, kibana_api_key="wrong")
    try:
        with pytest.raises(SiemError) as failure:
            await kibana_denied.set_status(["a000"], "closed", reason=None, user="U1")
        assert emu.kibana_url in str(failure.value) and ALERTS in str(failure.value)
    finally:
        await kibana_denied.close()


async def test_missing_index_is_a_siem_error(emu: ElasticEmulator) -> None:
    siem = make_siem(emu, alerts_index="alerts-typo")
    try:
        with pytest.raises(SiemError, match=r"alerts-typo.*404"):
            await siem.fetch_new(None)
    finally:
        await siem.close()


async def test_cli_serves_a_seed_file(tmp_path: Path, make_alert: MakeAlert) -> None:
    seed_file = tmp_path / "alerts.ndjson"
    seed_file.write_text(
        "\n".join(json.dumps(make_alert(f"c{i}", BASE.isoformat())) for i in range(3))
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "secbot_emulators.elastic",
        "--port",
        "0",
        "--kibana-port",
        "0",
        "--seed",
        str(seed_file),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
        assert banner["documents"] == 3
        siem = make_siem_from_urls(banner["elasticsearch"], banner["kibana"])
        try:
            assert len((await siem.fetch_new(None)).alerts) == 3
        finally:
            await siem.close()
    finally:
        process.terminate()
        await process.wait()


def make_siem_from_urls(es_url: str, kibana_url: str) -> ElasticSiem:
    return build_elastic_siem(Settings(elasticsearch_url=es_url, kibana_url=kibana_url))


async def test_retry_policy_backoff_jitter_and_give_up() -> None:
    from secbot.resilience.retry import RetryableError, retry_async

    policy = RetryPolicy(attempts=4, base=0.1, cap=0.3, budget=10)
    for attempt in range(6):
        ceiling = min(0.3, 0.1 * 2**attempt)
        assert ceiling / 2 <= policy.delay(attempt) <= ceiling
    assert policy.delay(0, retry_after=5) == 5  # the server's hint is honoured…
    assert policy.delay(0, retry_after=60) is None  # …unless longer than the call may wait
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def always_busy() -> None:
        raise RetryableError("busy")

    with pytest.raises(RetryableError):
        await retry_async(always_busy, policy, sleep=fake_sleep)
    assert len(sleeps) == 3

    async def broken() -> None:
        raise ValueError("not transient")

    with pytest.raises(ValueError):
        await retry_async(broken, policy, sleep=fake_sleep)
    assert len(sleeps) == 3
