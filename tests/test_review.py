"""The daily QA sample of auto-closes (issue 15) through the real service: two replicas on one
Redis post the day's sample once (at least one per rule); ✅ counts as right; ❌ by a triager
reopens the alert in the SIEM (audited), records a wrong close, demotes the rule to shadow
(the next alert of that rule stays open and its message says why) and tells the rule's
channel; a non-triager's ❌ changes nothing; ``secbot rules trust --json`` agrees. A replica
killed part-way through the day's sample leaves the rest to the next replica, which posts
only what the channel history does not show yet."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from slack_sdk.web.async_client import AsyncWebClient
from stack_support import INDEX, TRIAGER, VIEWER, Stack, audit, es_status, eventually
from trust_support import (
    BOT,
    alert,
    message_of,
    react,
    service,
    settled,
    shown,
    trust_json,
    world,
    write_rules,
)

from secbot.review.sampler import DailyReview
from secbot.review.state import RedisTrustState
from secbot.runtime.wiring import build_siem
from secbot.store.redis import RedisStore

RULE = """
id: RULE_ID
name: RULE_NAME
match: {rule_name: RULE_NAME}
fields: [user.email]
route: {channel: CHANNEL}
auto_close:
  when: 'IncludedFields["user.email"].endswith("@example.com")'
  reason: benign_positive
"""


def rule(rule_id: str, name: str, channel: str) -> str:
    return RULE.replace("RULE_ID", rule_id).replace("RULE_NAME", name).replace(
        "CHANNEL", channel)


def samples(stack: Stack) -> list[Any]:
    return [m for m in stack.top_messages("C0REVIEW") if m.metadata
            and m.metadata.get("event_type") == "secbot_review"]


def sample_for(stack: Stack, rule_id: str) -> Any:
    return next(m for m in samples(stack)
                if m.metadata["event_payload"]["rule_id"] == rule_id)


async def test_daily_review_once_across_replicas_and_a_wrong_close_demotes(tmp_path: Path
                                                                          ) -> None:
    rules_dir = tmp_path / "rules"
    ruleset = write_rules(rules_dir, rule("auto_signin", "Auto Sign-In", "C0AUTO"),
                          rule("auto_other", "Auto Other", "C0OTHER"))
    review: dict[str, Any] = {"review_channel": "C0REVIEW", "review_sample_size": 3,
                              "review_hour": 0}
    async with world("review") as (slack, es, prefix):
        # Yesterday's work: SecBot auto-closes 6 + 1 alerts (no review channel yet).
        async with service(slack, es, ruleset, prefix) as first:
            es.index_documents(INDEX, [alert(f"au-{n}", "Auto Sign-In") for n in range(6)]
                               + [alert("ot-1", "Auto Other")])
            await settled(first, lambda: all(es_status(first, f"au-{n}") == "closed"
                                             for n in range(6))
                          and es_status(first, "ot-1") == "closed")
            await asyncio.sleep(0.5)  # the hand-offs (and their records) complete
        await slack.drop_connections()
        # Two replicas, both ticking the daily review at start: one sample is posted.
        async with service(slack, es, ruleset, prefix, **review) as one, \
                service(slack, es, ruleset, prefix, connections=2, **review) as two:
            await settled(one, lambda: len(samples(one)) >= 3)
            await asyncio.sleep(1.5)
            assert len(samples(one)) == 3  # size 3: once, not once per replica
            headers = [m for m in one.top_messages("C0REVIEW")
                       if "Daily auto-close review" in m.text]
            assert len(headers) == 1
            rules = sorted(m.metadata["event_payload"]["rule_id"] for m in samples(one))
            assert rules.count("auto_other") == 1 and rules.count("auto_signin") == 2
            for message in samples(one):
                assert message.reactions.get("white_check_mark") == [BOT]
                assert message.reactions.get("x") == [BOT]
            await _judge(two, rules_dir, prefix)


async def _judge(stack: Stack, rules_dir: Path, prefix: str) -> None:
    wrong = sample_for(stack, "auto_signin")
    wrong_uid = wrong.metadata["event_payload"]["alert_uuid"]
    right = sample_for(stack, "auto_other")
    # Not a triager: refused, nothing reopened.
    react(stack, VIEWER, "x", "C0REVIEW", wrong.ts)
    await eventually(lambda: _true(any(e.get("user") == VIEWER for e in stack.slack.ephemeral)))
    assert es_status(stack, wrong_uid) == "closed"

    react(stack, TRIAGER, "white_check_mark", "C0REVIEW", right.ts)
    react(stack, TRIAGER, "x", "C0REVIEW", wrong.ts)
    await settled(stack, lambda: es_status(stack, wrong_uid) == "open")
    reopened = [e for e in await audit(stack, wrong_uid) if e.action == "open"]
    assert [e.extra.get("slack_user") for e in reopened] == [TRIAGER]
    told = await settled(stack, lambda: [m for m in stack.top_messages("C0AUTO")
                                         if "back in *shadow mode*" in m.text])
    assert wrong_uid in told[0].text
    await settled(stack, lambda: "Wrong" in stack.slack.message("C0REVIEW", wrong.ts).text)

    # The rule is demoted: its next alert stays open and says why.
    stack.elastic.index_documents(INDEX, [alert("au-next", "Auto Sign-In")])
    message = await message_of(stack, "C0AUTO", "au-next")
    assert "would auto-close (shadow)" in shown(message)
    assert "demoted to shadow" in shown(message)
    await asyncio.sleep(1.0)
    assert es_status(stack, "au-next") == "open"

    rows = await trust_json(rules_dir, prefix)
    demoted = rows["auto_signin"]
    assert demoted["mode"] == "shadow" and "demoted" in demoted["held"]
    assert demoted["decisions"] == 7  # six auto-closes and the shadow decision after
    assert (demoted["agreements"], demoted["disagreements"]) == (0, 1)
    assert demoted["disagreement_alerts"][0]["alert"] == wrong_uid
    other = rows["auto_other"]
    assert (other["mode"], other["decisions"], other["agreements"],
            other["disagreements"], other["precision"]) == ("enforce", 1, 1, 0, 1.0)


async def _true(value: bool) -> bool:
    return value


def test_the_sample_takes_one_per_rule_first_then_random_others() -> None:
    import random

    from secbot.review.sampler import choose

    closed = [("a", f"a-{n}") for n in range(10)] + [("b", "b-1"), ("c", "c-1")]
    picked = choose(closed, 5, random.Random(7))
    assert len(picked) == 5 and {"b-1", "c-1"} <= {uuid for _, uuid in picked}
    assert sum(rule == "a" for rule, _ in picked) == 3
    # More rules than the size: every rule still gets its one sample.
    assert len(choose(closed, 2, random.Random(7))) == 3
    assert choose([], 5, random.Random(7)) == []


def test_what_counts_as_agreement() -> None:
    from secbot.review.judge import verdict_of

    shadow = {reason: verdict_of("closed", reason, enforced=False) for reason in (
        "benign_positive", "false_positive", "duplicate", "true_positive", "other", "custom")}
    assert {r: v[0] for r, v in shadow.items() if v} == {
        "benign_positive": True, "false_positive": True, "duplicate": True,
        "true_positive": False, "other": False, "custom": False}
    assert verdict_of("acknowledged", None, enforced=False) == (False, "acknowledged")
    assert verdict_of("open", None, enforced=False) == (False, "reopened")
    assert verdict_of("open", None, enforced=True) == (False, "reopened after auto-close")
    assert verdict_of("closed", "benign_positive", enforced=True) is None


class Killed(BaseException):
    """The replica's process dying (not an Exception: nothing in SecBot catches it)."""


class DyingClient(AsyncWebClient):
    """A replica's real Slack client whose process dies after ``samples`` review posts."""

    def __init__(self, samples: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.left = samples

    async def chat_postMessage(self, **kwargs: Any) -> Any:  # slack_sdk's name
        if (kwargs.get("metadata") or {}).get("event_type") == "secbot_review":
            if self.left == 0:
                raise Killed
            self.left -= 1
        return await super().chat_postMessage(**kwargs)


async def test_a_sample_interrupted_after_one_post_is_finished_by_the_next_replica(
        tmp_path: Path) -> None:
    """A replica dies after posting 1 of the day's 3 samples; once its lease lapses, the next
    replica posts exactly the other 2 (with their ✅/❌), not the header or the first again,
    and every sample is still found by ts for its reactions."""
    ruleset = write_rules(tmp_path / "rules", rule("auto_signin", "Auto Sign-In", "C0AUTO"))
    async with world("review-crash") as (slack, es, prefix), \
            service(slack, es, ruleset, prefix) as stack:
        es.index_documents(INDEX, [alert(f"cr-{n}", "Auto Sign-In") for n in range(3)])
        await settled(stack, lambda: all(es_status(stack, f"cr-{n}") == "closed"
                                         for n in range(3)))
        await asyncio.sleep(0.5)  # the hand-offs (and their records) complete
        redis = aioredis.from_url(stack.settings.redis_url, decode_responses=True)
        state = RedisTrustState(redis, prefix)
        store = RedisStore.from_url(stack.settings.redis_url, prefix)
        siem = build_siem(stack.settings)
        now = datetime.now(UTC)

        def replica(client: AsyncWebClient) -> DailyReview:
            return DailyReview(state, store, siem, client, ruleset, channel="C0REVIEW",
                               size=3, hour=0, clock=lambda: now)
        try:
            dying = DyingClient(1, token=slack.bot_token, base_url=slack.api_url)
            with pytest.raises(Killed):
                await replica(dying).tick()
            assert len(samples(stack)) == 1
            assert await replica(dying).tick() is None  # its lease still holds the day
            await redis.delete(f"{prefix}trust:claim:review:{now.date().isoformat()}")

            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            assert await replica(client).tick() == 2
            posted = samples(stack)
            assert sorted(m.metadata["event_payload"]["alert_uuid"] for m in posted) == [
                "cr-0", "cr-1", "cr-2"]
            assert len([m for m in stack.top_messages("C0REVIEW")
                        if "Daily auto-close review" in m.text]) == 1
            for message in posted:
                assert message.reactions.get("white_check_mark") == [BOT]
                assert message.reactions.get("x") == [BOT]
                assert message.metadata["event_payload"]["day"] == now.date().isoformat()
                found = await state.sample_at("C0REVIEW", message.ts)
                assert found is not None
                assert found.uuid == message.metadata["event_payload"]["alert_uuid"]
            assert await replica(client).tick() is None  # the day is done
            assert len(samples(stack)) == 3
        finally:
            await siem.close()
            await store.close()
            await redis.aclose()
