"""Fast regression tests for the bugs the process-level reliability tests found
(``tests/test_reliability.py``): each reproduces one failure in-process, in milliseconds."""

from __future__ import annotations

from typing import Any

import pytest
from reliability_harness import IDENTITY_CHANNEL, okta_alert
from shipped import shipped_rules
from slack_sdk.web.async_client import AsyncWebClient

from secbot.chat.app import SlackHandlers
from secbot.domain.alert import Alert
from secbot.enrich.engine import EnrichmentEngine
from secbot.intake.handoff import ClaimBusy, TriageHandler
from secbot.intake.poller import AlertPoller
from secbot.pipeline.decision import Decision
from secbot.pipeline.pipeline import Pipeline
from secbot.publish.slack import SlackPublisher
from secbot.siem.embedded import EmbeddedSiem
from secbot.store.memory import MemoryStore
from secbot_emulators.slack import SlackEmulator


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recording:
    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, alert: Alert, decision: Decision) -> None:
        self.published.append(alert.uuid)

    async def correct(self, alert: Alert, decision: Decision, note: str) -> None:
        raise AssertionError("no auto-close fails here")


async def test_a_claim_left_by_a_killed_process_delays_its_alert_but_never_skips_it() -> None:
    """kill -9 between claim and posted marker: the claim outlives the process. The next
    leader used to treat the alert as handled (lost); now it retries once the claim expires."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    siem = EmbeddedSiem()
    await siem.insert([okta_alert(f"u{i}", auto_close=False) for i in range(3)])
    pipeline = Pipeline(shipped_rules(), EnrichmentEngine({}), store)
    publisher = Recording()
    handler = TriageHandler(pipeline, siem, store, publisher, claim_ttl=2)
    poller = AlertPoller(siem, store, overlap_seconds=300)
    first = (await siem.fetch_new(None, limit=10)).alerts[0].uuid
    assert await store.claim_post(first, 2)  # what the killed leader left behind

    with pytest.raises(ClaimBusy):
        await poller.poll_once(handler)
    assert first not in publisher.published
    clock.now += 2.5  # the dead claim expires
    await poller.poll_once(handler)
    assert sorted(publisher.published) == ["u0", "u1", "u2"]


def _decision(uid: str) -> Decision:
    return Decision(
        alert_uuid=uid,
        rule_id="r1",
        channel=IDENTITY_CHANNEL,
        post=True,
        auto_close=False,
        close_reason=None,
        explanation="rule has no auto_close",
        severity="high",
        fields={},
        message={"text": f"alert {uid}", "blocks": []},
    )


async def test_a_retry_after_redis_restarted_empty_adopts_this_process_post() -> None:
    """Redis lost everything between chat.postMessage and the link/marker: the retry in the
    same process must not post again (it used to, as nothing in the store said otherwise)."""
    async with SlackEmulator.running() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        publisher = SlackPublisher(client, MemoryStore())
        alert = Alert.from_hit(okta_alert("r1", auto_close=False))
        await publisher.publish(alert, _decision("r1"))
        publisher.store = MemoryStore()  # Redis came back empty
        await publisher.publish(alert, _decision("r1"))
        posts = [c for c in slack.calls_to("chat.postMessage") if c.ok]
        assert len(posts) == 1
        ref = await publisher.store.message_for_alert("r1")
        assert ref is not None and ref.ts == slack.messages(IDENTITY_CHANNEL)[0].ts


class NoReactions:
    def __init__(self) -> None:
        self.reactions: dict[str, Any] = {}
        self.bot_user_id = "U0SECBOT"


async def test_a_lost_message_link_is_found_again_from_the_message_metadata() -> None:
    """After an empty Redis restart, reactions on older alert messages had no alert (ignored
    silently); the handler now reads SecBot's own metadata off the message and re-links it."""
    async with SlackEmulator.running() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await SlackPublisher(client, MemoryStore()).publish(
            Alert.from_hit(okta_alert("m1", auto_close=False)), _decision("m1")
        )
        ts = slack.messages(IDENTITY_CHANNEL)[0].ts
        someone = slack.user_posts("U0VIEWER", "just chatting", IDENTITY_CHANNEL)
        empty = MemoryStore()
        handlers = SlackHandlers(client, empty, NoReactions(), None)  # type: ignore[arg-type]
        assert await handlers.relink(IDENTITY_CHANNEL, ts) == "m1"
        assert await empty.alert_for_message(IDENTITY_CHANNEL, ts) == "m1"
        assert await handlers.relink(IDENTITY_CHANNEL, someone) is None


async def test_user_group_membership_fails_closed_once_its_ttl_has_passed() -> None:
    """Slack down: a cached membership is used while fresh, never past its TTL (it used to be
    served forever), and the refusal says Slack could not answer."""
    from secbot.triage.people import MembershipUnknownError, Triagers

    async with SlackEmulator.running() as slack:
        slack.workspace.add_usergroup("S0TRIAGE", "triage", ["U0ALICE"])
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        clock = Clock()
        triagers = Triagers(client, ["S0TRIAGE"], ttl=300, clock=clock)
        assert await triagers.allows("U0ALICE")
        slack.fail("usergroups.users.list", times=10)
        clock.now += 299
        assert await triagers.allows("U0ALICE")  # fresh: from the cache
        clock.now += 2
        with pytest.raises(MembershipUnknownError, match="S0TRIAGE"):
            await triagers.allows("U0ALICE")
        slack.clear_faults()
        assert await triagers.allows("U0ALICE") and not await triagers.allows("U0BOB")
