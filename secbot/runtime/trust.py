"""Composition of the trust loop (``secbot/review/``, issue 15): shadow mode and demotions in
the decide stage, decisions and agreement, the daily QA sample, ✅/❌ on its messages.

Built here from settings so ``wiring.py`` only passes the parts on: the gatekeeper to the
pipeline, the judge and the review reactions to the Slack side, the recorder as a hand-off
step, the daily review as a background loop (every replica runs it; a Redis claim per day
lets one post).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from slack_sdk.web.async_client import AsyncWebClient

from secbot.intake.handoff import AfterPost
from secbot.pipeline.decide import Gatekeeper
from secbot.review.judge import TrustJudge, TrustRecorder
from secbot.review.reactions import ReviewReactions
from secbot.review.sampler import DailyReview
from secbot.review.state import MemoryTrustState, RedisTrustState, TrustState
from secbot.review.trust import demoted_lookup
from secbot.rules.ruleset import RuleSet
from secbot.runtime.settings import Settings
from secbot.siem.base import Siem
from secbot.store.base import Store
from secbot.store.redis import RedisStore
from secbot.triage.status_change import StatusChanger


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TrustParts:
    """The trust loop's pieces; ``clock`` is the one every piece reads (tests inject it)."""

    settings: Settings
    state: TrustState
    gatekeeper: Gatekeeper
    judge: TrustJudge
    clock: Callable[[], datetime] = _utc_now
    rng: random.Random | None = None
    after_post: list[AfterPost] = field(default_factory=list)
    loops: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    def seconds(self) -> float:
        return self.clock().timestamp()


def trust_state_for(settings: Settings, redis_client: aioredis.Redis, store: Store
                    ) -> TrustState:
    """Redis beside the store; in memory when the store is (the demo without Redis)."""
    if isinstance(store, RedisStore):
        return RedisTrustState(redis_client, settings.redis_prefix)
    return MemoryTrustState()


def build_trust(settings: Settings, state: TrustState, store: Store, *,
                clock: Callable[[], datetime] | None = None,
                rng: random.Random | None = None) -> TrustParts:
    """What the pipeline and the status changes need, before Slack is connected."""
    clock = clock or _utc_now
    gatekeeper = Gatekeeper(clock=clock, demoted=demoted_lookup(state))
    parts = TrustParts(settings=settings, state=state, gatekeeper=gatekeeper,
                       judge=TrustJudge(state, store, ttl=settings.alert_ttl), clock=clock,
                       rng=rng)
    parts.judge.clock = parts.seconds
    return parts


def connect_trust(parts: TrustParts, web: AsyncWebClient, store: Store, siem: Siem,
                  rules: RuleSet) -> None:
    """Add the hand-off step and the daily review loop (when SECBOT_REVIEW_CHANNEL is set)."""
    settings = parts.settings
    parts.after_post.append(TrustRecorder(
        parts.state, store, web, rules, parts.gatekeeper, kibana_url=settings.kibana_url,
        kibana_space=settings.kibana_space, clock=parts.seconds))
    if settings.review_channel:
        review = DailyReview(parts.state, store, siem, web, rules,
                             channel=settings.review_channel,
                             size=settings.review_sample_size, hour=settings.review_hour,
                             clock=parts.clock, rng=parts.rng, ttl=settings.alert_ttl)
        parts.loops.append(review.run)


def review_reactions(parts: TrustParts, changer: StatusChanger, web: AsyncWebClient,
                     rules: RuleSet, bot_user_id: str) -> ReviewReactions:
    """✅/❌ on review samples, through the same (triager-authorised) status changer."""
    return ReviewReactions(parts.state, changer, web, rules,
                           demote=parts.settings.review_demote, bot_user_id=bot_user_id,
                           clock=parts.seconds)
