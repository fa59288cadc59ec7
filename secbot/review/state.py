"""What the trust loop remembers: decisions of auto-close rules, people's verdicts on them,
the auto-closes of the last days (for the daily QA sample), the review messages, demoted
rules and once-only claims.

Runtime state, never config: a demotion lives here, not in the compiled rule (which stays
what a reviewer approved), so every replica sees it and a restart keeps it.

Layout (Redis, under ``SECBOT_REDIS_PREFIX``):

* ``trust:decided:<rule>`` — hash, alert uuid → :class:`Decided` JSON (one per alert: a
  redelivered alert writes the same field again);
* ``trust:verdict:<rule>`` — hash, alert uuid → :class:`Judgement` JSON. A disagreement
  overwrites an agreement, an agreement never overwrites anything: one clear "no" from a
  person outweighs a later "yes" (promotion must be earned);
* ``trust:closed`` — sorted set of ``<rule>|<uuid>`` by auto-close time (UNIX s), trimmed to
  :data:`CLOSED_KEEP` seconds;
* ``trust:demoted`` — hash, rule id → :class:`Demotion` JSON;
* ``trust:sample:<channel>:<ts>`` — :class:`Sample` JSON of a review message (TTL);
* ``trust:plan:<day>`` — :class:`ReviewPlan` JSON: which alerts are in the day's sample,
  written before the first post so a replica resuming a crashed day posts the same sample;
* ``trust:claim:<name>`` — ``SET NX`` claims (the day's posting lease and its done mark, an
  expiry told once, a sample judged once).

The decision and verdict hashes expire :data:`KEEP` seconds after their last write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import redis.asyncio as aioredis

from secbot.domain.codec import decode, encode
from secbot.store.unavailable import guarded

KEEP = 180 * 86400
CLOSED_KEEP = 8 * 86400


@dataclass(frozen=True)
class Decided:
    """A rule decided to (or, in shadow, would) auto-close one alert."""

    uuid: str
    rule_id: str
    mode: str  # "enforce": SecBot closed it; "shadow": it only said it would
    at: float  # UNIX seconds
    link: str = ""  # Slack permalink, else the Kibana alert page, else empty
    held: str = ""  # why a would-close was not applied (shadow mode, expired, demoted)


@dataclass(frozen=True)
class Judgement:
    """What a person's later action says about a decision: ``agree`` or not, and why."""

    uuid: str
    rule_id: str
    agree: bool
    why: str  # e.g. "closed as benign_positive", "acknowledged", "marked wrong in review"
    by: str  # Slack user id or email
    at: float


@dataclass(frozen=True)
class Demotion:
    """A rule put back into shadow mode by a wrong close found in review."""

    rule_id: str
    by: str
    at: float
    alert: str
    link: str = ""


@dataclass(frozen=True)
class Sample:
    """One posted review message: which auto-closed alert it shows."""

    uuid: str
    rule_id: str
    day: str
    alert_id: str = ""
    link: str = ""
    channel: str = ""  # the alert's own channel (told when the rule is demoted)


@dataclass(frozen=True)
class ReviewPlan:
    """The day's QA sample, chosen once: ``members`` are ``<rule>|<uuid>`` in posting order;
    ``total`` is how many auto-closes it was drawn from (the header says "n of total")."""

    day: str
    total: int
    members: tuple[str, ...] = ()

    def pairs(self) -> list[tuple[str, str]]:
        """(rule id, uuid) of each planned sample."""
        return [_split(m) for m in self.members]

    @classmethod
    def of(cls, day: str, total: int, picked: list[tuple[str, str]]) -> ReviewPlan:
        return cls(day=day, total=total, members=tuple(_member(r, u) for r, u in picked))


def _plan(text: object) -> ReviewPlan | None:
    plan = decode(ReviewPlan, text)
    return None if plan is None else replace(plan, members=tuple(plan.members))


class TrustState(Protocol):
    """The trust loop's shared state. Every method may raise StoreUnavailable."""

    async def decided(self, entry: Decided) -> None: ...

    async def judged(self, entry: Judgement) -> None:
        """Keep ``entry`` unless it agrees and a verdict is already there."""

    async def decisions(self, rule_id: str) -> list[Decided]: ...

    async def judgements(self, rule_id: str) -> list[Judgement]: ...

    async def auto_closed(self, rule_id: str, uuid: str, at: float) -> None: ...

    async def closed_between(self, start: float, end: float) -> list[tuple[str, str]]:
        """(rule id, uuid) of the auto-closes in [start, end)."""

    async def demote(self, entry: Demotion) -> bool:
        """True when the rule was not demoted before (the first wrong close tells)."""

    async def demotion(self, rule_id: str) -> Demotion | None: ...

    async def restore(self, rule_id: str) -> bool: ...

    async def put_sample(self, channel: str, ts: str, sample: Sample, ttl: int) -> None: ...

    async def sample_at(self, channel: str, ts: str) -> Sample | None: ...

    async def put_plan(self, plan: ReviewPlan, ttl: int) -> None: ...

    async def plan(self, day: str) -> ReviewPlan | None: ...

    async def claim(self, name: str, ttl: int) -> bool: ...

    async def claimed(self, name: str) -> bool:
        """True while the claim ``name`` is held (by anyone)."""

    async def release(self, name: str) -> None: ...


def _member(rule_id: str, uuid: str) -> str:
    return f"{rule_id}|{uuid}"  # rule ids never hold "|" (schema: [a-z0-9_-])


def _split(member: str) -> tuple[str, str]:
    rule_id, _, uuid = member.partition("|")
    return rule_id, uuid


class RedisTrustState:
    """:class:`TrustState` on Redis (shared by replicas). Does not own the client."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix + "trust:"

    def _k(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def decided(self, entry: Decided) -> None:
        key = self._k("decided", entry.rule_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(key, entry.uuid, encode(entry))
        pipe.expire(key, KEEP)
        await guarded(pipe.execute())

    async def judged(self, entry: Judgement) -> None:
        key = self._k("verdict", entry.rule_id)
        write = self._client.hsetnx if entry.agree else self._client.hset
        await guarded(write(key, entry.uuid, encode(entry)))
        await guarded(self._client.expire(key, KEEP))

    async def decisions(self, rule_id: str) -> list[Decided]:
        found = await guarded(self._client.hvals(self._k("decided", rule_id)))
        return [d for d in (decode(Decided, v) for v in found) if d is not None]

    async def judgements(self, rule_id: str) -> list[Judgement]:
        found = await guarded(self._client.hvals(self._k("verdict", rule_id)))
        return [j for j in (decode(Judgement, v) for v in found) if j is not None]

    async def auto_closed(self, rule_id: str, uuid: str, at: float) -> None:
        key = self._k("closed")
        pipe = self._client.pipeline(transaction=True)
        pipe.zadd(key, {_member(rule_id, uuid): at})
        pipe.zremrangebyscore(key, "-inf", at - CLOSED_KEEP)
        await guarded(pipe.execute())

    async def closed_between(self, start: float, end: float) -> list[tuple[str, str]]:
        found = await guarded(self._client.zrangebyscore(self._k("closed"), start,
                                                         f"({end}"))
        return [_split(str(m)) for m in found]

    async def demote(self, entry: Demotion) -> bool:
        done = await guarded(self._client.hsetnx(self._k("demoted"), entry.rule_id,
                                                 encode(entry)))
        return bool(done)

    async def demotion(self, rule_id: str) -> Demotion | None:
        found = await guarded(self._client.hget(self._k("demoted"), rule_id))
        return None if found is None else decode(Demotion, found)

    async def restore(self, rule_id: str) -> bool:
        return bool(await guarded(self._client.hdel(self._k("demoted"), rule_id)))

    async def put_sample(self, channel: str, ts: str, sample: Sample, ttl: int) -> None:
        await guarded(self._client.set(self._k("sample", channel, ts), encode(sample),
                                       ex=max(1, ttl)))

    async def sample_at(self, channel: str, ts: str) -> Sample | None:
        found = await guarded(self._client.get(self._k("sample", channel, ts)))
        return None if found is None else decode(Sample, found)

    async def put_plan(self, plan: ReviewPlan, ttl: int) -> None:
        await guarded(self._client.set(self._k("plan", plan.day), encode(plan),
                                       ex=max(1, ttl)))

    async def plan(self, day: str) -> ReviewPlan | None:
        return _plan(await guarded(self._client.get(self._k("plan", day))))

    async def claim(self, name: str, ttl: int) -> bool:
        return bool(await guarded(self._client.set(self._k("claim", name), "1", nx=True,
                                                   ex=max(1, ttl))))

    async def claimed(self, name: str) -> bool:
        return bool(await guarded(self._client.exists(self._k("claim", name))))

    async def release(self, name: str) -> None:
        await guarded(self._client.delete(self._k("claim", name)))


@dataclass
class MemoryTrustState:
    """:class:`TrustState` in this process only (the demo without Redis, unit tests)."""

    clock: Callable[[], float] = time.time
    _hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    _closed: dict[str, float] = field(default_factory=dict)
    _claims: dict[str, float] = field(default_factory=dict)
    _samples: dict[str, str] = field(default_factory=dict)
    _plans: dict[str, str] = field(default_factory=dict)

    def _hash(self, *parts: str) -> dict[str, str]:
        return self._hashes.setdefault(":".join(parts), {})

    async def decided(self, entry: Decided) -> None:
        self._hash("decided", entry.rule_id)[entry.uuid] = encode(entry)

    async def judged(self, entry: Judgement) -> None:
        verdicts = self._hash("verdict", entry.rule_id)
        if not entry.agree or entry.uuid not in verdicts:
            verdicts[entry.uuid] = encode(entry)

    async def decisions(self, rule_id: str) -> list[Decided]:
        found = (decode(Decided, v) for v in self._hash("decided", rule_id).values())
        return [d for d in found if d is not None]

    async def judgements(self, rule_id: str) -> list[Judgement]:
        found = (decode(Judgement, v) for v in self._hash("verdict", rule_id).values())
        return [j for j in found if j is not None]

    async def auto_closed(self, rule_id: str, uuid: str, at: float) -> None:
        self._closed[_member(rule_id, uuid)] = at

    async def closed_between(self, start: float, end: float) -> list[tuple[str, str]]:
        found = sorted((at, m) for m, at in self._closed.items() if start <= at < end)
        return [_split(m) for _, m in found]

    async def demote(self, entry: Demotion) -> bool:
        demoted = self._hash("demoted")
        if entry.rule_id in demoted:
            return False
        demoted[entry.rule_id] = encode(entry)
        return True

    async def demotion(self, rule_id: str) -> Demotion | None:
        found = self._hash("demoted").get(rule_id)
        return None if found is None else decode(Demotion, found)

    async def restore(self, rule_id: str) -> bool:
        return self._hash("demoted").pop(rule_id, None) is not None

    async def put_sample(self, channel: str, ts: str, sample: Sample, ttl: int) -> None:
        self._samples[f"{channel}:{ts}"] = encode(sample)

    async def sample_at(self, channel: str, ts: str) -> Sample | None:
        found = self._samples.get(f"{channel}:{ts}")
        return None if found is None else decode(Sample, found)

    async def put_plan(self, plan: ReviewPlan, ttl: int) -> None:
        self._plans[plan.day] = encode(plan)

    async def plan(self, day: str) -> ReviewPlan | None:
        return _plan(self._plans.get(day))

    async def claimed(self, name: str) -> bool:
        return self._claims.get(name, 0.0) > self.clock()

    async def claim(self, name: str, ttl: int) -> bool:
        now = self.clock()
        if self._claims.get(name, 0.0) > now:
            return False
        self._claims[name] = now + max(1, ttl)
        return True

    async def release(self, name: str) -> None:
        self._claims.pop(name, None)
