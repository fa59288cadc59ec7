"""@SecBot commands: through the router (real enrichers against stand-ins, the SIEM search for
``locate user``, thread defaults, help for unknown words, escaping), and through the whole app
(Slack emulator, Elastic emulator, Redis): investigation commands answer triagers only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from enrich_support import FAST
from slack_sdk.web.async_client import AsyncWebClient
from stack_support import INDEX, TRIAGER, VIEWER, Stack, eventually, posted, running_stack

from secbot.commands.context import CommandContext, Reply
from secbot.commands.investigate import Investigator
from secbot.commands.router import HELP, CommandRouter
from secbot.domain.record import AlertRecord
from secbot.enrich.engine import EnrichmentEngine
from secbot.enrich.whois import WhoisEnricher
from secbot.siem.embedded import EmbeddedSiem
from secbot.triage.people import Triagers
from secbot_emulators.providers import Script, json_reply

RDAP = {
    "objectClassName": "domain", "ldhName": "EXAMPLE.COM",
    "events": [{"eventAction": "registration", "eventDate": "2026-10-20T18:01:00Z"}],
    "entities": [{"objectClassName": "entity", "roles": ["registrar"],
                  "vcardArray": ["vcard", [["fn", {}, "text", "Example <Registrar>"]]]}],
}
AUTH_INDEX = "logs-okta.system-test"


async def router(siem: EmbeddedSiem, changes: list[tuple[str, str | None]]) -> CommandRouter:
    script = Script().on("/domain/example.com", json_reply(200, RDAP))
    whois = WhoisEnricher(script.client(), base_url="https://rdap.local", policy=FAST,
                          clock=lambda: datetime(2026, 11, 1, tzinfo=UTC))
    engine = EnrichmentEngine({"whois": whois}, timeout=2)
    investigator = Investigator(engine, siem, auth_indices=[AUTH_INDEX])

    async def change(ctx: CommandContext, status: str, reason: str | None) -> Reply:
        changes.append((status, reason))
        return Reply(f"{status} ok")

    # Only user ids: Triagers never needs to ask Slack, so the client is never called.
    return CommandRouter(investigator, change, Triagers(AsyncWebClient(), ["U0TRIAGER"]))


def ctx(**alert: Any) -> CommandContext:
    record = (
        AlertRecord(uuid="a-1", id="a-1", index="", rule_id="r1", rule_name="Rule",
                    severity="high", timestamp=None, fields=alert)
        if alert else None
    )
    return CommandContext(user="U0TRIAGER", channel="C0X", ts="2.0",
                          thread_ts="1.0" if alert else None,
                          alert_uuid="a-1" if alert else None, alert=record)


async def test_whois_answers_from_rdap_and_escapes_provider_text() -> None:
    reply = await (await router(EmbeddedSiem(), [])).run("<@U0SECBOT> whois example.com", ctx())
    assert "Example &lt;Registrar&gt;" in reply.text and "<Registrar>" not in reply.text
    assert not reply.ephemeral


async def test_thread_defaults_come_from_the_alerts_cached_fields() -> None:
    siem = EmbeddedSiem()
    now = datetime.now(UTC)
    await siem.insert([
        {"@timestamp": (now - timedelta(hours=h)).isoformat(), "user": {"email": "a@example.com"},
         "source": {"ip": "192.0.2.7", "geo": {"city_name": "Oslo", "country_name": "Norway"}},
         "event": {"dataset": "okta.system", "id": f"e{h}"}}
        for h in range(3)
    ], index=AUTH_INDEX)
    r = await router(siem, [])
    reply = await r.run("<@U0SECBOT> locate user", ctx(**{"user.email": "a@example.com"}))
    assert "3 authentication events" in reply.text
    assert "192.0.2.7 (Oslo, Norway) ×3" in reply.text and "okta.system ×3" in reply.text
    outside = await r.run("<@U0SECBOT> locate user", ctx())
    assert outside.ephemeral and "Which user?" in outside.text


async def test_not_configured_enricher_says_so() -> None:
    reply = await (await router(EmbeddedSiem(), [])).run("ti 203.0.113.9", ctx())
    assert "`threat_intel` is not configured" in reply.text


async def test_unknown_command_gets_help_with_the_word_escaped() -> None:
    reply = await (await router(EmbeddedSiem(), [])).run("<@U0SECBOT> <!channel>", ctx())
    assert HELP in reply.text and "<!channel>" not in reply.text


async def test_text_alternatives_to_emoji() -> None:
    changes: list[tuple[str, str | None]] = []
    r = await router(EmbeddedSiem(), changes)
    await r.run("close false_positive", ctx(**{"x": 1}))
    await r.run("ack", ctx(**{"x": 1}))
    await r.run("reopen", ctx(**{"x": 1}))
    bad = await r.run("close because", ctx(**{"x": 1}))
    assert changes == [("closed", "false_positive"), ("acknowledged", None), ("open", None)]
    assert bad.ephemeral and "Closing reasons" in bad.text and "benign_positive" in bad.text
    await r.run("close", ctx(**{"x": 1}))
    assert changes[-1] == ("closed", "benign_positive")  # same default as ✅


# --- through the whole app -------------------------------------------------------------------

AUTH_LOGS = "logs-okta.system-e2e"
INVESTIGATIONS = (
    "alert",
    "locate user",
    "locate user dev@example.com",
    "whois example.com",
    "ti 198.51.100.7",
    "gcp project prod-payments",
    "oncall dev@example.com",
)


def key_alert(uid: str) -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-01T10:00:00.000Z",
        "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "high",
        "kibana.alert.rule.name": "GCP Service Account Key Creation",
        "cloud": {"project": {"id": "prod-payments"}},
        "user": {"email": "dev@example.com"},
        "source.ip": "198.51.100.7",
    }


def seed(stack: Stack, uid: str) -> None:
    stack.elastic.index_documents(INDEX, [key_alert(uid)])
    now = datetime.now(UTC).isoformat()
    stack.elastic.index_documents(AUTH_LOGS, [{
        "@timestamp": now, "user": {"email": "dev@example.com"}, "event": {"dataset": "okta"},
        "source": {"ip": "203.0.113.44", "geo": {"city_name": "Lagos", "country_name": "NG"}},
    }])


def replies_in(stack: Stack, channel: str, ts: str) -> list[Any]:
    """SecBot's visible replies in the thread (the people's own mentions left out)."""
    return [r for r in stack.slack.replies(channel, ts) if r.ts != ts and r.user == "U0SECBOT"]


async def ask_all(stack: Stack, user: str, channel: str, thread: str | None) -> list[str]:
    """Each investigation command as ``user``; the ephemeral answers ``user`` got, in order."""
    before = len([e for e in stack.slack.ephemeral if e.get("user") == user])
    for command in INVESTIGATIONS:
        stack.slack.user_mentions_bot(user, command, channel, thread_ts=thread)

    async def all_answered() -> list[str] | None:
        mine = [str(e.get("text")) for e in stack.slack.ephemeral if e.get("user") == user]
        return mine[before:] if len(mine) - before >= len(INVESTIGATIONS) else None

    return list(await eventually(all_answered))


async def test_a_non_triager_gets_one_ephemeral_refusal_that_reveals_nothing() -> None:
    async with running_stack(auth_log_indices=[AUTH_LOGS]) as stack:
        seed(stack, "cmd-1")
        [message] = await posted(stack, "C0PRODSEC")
        in_thread = await ask_all(stack, VIEWER, "C0PRODSEC", message.ts)
        # Outside any alert's thread the answer is word for word the same: it does not even
        # tell whether a thread belongs to an alert.
        loose = stack.slack.user_posts(TRIAGER, "lunch?", "C0PRODSEC")
        outside = await ask_all(stack, VIEWER, "C0PRODSEC", loose)
        assert len(set(in_thread + outside)) == 1
        refusal = in_thread[0]
        assert "SECBOT_TRIAGERS" in refusal
        for secret in ("dev@example.com", "cmd-1", "prod-payments", "203.0.113.44", "Lagos",
                       "198.51.100.7", "open"):
            assert secret not in refusal
        await asyncio.sleep(0.3)
        assert replies_in(stack, "C0PRODSEC", message.ts) == []  # nothing visible in the thread
        stack.slack.user_mentions_bot(VIEWER, "help", "C0PRODSEC", thread_ts=message.ts)

        async def helped() -> list[Any]:
            return [r for r in replies_in(stack, "C0PRODSEC", message.ts) if "`whois" in r.text]

        await eventually(helped)  # help stays open, as a visible reply


async def test_a_triager_still_gets_visible_answers() -> None:
    async with running_stack(auth_log_indices=[AUTH_LOGS]) as stack:
        seed(stack, "cmd-2")
        [message] = await posted(stack, "C0PRODSEC")
        stack.slack.user_mentions_bot(TRIAGER, "locate user", "C0PRODSEC", thread_ts=message.ts)
        stack.slack.user_mentions_bot(TRIAGER, "alert", "C0PRODSEC", thread_ts=message.ts)

        async def answered() -> list[str] | None:
            texts = [r.text for r in replies_in(stack, "C0PRODSEC", message.ts)]
            located = [t for t in texts if "203.0.113.44 (Lagos, NG)" in t]
            summary = [t for t in texts if "cmd-2" in t and "dev@example.com" in t]
            return located + summary if located and summary else None

        await eventually(answered)
        assert not [e for e in stack.slack.ephemeral if e.get("user") == TRIAGER]


async def test_when_slack_cannot_list_the_triager_group_the_person_is_told() -> None:
    # Fail closed: no fresh membership answer → no data, and a reason to retry rather than a
    # "you are not a triager" the person would take as true.
    def break_groups(slack: Any, _es: Any) -> None:
        slack.fail("usergroups.users.list", times=1000)

    async with running_stack(auth_log_indices=[AUTH_LOGS], before_start=break_groups) as stack:
        seed(stack, "cmd-3")
        [message] = await posted(stack, "C0PRODSEC")
        stack.slack.user_mentions_bot(TRIAGER, "alert", "C0PRODSEC", thread_ts=message.ts)

        async def told() -> list[str]:
            return [str(e.get("text")) for e in stack.slack.ephemeral if e.get("user") == TRIAGER]

        [text] = await eventually(told)
        assert "S0TRIAGE" in text and "Try again" in text and "dev@example.com" not in text
        assert replies_in(stack, "C0PRODSEC", message.ts) == []
