"""The intake listener (DESIGN.md §11) through a real aiohttp server and the real Redis stream.

Every status code of the contract, the body shapes, and that a 202 means "in the stream":
the test reads the stream back with the consumer a running service uses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from reliability_harness import SHARED_REDIS, delete_prefix, unique_prefix

from secbot.domain.alert import Alert
from secbot.intake.consumer import IntakeConsumer
from secbot.intake.listener import IntakeConfig, intake_app
from secbot.intake.queue import IntakeQueue
from secbot.intake.sources import SourceLoadError, load_sources

TOKEN = "s3cret-elastic-token"
TS_TOKEN = "s3cret-threatstack"
REPO = Path(__file__).resolve().parents[1]


def elastic_alert(uid: str) -> dict[str, Any]:
    return {"@timestamp": "2024-05-01T10:00:00.000Z", "kibana.alert.uuid": uid,
            "kibana.alert.rule.name": "Okta Sign-In From New Country"}


class Intake:
    """A listener on a free port, its queue, and an HTTP client with the right token."""

    def __init__(self, url: str, queue: IntakeQueue, config: IntakeConfig) -> None:
        self.url = url
        self.queue = queue
        self.config = config

    async def post(self, source: str = "elastic", body: Any = None, *, token: str | None = TOKEN,
                   raw: bytes | None = None, headers: dict[str, str] | None = None
                   ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        content = raw if raw is not None else json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(f"{self.url}/v1/alerts/{source}", content=content,
                                   headers=sent)

    async def stored(self) -> list[Alert]:
        """What a consumer gets from the stream (and acknowledges)."""
        seen: list[Alert] = []

        async def handler(alert: Alert) -> None:
            seen.append(alert)

        consumer = IntakeConsumer(self.queue, handler, name="test", block=0.05)
        await consumer.once()
        return seen


@pytest.fixture
async def intake() -> AsyncIterator[Intake]:
    prefix = unique_prefix("intake")
    client = aioredis.Redis.from_url(SHARED_REDIS, decode_responses=True)
    queue = IntakeQueue(client, prefix, reclaim_after=0.2)
    config = IntakeConfig(
        sources=load_sources(REPO / "sources"),
        tokens={"elastic": TOKEN, "threatstack": TS_TOKEN},
        queue=queue, max_bytes=4096, rate=1000.0,
    )
    server = TestServer(intake_app(config), host="127.0.0.1")
    await server.start_server()
    try:
        yield Intake(str(server.make_url("")).rstrip("/"), queue, config)
    finally:
        await server.close()
        await client.aclose()
        await delete_prefix(SHARED_REDIS, prefix)


async def test_each_body_shape_is_accepted_and_stored_in_order(intake: Intake) -> None:
    one = await intake.post(body=elastic_alert("a-1"))
    many = await intake.post(body=[elastic_alert("a-2"), elastic_alert("a-3")])
    wrapped = await intake.post(body={"alerts": [elastic_alert("a-4")]})
    ndjson = "\n".join(json.dumps(elastic_alert(f"a-{i}")) for i in (5, 6)) + "\n"
    lines = await intake.post(raw=ndjson.encode(),
                              headers={"Content-Type": "application/x-ndjson"})
    answers = [(r.status_code, r.json()) for r in (one, many, wrapped, lines)]
    assert answers == [(202, {"accepted": 1}), (202, {"accepted": 2}), (202, {"accepted": 1}),
                       (202, {"accepted": 2})]
    stored = await intake.stored()
    assert [a.uuid for a in stored] == [f"a-{i}" for i in range(1, 7)]
    assert stored[0].get_field("secbot.source") == "elastic"
    assert await intake.queue.backlog() == 0  # acknowledged and removed once handed off


async def test_wrong_or_missing_token_is_401_without_detail(intake: Intake) -> None:
    for token in (None, "nope", TS_TOKEN):  # TS_TOKEN is another source's token
        answer = await intake.post(body=elastic_alert("x"), token=token)
        assert (answer.status_code, answer.json()) == (401, {"error": "unauthorized"})
    basic = await intake.post(body=elastic_alert("x"), token=None,
                              headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert await intake.queue.backlog() == 0


async def test_unknown_source_is_404(intake: Intake) -> None:
    answer = await intake.post("nosuchsource", body=elastic_alert("x"))
    assert answer.status_code == 404
    assert "error" in answer.json()


async def test_bad_alert_is_400_naming_index_and_field_and_nothing_is_stored(
    intake: Intake,
) -> None:
    answer = await intake.post(body=[elastic_alert("ok-1"), {"kibana.alert.rule.name": "x"}])
    assert answer.status_code == 400
    body = answer.json()
    assert (body["index"], body["field"]) == (1, "kibana.alert.uuid")
    assert "alert 1" in body["error"] and "kibana.alert.uuid" in body["error"]
    broken = await intake.post(raw=b'{"kibana.alert.uuid": ')
    assert broken.status_code == 400 and "JSON" in broken.json()["error"]
    empty = await intake.post(body=[])
    assert empty.status_code == 400
    bad_line = await intake.post(raw=b'{"kibana.alert.uuid": "n1"}\nnot json\n',
                                 headers={"Content-Type": "application/x-ndjson"})
    assert bad_line.status_code == 400 and "line 2" in bad_line.json()["error"]
    assert await intake.queue.backlog() == 0  # all or nothing: ok-1 was not stored either


async def test_body_over_the_limit_is_413_by_header_and_by_stream(intake: Intake) -> None:
    big = json.dumps([elastic_alert(f"big-{i}") for i in range(100)]).encode()
    assert len(big) > intake.config.max_bytes
    declared = await intake.post(raw=big)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked transfer
        for start in range(0, len(big), 1000):
            yield big[start:start + 1000]

    async with httpx.AsyncClient(timeout=10) as http:
        streamed = await http.post(
            f"{intake.url}/v1/alerts/elastic", content=chunks(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
    assert streamed.status_code == 413
    assert await intake.queue.backlog() == 0


async def test_over_the_rate_is_429_with_retry_after(intake: Intake) -> None:
    intake.config.rate = 5.0
    intake.config.buckets.clear()
    first = await intake.post(body=[elastic_alert(f"r-{i}") for i in range(30)])
    assert first.status_code == 202  # a batch passes while the bucket is not empty…
    second = await intake.post(body=elastic_alert("r-late"))
    assert second.status_code == 429  # …and the next request waits for the debt
    assert int(second.headers["Retry-After"]) >= 1
    other = await intake.post("threatstack", body={"id": "t-1", "title": "x"}, token=TS_TOKEN)
    assert other.status_code == 202  # the rate is per source


async def test_mapped_source_gets_kibana_fields_from_its_mapping(intake: Intake) -> None:
    answer = await intake.post("threatstack", token=TS_TOKEN, body={
        "id": "ts-77", "title": "Suspicious shell", "severity": 1,
        "created_at": "2024-05-01T09:00:00Z", "server": {"hostname": "web-1"}})
    assert answer.status_code == 202
    (alert,) = await intake.stored()
    assert alert.uuid == "threatstack:ts-77"
    assert alert.rule_name == "Suspicious shell"
    assert alert.severity == "critical"
    assert alert.get_field("secbot.source") == "threatstack"
    assert alert.get_field("server.hostname") == "web-1"
    missing = await intake.post("threatstack", token=TS_TOKEN, body={"title": "no id"})
    assert missing.status_code == 400 and missing.json()["field"] == "id"


async def test_failed_handoff_stays_pending_and_is_taken_over(intake: Intake) -> None:
    assert (await intake.post(body=elastic_alert("p-1"))).status_code == 202
    calls: list[str] = []

    async def flaky(alert: Alert) -> None:
        calls.append(alert.uuid)
        if len(calls) == 1:
            raise RuntimeError("slack down")

    dead = IntakeConsumer(intake.queue, flaky, name="dies", block=0.05)
    await dead.once()  # fails: not acknowledged
    assert await intake.queue.backlog() == 1
    await asyncio.sleep(0.3)  # idle longer than reclaim_after
    other = IntakeConsumer(intake.queue, flaky, name="other", block=0.05)
    await other.once()
    assert calls == ["p-1", "p-1"]
    assert await intake.queue.backlog() == 0


def test_invalid_mapping_files_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(
        "name: other\nid_field: id\nseverity_map: {\"1\": urgent}\ncolour: red\n")
    with pytest.raises(SourceLoadError) as caught:
        load_sources(tmp_path)
    text = str(caught.value)
    assert f"{tmp_path / 'acme.yaml'}:1: name must equal the file stem" in text
    assert f"{tmp_path / 'acme.yaml'}:3: severity_map" in text
    assert f"{tmp_path / 'acme.yaml'}:4: unknown key 'colour'" in text
