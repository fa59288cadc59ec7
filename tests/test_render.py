"""Block Kit rendering: escaping, limits, templates and the default message's content."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from shipped import shipped_rules

from secbot.demo.enrichers import demo_enrichers
from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment
from secbot.render import mrkdwn as md
from secbot.render.blocks import STATUS_BLOCK_ID, AlertView, render_message, with_status
from secbot.render.enrichment_text import summarize_enrichment
from secbot.render.templates import compile_template
from secbot.runtime.settings import load_settings
from secbot.runtime.wiring import build_service
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

SHIPPED = shipped_rules()
INDEX = ".alerts-security.alerts-default"


def view(**overrides: Any) -> AlertView:
    alert = Alert.from_hit(
        {
            "kibana.alert.uuid": "uuid-1",
            "kibana.alert.rule.name": "SIEM rule",
            "kibana.alert.reason": "why",
        }
    )
    base: dict[str, Any] = dict(
        alert=alert,
        title="Rule title",
        rule_id="r1",
        severity="high",
        fields={"user.email": "a@example.com"},
        enrichments={},
        status_line="Open · rule has no auto_close",
    )
    base.update(overrides)
    return AlertView(**base)


def texts(message: dict[str, Any]) -> list[str]:
    out = [message["text"]]
    for block in message["blocks"]:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        out.extend(f["text"] for f in block.get("fields", []))
        out.extend(e["text"] for e in block.get("elements", []))
    return out


def test_default_message_shows_what_design_requires() -> None:
    enrichment = Enrichment.unavailable("gcp_project", "timeout after 5s")
    joined = "\n".join(texts(render_message(view(enrichments={"gcp_project": enrichment}))))
    for expected in (
        "Rule title",
        "SIEM rule",
        "HIGH",
        "user.email",
        "a@example.com",
        "GCP project",
        "gcp_project",
        "unavailable: timeout after 5s",
        "Open",
        "uuid-1",
    ):
        assert expected in joined, expected


def test_escaping_happens_before_truncation_and_limits_hold() -> None:
    huge = "&" * 5000 + "<!here>"
    message = render_message(view(fields={f"f{i}": huge for i in range(25)}, title=huge))
    for block in message["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= md.HEADER_MAX
        if isinstance(block.get("text"), dict):
            assert len(block["text"]["text"]) <= md.SECTION_TEXT_MAX
        assert len(block.get("fields", [])) <= md.MAX_FIELDS
        for field in block.get("fields", []):
            assert len(field["text"]) <= md.FIELD_TEXT_MAX
            assert not field["text"].endswith("&am…")
    assert sum(len(b.get("fields", [])) for b in message["blocks"]) == 25  # split, not dropped
    assert "<!here>" not in str(message)


def test_mrkdwn_texts_are_verbatim_so_bare_links_are_not_linkified() -> None:
    message = render_message(view())
    for block in message["blocks"]:
        if isinstance(block.get("text"), dict) and block["text"]["type"] == "mrkdwn":
            assert block["text"]["verbatim"] is True


def test_control_and_bidi_characters_are_removed() -> None:
    assert md.escape("evil\u202egnp.exe\x00") == "evilgnp.exe"


def test_template_outputs_are_escaped_but_literal_text_is_kept() -> None:
    title = compile_template("*Key* for {{ fields['user.email'] }}")
    message = render_message(view(fields={"user.email": "<!channel>"}, title_template=title))
    joined = "\n".join(texts(message))
    assert "*Key* for &lt;!channel&gt;" in joined


def test_template_with_missing_field_falls_back_and_says_so() -> None:
    body = compile_template("{{ fields['nope'] }}")
    joined = "\n".join(texts(render_message(view(body_template=body))))
    assert "message template failed" in joined
    assert "why" in joined  # the default body (alert reason) is shown instead


def test_sandbox_blocks_attribute_escapes() -> None:
    body = compile_template("{{ fields.__class__.__mro__ }}")
    joined = "\n".join(texts(render_message(view(body_template=body))))
    assert "message template failed" in joined


def test_invisible_character_class_matches_unicodedata() -> None:
    import sys
    import unicodedata

    if unicodedata.unidata_version != "14.0.0":
        pytest.skip("the class is generated from Unicode 14 (Python 3.11)")
    step = 1 if "--full-unicode" in sys.argv else 7  # sampled: the full scan takes seconds
    for cp in range(0, 0x110000, step):
        ch = chr(cp)
        invisible = unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") and ch not in "\n\t"
        assert (md.strip_invisible(ch) == "") == invisible, hex(cp)


# -- issue 10: the status survives any number of fields; enrichment reads as people expect ----


def _status_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in message["blocks"] if b.get("block_id") == STATUS_BLOCK_ID]


async def test_hundreds_of_fields_keep_status_and_id_so_a_later_edit_succeeds() -> None:
    """Through the Slack emulator, which refuses > 50 blocks like Slack: post, then ✅ edit."""
    from slack_sdk.web.async_client import AsyncWebClient

    message = render_message(view(fields={f"field.{i}": i for i in range(600)}))
    assert len(message["blocks"]) <= md.MAX_BLOCKS
    assert len(_status_blocks(message)) == 1
    assert "uuid-1" in texts(message)[-1]  # the alert id is the last block
    assert any("more blocks not shown" in t for t in texts(message))
    async with SlackEmulator.running() as slack:
        web = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        posted = await web.chat_postMessage(channel="C0SECALERTS", **message)
        closed = with_status(message, "Closed by <@U0TRIAGER> · benign_positive", trusted=True)
        await web.chat_update(channel="C0SECALERTS", ts=posted["ts"], **closed)
        shown = slack.message("C0SECALERTS", posted["ts"])
    assert len(shown.blocks) <= md.MAX_BLOCKS
    assert "Closed by" in json.dumps(shown.blocks) and "uuid-1" in json.dumps(shown.blocks)


def _line(name: str, data: dict[str, Any]) -> str:
    return summarize_enrichment(Enrichment.ok(name, data))


def test_each_enricher_reads_as_a_short_human_line() -> None:
    project = {
        "project_id": "prod-payments",
        "project_number": "2002",
        "display_name": "Payments",
        "labels": {"team": "payments", "instance-type": "customer"},
        "parent": "folders/7",
        "state": "ACTIVE",
    }
    assert _line("gcp_project", project) == (
        "*GCP project*: Payments (`prod-payments`) · instance-type: customer · team: payments"
    )
    bob = {
        "email": "bob@example.com",
        "name": "Bob Ortiz",
        "division": "Sales",
        "title": "AE",
        "manager": "pat@example.com",
        "employment_status": "terminated",
        "terminated": True,
    }
    assert _line("hr", bob) == (
        "*Employee*: Bob Ortiz · AE, Sales · manager pat@example.com · "
        ":rotating_light: *Terminated employee*"
    )
    active = {**bob, "employment_status": "active", "terminated": False}
    assert "Terminated" not in _line("hr", active) and _line("hr", active).endswith("· active")
    assert _line("oncall", {"on_call": True, "schedules": ["platform-primary"]}) == (
        "*On call*: yes (platform-primary)"
    )
    assert _line("oncall", {"on_call": False, "schedules": []}) == "*On call*: no"
    grant = {
        "permission": "roles/owner",
        "resource": "projects/p",
        "granted_at": "t0",
        "expires_at": "2026-11-01T12:00:00Z",
        "justification": "INC-1",
    }
    assert _line("jit_permissions", {"grants": [grant]}) == (
        "*JIT access*: 1 active grant\n"
        "• `roles/owner` on `projects/p`, expires 2026-11-01T12:00:00Z — “INC-1”"
    )
    intel = {
        "indicator": "203.0.113.66",
        "verdict": "malicious",
        "sources": [
            {"provider": "abuseipdb", "verdict": "malicious", "details": {"score": 97}},
            {"provider": "greynoise", "verdict": "benign", "details": {}},
        ],
    }
    assert _line("threat_intel", intel) == (
        "*Threat intel*: `203.0.113.66` · :red_circle: *malicious* — "
        "abuseipdb: malicious, greynoise: benign"
    )
    domain = {
        "query": "new.example.net",
        "registrar": "NameCheap, Inc.",
        "created": "2026-10-27T14:02:11Z",
        "age_days": 5,
        "young_domain": True,
        "network_owner": None,
    }
    assert _line("whois", domain) == (
        "*WHOIS*: `new.example.net` · registrar NameCheap, Inc. · registered 2026-10-27 "
        "(5 days ago) · :warning: *young domain*"
    )
    account = {
        "email": "ci@p.iam.gserviceaccount.com",
        "display_name": "CI",
        "description": "",
        "project_id": "p",
        "disabled": True,
    }
    assert _line("gcp_service_account", account) == (
        "*Service account*: `ci@p.iam.gserviceaccount.com` (CI) in `p` · *disabled*"
    )
    assert summarize_enrichment(Enrichment.unavailable("whois", "not configured")) == (
        "*WHOIS* (`whois`) unavailable: not configured"
    )


def test_enrichment_data_is_escaped_and_odd_shapes_never_raise() -> None:
    hostile = {
        "name": "<!channel>",
        "title": ["x"],
        "division": {"a": 1},
        "manager": None,
        "terminated": "yes",
        "verdict": 3,
        "sources": "abc",
        "labels": [1],
        "grants": {"a": 1},
        "schedules": "s",
        "query": "<http://evil|x>",
    }
    for name in (
        "gcp_project",
        "hr",
        "oncall",
        "jit_permissions",
        "threat_intel",
        "whois",
        "gcp_service_account",
        "custom",
    ):
        line = _line(name, hostile)
        assert "<!channel>" not in line and "<http" not in line, name
    assert "&lt;!channel&gt;" in _line("hr", hostile)


# -- through the real service with the demo's stand-in enrichers -----------------------------


@pytest.fixture
async def app() -> AsyncIterator[tuple[SlackEmulator, ElasticEmulator]]:
    prefix = f"secbot-test-render:{uuid.uuid4().hex}:"
    async with SlackEmulator.running() as slack, ElasticEmulator.running() as es:
        settings = load_settings(
            slack_bot_token=slack.bot_token,
            slack_app_token=slack.app_token,
            slack_api_url=slack.api_url,
            siem="elastic",
            elasticsearch_url=es.url,
            kibana_url=es.kibana_url,
            default_channel="C0DEFAULT",
            triagers=["U0TRIAGER"],
            poll_interval=0.2,
            http_port=0,
            redis_prefix=prefix,
            slack_pace=0,
        )
        service, resources = await build_service(settings, SHIPPED, enrichers=demo_enrichers())
        task = asyncio.create_task(service.run())
        try:
            yield slack, es
        finally:
            service.stop()
            await asyncio.wait_for(task, 10)
            await resources.aclose()
            client = aioredis.Redis.from_url(settings.redis_url)
            keys = [k async for k in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def _top(slack: SlackEmulator, channel: str) -> Any:
    for _ in range(400):
        top = [m for m in slack.messages(channel) if not m.thread_ts or m.thread_ts == m.ts]
        if top:
            return top[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing posted in {channel}")


def _okta(uid: str, email: str, ip: str) -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-01T10:00:00.000Z",
        "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open",
        "kibana.alert.rule.name": "Okta Sign-In From New Country",
        "user": {"email": email},
        "source": {"ip": ip, "geo": {"country_name": "Brazil"}},
    }


async def test_terminated_employee_sign_in_is_routed_by_hr_and_reads_as_text(
    app: tuple[SlackEmulator, ElasticEmulator],
) -> None:
    """The alert has no employment field; HR says terminated → critical channel, said plainly."""
    slack, es = app
    es.index_documents(INDEX, [_okta("render-1", "bob@example.com", "203.0.113.9")])
    message = await _top(slack, "C0SECCRIT")
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert "Bob Ortiz" in shown and "*Terminated employee*" in shown
    assert "suspicious" in shown and "abuseipdb: suspicious" in shown  # demo threat intel
    assert "terminated=" not in shown and "not configured" not in shown
    assert not slack.messages("C0IDENTITY")


async def test_demo_commands_answer_threat_intel_and_whois(
    app: tuple[SlackEmulator, ElasticEmulator],
) -> None:
    slack, es = app
    es.index_documents(INDEX, [_okta("render-2", "alice@example.com", "203.0.113.10")])
    message = await _top(slack, "C0IDENTITY")
    assert "Alice Ng" in json.dumps(message.blocks)
    slack.user_mentions_bot("U0TRIAGER", "ti 203.0.113.66", "C0IDENTITY", thread_ts=message.ts)
    slack.user_mentions_bot("U0TRIAGER", "whois example.com", "C0IDENTITY", thread_ts=message.ts)

    def answers() -> list[str]:
        return [r.text for r in slack.replies("C0IDENTITY", message.ts) if r.user != "U0TRIAGER"]

    for _ in range(400):
        if len([a for a in answers() if a != message.text]) >= 2:
            break
        await asyncio.sleep(0.05)
    joined = "\n".join(answers())
    assert "malicious" in joined and "Internet Assigned Numbers Authority" in joined
    assert "not configured" not in joined
