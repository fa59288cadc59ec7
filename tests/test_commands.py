"""@SecBot commands end to end through the router: real enrichers against stand-ins, the
SIEM search for ``locate user``, thread defaults, help for unknown words, escaping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from enrich_support import FAST

from secbot.commands.context import CommandContext, Reply
from secbot.commands.investigate import Investigator
from secbot.commands.router import HELP, CommandRouter
from secbot.domain.record import AlertRecord
from secbot.enrich.engine import EnrichmentEngine
from secbot.enrich.whois import WhoisEnricher
from secbot.siem.embedded import EmbeddedSiem
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

    return CommandRouter(investigator, change)


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
    assert bad.ephemeral and "Closing reasons" in bad.text
