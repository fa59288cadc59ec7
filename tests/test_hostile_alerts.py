"""Hostile alerts (issue #6 item 5): every one is posted, open, inert, within Block Kit limits.

Each corpus alert (``tests/hostile/alerts`` plus the generated giants in
:mod:`hostile_support`) goes through the real pipeline (shipped rules, no enrichers) and through
the real hand-off (``TriageHandler`` with the embedded SIEM and a recording publisher). A
deterministic exception anywhere on that path would make the poller retry the same alert
forever, so none may raise; a batch test checks one poll delivers every alert.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hostile_support import (
    ALERT_SECONDS,
    DEFAULT_CHANNEL,
    Doc,
    Stopwatch,
    alert_of,
    build,
    corpus_files,
    corpus_names,
    decision_problems,
    make_pipeline,
    message_problems,
    shipped_rules,
    siem_refusal,
    storable,
)
from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.alert import MAX_NESTING, TOO_DEEP, Alert, freeze, parse_timestamp, thaw
from secbot.intake.handoff import TriageHandler
from secbot.intake.poller import AlertPoller
from secbot.pipeline.decision import Decision
from secbot.pipeline.pipeline import Pipeline
from secbot.publish.slack import SlackPublisher
from secbot.render import mrkdwn as md
from secbot.render.blocks import render_message
from secbot.runtime.intake_wiring import rule_partition
from secbot.siem.embedded import EmbeddedSiem
from secbot.store.memory import MemoryStore
from secbot_emulators.slack import SlackEmulator

NAMES = corpus_names()
#: The SIEM's "now": alerts stamped later are not polled yet (as with Elasticsearch's lte: now).
NOW = datetime(2027, 1, 1, tzinfo=UTC)


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, Decision]] = []

    async def publish(self, alert: Alert, decision: Decision) -> None:
        self.published.append((alert.uuid, decision))

    async def correct(self, alert: Alert, decision: Decision, note: str) -> None:
        raise AssertionError(f"no hostile alert is auto-closed, so none is corrected: {note}")


def _assert_ok(decision: Decision, *, allow_duplicate: bool = False) -> None:
    problems = decision_problems(decision, allow_duplicate=allow_duplicate)
    assert not problems, "\n".join(problems[:20])


# -- the corpus itself -----------------------------------------------------------------------


def test_corpus_covers_every_category() -> None:
    kinds = Counter(name.split(":", 1)[1].split("_", 1)[0] for name in NAMES)
    for kind in ("missing", "types", "unicode", "inject", "keys", "timestamp", "big", "deep"):
        assert kinds[kind] >= 3, (kind, kinds)
    assert len(corpus_files()) >= 100
    print(f"\nhostile alert corpus: {len(NAMES)} alerts {dict(kinds)}", file=sys.stderr)


@pytest.mark.parametrize("name", NAMES)
async def test_storable_says_what_the_embedded_siem_accepts(name: str) -> None:
    refusal = await siem_refusal(build(name))
    assert (refusal is None) == storable(name), refusal


def test_corpus_alerts_have_distinct_uuids() -> None:
    # Distinct, so the batch test below can tell every alert was delivered exactly once.
    uuids = Counter(alert_of(build(name)).uuid for name in NAMES if name.startswith("file:"))
    uuids.pop("", None)
    assert [u for u, n in uuids.items() if n > 1] == []


# -- one alert at a time ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_hostile_alert_is_posted_open_and_inert(name: str) -> None:
    """The real hand-off: TriageHandler → real Pipeline (shipped rules, no enrichers) →
    recording publisher, with the alert stored in the embedded SIEM as the poller would see it
    (when that SIEM can hold it)."""
    doc = build(name)
    siem, store, publisher = EmbeddedSiem(clock=lambda: NOW), MemoryStore(), RecordingPublisher()
    handler = TriageHandler(make_pipeline(store), siem, store, publisher)
    alert = alert_of(doc)
    if storable(name):
        doc_id = str(doc.get("_id") or "doc-1") if "_source" in doc else "doc-1"
        await siem.insert([{**doc, "_id": doc_id} if "_source" in doc else
                           {"_id": doc_id, "_source": doc}])
        stored = await siem.get(doc_id)
        assert stored is not None
        alert = stored  # as the poller hands it over: through the SIEM's JSON and SQLite
    before = alert.workflow_status
    with Stopwatch() as watch:
        decision = await handler(alert)
    watch.check(ALERT_SECONDS, name)
    assert decision is not None
    _assert_ok(decision)
    assert [uuid for uuid, _ in publisher.published] == [alert.uuid]
    assert await store.is_posted(alert.uuid)
    assert await store.read_audit() == []  # nothing closed, nothing to audit
    assert await handler(alert) is None  # a second delivery is ignored
    # What thread commands read back later survives the store's JSON round trip.
    record = await store.load_record(alert.uuid)
    assert record is not None and record.uuid == alert.uuid and record.id == alert.id
    if storable(name):
        after = await siem.get(alert.id)
        assert after is not None and after.workflow_status == before  # not closed


async def test_unrouted_alert_without_default_channel_is_still_posted() -> None:
    pipeline = make_pipeline(default=None)
    decision = await pipeline.process(alert_of(build("file:inject_00")))
    assert decision.post and not decision.auto_close and decision.channel is None
    assert any("SECBOT_DEFAULT_CHANNEL" in note for note in decision.notes)
    assert message_problems(decision.message) == []


# -- a batch through the poller --------------------------------------------------------------


def _pollable(doc: Doc, minute: int) -> Doc:
    """``doc`` as the poll can see it: a date ``@timestamp`` up to now and status open.

    The SIEM only returns open alerts with a date ``@timestamp`` up to now (Elasticsearch
    rejects a malformed date at index time); garbage stamps and statuses are exercised one by
    one above.
    """
    source = dict(doc.get("_source", doc))
    stamp = parse_timestamp(source.get("@timestamp"))
    if stamp is None or stamp > NOW:
        source["@timestamp"] = f"2026-02-01T{minute // 60:02d}:{minute % 60:02d}:00.000Z"
    if source.get("kibana.alert.workflow_status", "open") != "open":
        source["kibana.alert.workflow_status"] = "open"  # the poll reads open alerts only
    return {**doc, "_source": source} if "_source" in doc else source


def _canary(index: int) -> Doc:
    return {
        "kibana.alert.uuid": f"canary-{index}",
        "@timestamp": f"2026-02-01T{index // 60:02d}:{index % 60:02d}:30.000Z",
        "kibana.alert.rule.name": "GCP Service Account Key Creation",
        "cloud.project.id": "sandbox-tools",
        "user.email": f"canary{index}@example.com",
    }


#: The batch: every file and every storable generated alert but the giants (each giant costs
#: up to a second, and is already handed off one by one above).
BATCH = [n for n in NAMES if storable(n) and not n.startswith("gen:big_")]


async def _poll_corpus(
    pipeline: Pipeline, names: list[str]
) -> tuple[list[str], list[Decision], int]:
    siem, publisher = EmbeddedSiem(clock=lambda: NOW), RecordingPublisher()
    store = pipeline.store
    assert isinstance(store, MemoryStore)
    docs: list[Doc] = []
    for index, name in enumerate(names):
        docs += [_pollable(build(name), index), _canary(index)]
    await siem.insert(docs)
    expected = sorted((await siem.fetch_new(None, limit=10_000)).alerts, key=lambda a: a.uuid)
    handler = TriageHandler(pipeline, siem, store, publisher)
    poller = AlertPoller(siem, store, page_size=50, partition=rule_partition(pipeline.matcher))
    delivered = await poller.poll_once(handler)
    assert await poller.poll_once(handler) == 0  # nothing left, nothing twice
    uuids = [uuid for uuid, _ in publisher.published]
    assert sorted(uuids) == sorted(a.uuid for a in expected)
    assert len(set(uuids)) == len(uuids)
    assert len(expected) == len(docs)
    still_open = (await siem.fetch_new(None, limit=10_000)).alerts
    assert len(still_open) == len(docs)  # nothing closed
    return uuids, [d for _, d in publisher.published], delivered


async def test_one_poll_delivers_every_hostile_alert_and_every_canary() -> None:
    uuids, decisions, delivered = await _poll_corpus(make_pipeline(), BATCH)
    assert delivered == len(uuids) == 2 * len(BATCH)
    for decision in decisions:
        _assert_ok(decision, allow_duplicate=True)
    assert sum(u.startswith("canary-") for u in uuids) == len(BATCH)


async def test_the_real_slack_publisher_posts_them_and_nobody_is_notified() -> None:
    """SlackPublisher (real AsyncWebClient) against the Slack emulator, which answers
    invalid_blocks like Slack and reports what a message would notify."""
    async with SlackEmulator.running() as slack:
        web = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        store = MemoryStore()
        pipeline, publisher = make_pipeline(store), SlackPublisher(web, store)
        for index, name in enumerate(BATCH):
            doc = build(name)  # every SIEM document has an _id, the uuid of last resort
            alert = alert_of(doc if "_source" in doc else {"_id": f"doc-{index}", "_source": doc})
            await publisher.publish(alert, await pipeline.process(alert))
        channels = {DEFAULT_CHANNEL}
        for rule in shipped_rules():
            if rule.rule.route:
                channels |= {rule.rule.route.channel or DEFAULT_CHANNEL}
                channels |= {choice.channel for choice in rule.rule.route.when}
        messages = [m for channel in channels for m in slack.messages(channel)]
        assert len(messages) == len(BATCH)  # a top-level post or a thread reply each
        assert [m.notifications() for m in messages if m.notifications()] == []


async def test_rendering_that_always_fails_still_posts_every_alert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The poisoned-alert case: a deterministic crash while rendering (a bug the corpus did not
    find) must not hold the queue; the alert goes out with a reduced message that says so."""

    def broken(view: Any) -> dict[str, Any]:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("secbot.pipeline.render.render_message", broken)
    files = [n for n in BATCH if n.startswith("file:")]
    _, decisions, _ = await _poll_corpus(make_pipeline(), files)
    assert len(decisions) == 2 * len(files)
    for decision in decisions:
        _assert_ok(decision, allow_duplicate=True)
        assert "could not render" in decision.message["text"]


async def test_rendering_that_fails_on_alert_data_falls_back_to_a_reduced_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fails_with_fields(view: Any) -> dict[str, Any]:
        if view.fields:
            raise TypeError("'<' not supported between instances of 'dict' and 'str'")
        return render_message(view)

    monkeypatch.setattr("secbot.pipeline.render.render_message", fails_with_fields)
    decision = await make_pipeline().process(alert_of(build("file:inject_rule_gcp")))
    _assert_ok(decision)
    assert decision.rule_id == "gcp_sa_key_created"
    assert "reduced form" in json.dumps(decision.message)


# -- the pieces the pipeline relies on, at their limits ---------------------------------------


def test_freeze_lookup_thaw_never_recurse_without_bound() -> None:
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = {"a": [deep]}
    alert = Alert.from_hit({"kibana.alert.uuid": "d", "x": deep})
    frozen = alert.get_field("x")
    depth = 0
    while not isinstance(frozen, str):
        frozen = frozen["a"] if depth % 2 == 0 else frozen[0]
        depth += 1
    assert frozen == TOO_DEEP and depth == MAX_NESTING - 1
    assert alert.get_field("x.a") is not None
    assert alert.get_field(".".join(["x"] + ["a"] * 200_000)) is None
    json.dumps(alert.to_json())
    assert thaw(freeze(thaw(alert.frozen))) == alert.to_json()
    assert md.escape(alert.get_field("x"))


@pytest.mark.parametrize(
    "value",
    ["garbage", "", 10**30, -(10**17), 10**400, float("inf"), float("nan"), True, [1], {"a": 1},
     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "+275760-09-13T00:00:00Z"],
)
def test_unusable_timestamps_are_none_never_an_exception(value: Any) -> None:
    assert parse_timestamp(value) is None


def test_timestamps_are_normalised_to_utc() -> None:
    stamp = parse_timestamp("2026-03-01T12:00:00+02:00")
    assert stamp is not None and stamp.utcoffset() is not None
    assert stamp.isoformat() == "2026-03-01T10:00:00+00:00"


def test_shipped_rules_are_what_the_corpus_aims_at() -> None:
    ids = {rule.id for rule in shipped_rules()}
    assert {"gcp_sa_key_created", "endpoint_malware", "okta_login_new_country"} <= ids
    assert DEFAULT_CHANNEL.startswith("C")
