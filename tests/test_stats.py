"""``secbot stats``, ``@SecBot stats`` and the weekly report (issue 15), as a user sees them.

- the CLI's ``--json`` counts match the alerts the test created, on the embedded store and
  on the Elastic stand-in (statuses changed through the real app: reactions, a thread
  command, SecBot's own auto-close);
- ``@SecBot stats`` answers a triager in the thread with the table and a PNG chart uploaded
  through ``files_upload_v2`` to the Slack stand-in; anyone else is refused;
- the weekly report (the table tagged ``secbot_report``, the chart in its thread) is posted
  once although two service instances run, with a clock set to just after the week's slot,
  and once although a replica died between posting it and marking the week done.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from shipped import shipped_rules
from stack_support import INDEX, REPO, TRIAGER, VIEWER, Stack, eventually, posted, running_stack
from test_demo_browser import WAIT_MS, _launch, chromium, demo  # noqa: F401 (fixtures)

from secbot.rules.lists import load_lists
from secbot.rules.loader import load_rules
from secbot.rules.ruleset import RuleSet
from secbot.runtime.settings import load_settings
from secbot.runtime.wiring import build_service
from secbot.siem.embedded import EmbeddedSiem
from secbot.stats.weekly import week_key, week_slot
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

SHOT = REPO / "artifacts" / "demo-stats.png"
UPDATED = "kibana.alert.workflow_status_updated_at"
NOISE_RULE = """\
id: noise_always_benign
name: Benign noise
description: A rule whose alerts SecBot always closes (the test's auto-close).
match:
  rule_name: Benign Noise
route:
  channel: C0SECALERTS
auto_close:
  when: 'true'
  reason: false_positive
"""


@pytest.fixture(autouse=True)
def _no_secbot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SECBOT_")]:
        monkeypatch.delenv(name)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert(uid: str, rule: str, when: datetime, **extra: Any) -> dict[str, Any]:
    return {"@timestamp": stamp(when), "kibana.alert.uuid": uid,
            "kibana.alert.workflow_status": "open", "kibana.alert.severity": "high",
            "kibana.alert.rule.name": rule, "cloud": {"project": {"id": "prod-payments"}},
            "user": {"email": "dev@example.com"}, **extra}


async def cli_stats(env: dict[str, str], *args: str) -> dict[str, Any]:
    """``secbot stats --json`` as a person runs it: its own process, settings from env."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SECBOT_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "secbot", "stats", "--json", *args, cwd=REPO,
        env={**clean, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1  # ONE object
    return dict(json.loads(lines[0]))


def by_rule(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["rule"]: row for row in doc["rules"]}


def rules_with_noise(tmp_path: Path) -> RuleSet:
    directory = tmp_path / "rules"
    directory.mkdir()
    for path in (REPO / "rules").glob("*.yaml"):
        (directory / path.name).write_text(path.read_text("utf-8"), "utf-8")
    (directory / "noise_always_benign.yaml").write_text(NOISE_RULE, "utf-8")
    return load_rules(directory, lists=load_lists(REPO / "lists"))


# --- embedded ----------------------------------------------------------------------------------

async def test_stats_json_counts_match_on_the_embedded_store(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite3"
    siem = EmbeddedSiem(db)
    now = datetime.now(UTC)
    await siem.insert([alert(f"g{i}", "GCP Service Account Key Creation", now - timedelta(
        hours=i + 1)) for i in range(5)] + [
        alert("n1", "Benign Noise", now - timedelta(hours=2)),
        alert("old", "GCP Service Account Key Creation", now - timedelta(days=10))])
    await siem.set_status(["g1"], "acknowledged", reason=None, user="U0TRIAGER")
    await siem.set_status(["g2"], "closed", reason="false_positive", user="U0TRIAGER")
    await siem.set_status(["g3"], "closed", reason="benign_positive", user="U0TRIAGER")
    await siem.set_status(["n1"], "closed", reason="false_positive", user="secbot")
    await siem.close()

    doc = await cli_stats({"SECBOT_SIEM": "embedded", "SECBOT_EMBEDDED_DB": str(db)})
    assert set(doc) >= {"since", "until", "rules"}
    gcp = by_rule(doc)["GCP Service Account Key Creation"]
    assert {k: gcp[k] for k in ("alerts", "auto_closed", "closed", "acknowledged", "open")} == {
        "alerts": 5, "auto_closed": 0, "closed": 2, "acknowledged": 1, "open": 2}
    assert gcp["closed_by_reason"] == {"false_positive": 1, "benign_positive": 1}
    assert gcp["mtta_s"] is not None and gcp["mttr_s"] is not None
    noise = by_rule(doc)["Benign Noise"]
    assert (noise["alerts"], noise["auto_closed"], noise["closed"]) == (1, 1, 0)
    assert noise["mttr_s"] is None  # SecBot's closes stay out of the people's medians
    assert doc["top"][0] == "GCP Service Account Key Creation"
    assert doc["previous"]["alerts"] == 1  # the ten-day-old alert, in the week before
    wider = await cli_stats({"SECBOT_SIEM": "embedded", "SECBOT_EMBEDDED_DB": str(db)}, "--since",
                      "30d")
    assert by_rule(wider)["GCP Service Account Key Creation"]["alerts"] == 6


# --- through the real app on the Elastic stand-in ---------------------------------------------

@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(rules_with_noise(tmp_path)) as running:
        yield running


def es_env(stack: Stack) -> dict[str, str]:
    return {"SECBOT_SIEM": "elastic", "SECBOT_ELASTICSEARCH_URL": stack.elastic.url,
            "SECBOT_KIBANA_URL": stack.elastic.kibana_url,
            "SECBOT_ALERTS_INDEX": INDEX, "SECBOT_SOURCES_DIR": str(REPO / "no-sources")}


def status(stack: Stack, uid: str) -> str:
    return str(stack.es_doc(uid).get("kibana.alert.workflow_status"))


async def test_stats_json_counts_match_what_people_and_secbot_did(stack: Stack) -> None:
    now = datetime.now(UTC)
    gcp = [alert(f"st-{i}", "GCP Service Account Key Creation", now - timedelta(minutes=30 - i),
                 user={"email": f"dev{i}@example.com"}) for i in range(4)]
    stack.elastic.index_documents(INDEX, [*gcp, alert("st-noise", "Benign Noise",
                                                       now - timedelta(minutes=5))])
    messages = await posted(stack, "C0PRODSEC", 4)
    ts = {m.metadata["event_payload"]["alert_uuid"]: m.ts for m in messages}
    stack.slack.user_reacts(TRIAGER, "eyes", "C0PRODSEC", ts["st-1"])
    stack.slack.user_reacts(TRIAGER, "white_check_mark", "C0PRODSEC", ts["st-2"])
    stack.slack.user_mentions_bot(TRIAGER, "close false_positive", "C0PRODSEC",
                                  thread_ts=ts["st-3"])

    async def all_done() -> bool:
        tags = stack.es_doc("st-noise").get("kibana.alert.workflow_tags") or []
        return ([status(stack, f"st-{i}") for i in range(4)]
                == ["open", "acknowledged", "closed", "closed"]
                and status(stack, "st-noise") == "closed" and "closed_by:secbot" in tags
                and all(any(t.startswith("closed_by:") for t in
                            stack.es_doc(f"st-{i}").get("kibana.alert.workflow_tags") or [])
                        for i in (2, 3)))

    await eventually(all_done)
    before = stack.elastic.es.aggregation_searches
    doc = await cli_stats(es_env(stack), "--since", "1d")
    row = by_rule(doc)["GCP Service Account Key Creation"]
    assert {k: row[k] for k in ("alerts", "auto_closed", "closed", "acknowledged", "open")} == {
        "alerts": 4, "auto_closed": 0, "closed": 2, "acknowledged": 1, "open": 1}
    reason = stack.settings.reactions["white_check_mark"].partition(":")[2]
    assert row["closed_by_reason"] == {reason: 1, "false_positive": 1}
    assert row["mttr_s"] > 0 and row["mtta_s"] > 0
    noise = by_rule(doc)["Benign Noise"]
    assert (noise["alerts"], noise["auto_closed"], noise["closed"]) == (1, 1, 0)
    assert [s["source"] for s in doc["sources"]] == ["elastic"]
    # One aggregation request answered the whole call (both periods).
    assert stack.elastic.es.aggregation_searches - before == 1


async def test_at_secbot_stats_answers_with_a_table_and_a_chart_in_the_thread(
    stack: Stack,
) -> None:
    stack.elastic.index_documents(INDEX, [alert("sc-1", "GCP Service Account Key Creation",
                                                datetime.now(UTC) - timedelta(minutes=3))])
    [message] = await posted(stack, "C0PRODSEC")
    stack.slack.user_mentions_bot(TRIAGER, "stats 7d", "C0PRODSEC", thread_ts=message.ts)

    async def chart() -> Any:
        return stack.slack.files.shared("C0PRODSEC", message.ts)

    [shared] = await eventually(chart)
    assert shared.data is not None and shared.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert shared.name.endswith(".png") and shared.completed
    replies = stack.slack.replies("C0PRODSEC", message.ts)
    table = [r for r in replies if "Alert statistics" in r.text]
    assert table and "GCP Service Account Key Creation" in table[0].text
    assert [r for r in replies if r.files]  # the chart is a message in the thread
    steps = [c.method for c in stack.slack.calls if c.method.startswith("files.")]
    assert steps == ["files.getUploadURLExternal", "files.completeUploadExternal"]

    stack.slack.user_mentions_bot(VIEWER, "stats", "C0PRODSEC", thread_ts=message.ts)

    async def refused() -> bool:
        return any(e.get("user") == VIEWER and "triager" in str(e.get("text"))
                   for e in stack.slack.ephemeral)

    await eventually(refused)
    assert len(stack.slack.files.shared("C0PRODSEC", message.ts)) == 1


# --- the weekly report --------------------------------------------------------------------------

def reports(slack: SlackEmulator) -> list[Any]:
    """The weekly report messages (tagged ``secbot_report``) in the report channel."""
    return [m for m in slack.messages("C0REPORTS") if m.thread_ts in (None, "", m.ts)
            and m.metadata and m.metadata.get("event_type") == "secbot_report"]


def charts(slack: SlackEmulator) -> list[Any]:
    """The chart replies under the weekly reports."""
    return [r for m in reports(slack) for r in slack.replies("C0REPORTS", m.ts) if r.files]


async def test_weekly_report_posts_once_across_two_instances() -> None:
    monday = week_slot(datetime(2026, 11, 30, 12, tzinfo=UTC), 0, 9)
    now = monday + timedelta(minutes=5)
    prefix = f"secbot-stats-weekly:{uuid.uuid4().hex}:"
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        slack.add_channel("C0REPORTS", "secbot-reports")
        es.index_documents(INDEX, [alert("wk-1", "GCP Service Account Key Creation",
                                         now - timedelta(days=2), **{
                                             "kibana.alert.workflow_status": "closed"})])
        settings = load_settings(
            slack_bot_token=slack.bot_token, slack_app_token=slack.app_token,
            slack_api_url=slack.api_url, siem="elastic", elasticsearch_url=es.url,
            kibana_url=es.kibana_url, default_channel="C0DEFAULT", triagers=["S0TRIAGE"],
            poll_interval=0.2, http_port=0, intake_port=0, redis_prefix=prefix, slack_pace=0,
            rules_dir=REPO / "rules", report_channel="C0REPORTS")
        rules = shipped_rules()
        built = [await build_service(settings, rules, report_clock=lambda: now)
                 for _ in range(2)]
        tasks = [asyncio.create_task(service.run()) for service, _ in built]
        try:
            async def charted() -> Any:
                return charts(slack)

            [chart] = await eventually(charted)
            await asyncio.sleep(1.0)  # both instances have checked by now
            [report] = reports(slack)
            assert len(charts(slack)) == 1
            assert f"Weekly report {week_key(monday)}" in report.text
            assert "GCP Service Account Key Creation" in report.text
            assert report.metadata == {"event_type": "secbot_report",
                                       "event_payload": {"week": week_key(monday)}}
            assert chart.thread_ts == report.ts  # the chart hangs under the table
            assert chart.files[0]["mimetype"] == "image/png"
        finally:
            for service, _ in built:
                service.stop()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            for _, resources in built:
                await resources.aclose()
            store = RedisStore.from_url(settings.redis_url, prefix)
            keys = [k async for k in store._client.scan_iter(match=prefix + "*")]
            if keys:
                await store._client.delete(*keys)
            await store.close()


# --- the demo page shows the chart --------------------------------------------------------------

def test_demo_page_shows_the_stats_chart(chromium: Path, demo: str) -> None:  # noqa: F811
    """``@SecBot stats 1d`` typed in a thread on the demo page → the table and the chart image
    (served by the Slack stand-in, allowed by the page's CSP) appear in that thread."""
    from playwright.sync_api import expect, sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = _launch(pw, chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        try:
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.goto(demo + "/")
            page.get_by_test_id("user-picker").select_option(TRIAGER)
            message = page.get_by_test_id("message").filter(
                has=page.get_by_test_id("thread-input")).first
            expect(message).to_be_visible(timeout=WAIT_MS)
            box = message.get_by_test_id("thread-input")
            box.fill("@SecBot stats 1d")
            box.press("Enter")
            answer = message.get_by_test_id("reply").filter(has_text="Alert statistics")
            expect(answer).to_be_visible(timeout=WAIT_MS)
            chart = message.get_by_test_id("file")
            expect(chart).to_be_visible(timeout=WAIT_MS)
            page.wait_for_function("img => img.complete && img.naturalWidth > 100",
                                   arg=chart.element_handle(), timeout=WAIT_MS)
            SHOT.parent.mkdir(exist_ok=True)
            chart.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOT))
        finally:
            browser.close()
    assert not errors, errors


# --- per source, and the weekly schedule ---------------------------------------------------------

async def test_mapped_source_alerts_are_counted_per_source_beside_the_siem() -> None:
    from secbot.siem.own_embedded import EmbeddedAlertStore
    from secbot.siem.routing import RoutingSiem
    from secbot.stats.report import fetch_report

    now = datetime.now(UTC)
    siem, own = EmbeddedSiem(), EmbeddedAlertStore()
    await siem.insert([alert("e1", "GCP Service Account Key Creation", now - timedelta(hours=1))])
    await own.insert([alert("threatstack:1", "Threat Stack host alert", now - timedelta(hours=2),
                            **{"secbot.source": "threatstack"}),
                      alert("threatstack:2", "Threat Stack host alert", now - timedelta(hours=3),
                            **{"secbot.source": "threatstack"})])
    routing = RoutingSiem(siem, own, ["threatstack"])
    await routing.set_status(["threatstack:1"], "closed", reason="false_positive", user="U1")
    report = await fetch_report(routing, timedelta(days=7), now)
    sources = {line.name: (line.alerts, line.closed) for line in report.sources}
    assert sources == {"elastic": (1, 0), "threatstack": (2, 1)}
    ts_rule = next(line for line in report.rules if line.name == "Threat Stack host alert")
    assert ts_rule.sources == ("threatstack",) and ts_rule.closed_by_reason == (
        ("false_positive", 1),)
    await routing.close()


async def test_weekly_report_waits_for_its_slot_and_posts_once_a_week() -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    from secbot.stats.weekly import WeeklyReport
    from secbot.store.memory import MemoryStore

    clock = [datetime(2026, 11, 30, 8, 59, tzinfo=UTC)]  # a Monday, a minute early
    async with SlackEmulator.running() as slack:
        slack.add_channel("C0REPORTS", "secbot-reports")
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        siem = EmbeddedSiem()
        weekly = WeeklyReport(siem, MemoryStore(), client, "C0REPORTS", owner="a",
                              clock=lambda: clock[0])
        assert await weekly.tick() is False
        clock[0] += timedelta(minutes=1)
        assert await weekly.tick() is True
        clock[0] += timedelta(days=3)
        assert await weekly.tick() is False  # the same ISO week
        clock[0] += timedelta(days=4)
        assert await weekly.tick() is True  # the next Monday, after 09:00
        posts = reports(slack)
        assert [("2026-W49" in posts[0].text), ("2026-W50" in posts[1].text)] == [True, True]
        assert len(charts(slack)) == 2
        await siem.close()


async def test_a_failed_chart_upload_is_told_to_the_person(stack: Stack) -> None:
    stack.elastic.index_documents(INDEX, [alert("sf-1", "GCP Service Account Key Creation",
                                                datetime.now(UTC) - timedelta(minutes=3))])
    [message] = await posted(stack, "C0PRODSEC")
    stack.slack.fail("files.getUploadURLExternal", times=1, status=503)
    stack.slack.user_mentions_bot(TRIAGER, "stats", "C0PRODSEC", thread_ts=message.ts)

    async def told() -> bool:
        return any(e.get("user") == TRIAGER and "could not upload the chart" in str(e.get("text"))
                   for e in stack.slack.ephemeral)

    await eventually(told)
    replies = stack.slack.replies("C0PRODSEC", message.ts)
    assert [r for r in replies if "Alert statistics" in r.text]  # the table still came
    assert not stack.slack.files.shared("C0PRODSEC", message.ts)


# --- the Elastic stand-in's aggregations, as Elasticsearch answers them ------------------------

async def test_stand_in_aggregations_answer_in_elasticsearch_shapes() -> None:
    from elasticsearch import AsyncElasticsearch, BadRequestError

    now = datetime.now(UTC)
    async with ElasticEmulator.running() as emu:
        emu.index_documents("logs", [
            {"@timestamp": stamp(now - timedelta(seconds=i)), "rule": f"r{i % 3}",
             "kibana.alert.workflow_status_updated_at": stamp(
                 now - timedelta(seconds=i) + timedelta(seconds=10 * i))}
            for i in range(7)])
        es = AsyncElasticsearch(emu.url, max_retries=0)
        try:
            response = await es.search(index="logs", size=0, runtime_mappings={
                "took_ms": {"type": "long", "script": {"source":
                    f"if (doc['{UPDATED}'].size() > 0) {{ emit(doc['{UPDATED}'].value.toInstant()"
                    ".toEpochMilli() - doc['@timestamp'].value.toInstant().toEpochMilli()); }"}}},
                aggs={"rules": {"terms": {"field": "rule", "size": 2}, "aggs": {
                    "p": {"percentiles": {"field": "took_ms", "percents": [50]}}}},
                      "none": {"filter": {"term": {"rule": "nope"}}, "aggs": {
                          "p": {"percentiles": {"field": "took_ms", "percents": [50]}}}},
                      "r": {"filter": {"prefix": {"rule": "r"}}}})
            aggs = response.body["aggregations"]
            assert response.body["hits"]["hits"] == []
            assert aggs["rules"]["doc_count_error_upper_bound"] == 0
            assert [(b["key"], b["doc_count"]) for b in aggs["rules"]["buckets"]] == [
                ("r0", 3), ("r1", 2)]
            assert aggs["rules"]["sum_other_doc_count"] == 2  # r2's two, cut by size
            # r0: alerts 0, 3, 6 took 0, 30 000, 60 000 ms
            assert aggs["rules"]["buckets"][0]["p"] == {"values": {"50.0": 30000.0}}
            assert aggs["none"] == {"doc_count": 0, "p": {"values": {"50.0": None}}}
            assert aggs["r"] == {"doc_count": 7}
            with pytest.raises(BadRequestError):
                await es.search(index="logs", size=0, aggs={"x": {"no_such_agg": {}}})
        finally:
            await es.close()


async def test_a_replica_that_died_after_posting_the_weekly_report_is_not_repeated() -> None:
    """The first replica posts the week's report and "dies" before its done mark (the mark
    deleted, the lease lapsed); the next replica finds the tagged message in the channel's
    history and marks the week done without posting again. A replica that died before
    posting anything (attempt noted, no message) still gets the week posted."""
    from slack_sdk.web.async_client import AsyncWebClient

    from secbot.stats.weekly import ATTEMPT_CHECKPOINT, DONE_CHECKPOINT, WeeklyReport

    clock = [datetime(2026, 12, 7, 9, 5, tzinfo=UTC)]  # Monday of 2026-W50
    prefix = f"secbot-stats-crash:{uuid.uuid4().hex}:"
    store = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix)
    async with SlackEmulator.running() as slack:
        slack.add_channel("C0REPORTS", "secbot-reports")
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        siem = EmbeddedSiem()

        def replica(owner: str) -> WeeklyReport:
            return WeeklyReport(siem, store, client, "C0REPORTS", owner=owner,
                                clock=lambda: clock[0])
        try:
            assert await replica("a").tick() is True
            await store._client.delete(store._key("checkpoint", DONE_CHECKPOINT))
            await store._client.delete(store._key("lease", f"{DONE_CHECKPOINT}:2026-W50"))
            assert await replica("b").tick() is False  # found in history: not again
            assert len(reports(slack)) == 1
            assert len(charts(slack)) == 1
            assert await store.get_checkpoint(DONE_CHECKPOINT) == "2026-W50"
            assert await replica("c").tick() is False

            # Next week: the replica died after noting the attempt, before any post.
            clock[0] += timedelta(days=7)
            await store.set_checkpoint(ATTEMPT_CHECKPOINT, "2026-W51")
            assert await replica("d").tick() is True
            assert [m.metadata["event_payload"]["week"] for m in reports(slack)] == [
                "2026-W50", "2026-W51"]
        finally:
            await siem.close()
            keys = [k async for k in store._client.scan_iter(match=prefix + "*")]
            if keys:
                await store._client.delete(*keys)
            await store.close()
