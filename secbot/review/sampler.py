"""The daily QA sample of auto-closes (issue 15).

Once a day, at ``SECBOT_REVIEW_HOUR`` (UTC) or at the first tick after it, one replica — the
one that takes the day's Redis claim — posts a random sample of the last 24 hours'
auto-closed alerts to ``SECBOT_REVIEW_CHANNEL``: ``SECBOT_REVIEW_SAMPLE_SIZE`` alerts, but at
least one per rule that auto-closed anything (a rule that closed once is reviewed too, even
if that makes the sample larger). Only alerts the SIEM still shows closed are sampled: one a
person already reopened has been judged.

Each sample is one message with SecBot's own ✅ and ❌ under it, so a reviewer clicks one;
the message is remembered by ``ts`` (:class:`secbot.review.state.Sample`) so a reaction on it
goes to :mod:`secbot.review.reactions`, not to triage.

Exactly once (DESIGN §10's way for alerts): the day's claim is a lease (:data:`LEASE_SECONDS`)
plus a done mark set after the last post. Before the first post the day's plan — which alerts
are in the sample — is written to Redis (:class:`secbot.review.state.ReviewPlan`); every
message carries ``metadata`` (samples ``secbot_review`` with ``{day, alert_uuid, rule_id}``,
the header ``secbot_review_header`` with ``{day}``). A replica that finds the day planned but
not done (the last one died mid-way and its lease lapsed) reads the channel history and posts
only the planned messages it does not find there, with their ✅/❌; the ones it finds are
remembered by ``ts`` again (and given any missing reaction), so they stay reviewable.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.record import AlertRecord
from secbot.domain.secrets import redact
from secbot.publish.history import tagged_messages
from secbot.render.mrkdwn import code, escape, plain
from secbot.resilience.loop import run_every
from secbot.review.state import ReviewPlan, Sample, TrustState
from secbot.rules.ruleset import RuleSet
from secbot.siem.base import Siem
from secbot.store.base import Store
from secbot.store.records import AlertRecords

log = structlog.stdlib.get_logger(__name__)

EVENT_TYPE = "secbot_review"
HEADER_EVENT_TYPE = "secbot_review_header"
RIGHT, WRONG = "white_check_mark", "x"
DAY = 86400
#: The posting lease: far longer than a sample takes to post, short enough that a dead
#: replica's day is resumed soon.
LEASE_SECONDS = 600
HEADER = ""  # the header's key among a day's found messages (no alert uuid is empty)


def choose(closed: Sequence[tuple[str, str]], size: int, rng: random.Random
           ) -> list[tuple[str, str]]:
    """A random sample of (rule, uuid): one per rule first, then random others up to
    ``size``; in rule order, so a reviewer reads each rule's samples together."""
    by_rule: dict[str, list[str]] = {}
    for rule_id, uuid in closed:
        by_rule.setdefault(rule_id, []).append(uuid)
    picked = [(rule_id, rng.choice(uuids)) for rule_id, uuids in sorted(by_rule.items())]
    rest = [item for item in closed if item not in picked]
    picked += rng.sample(rest, max(0, min(len(rest), size - len(picked))))
    return sorted(set(picked))


class DailyReview:
    """Posts the day's sample once across replicas; :meth:`run` is the service's loop."""

    def __init__(self, state: TrustState, store: Store, siem: Siem, client: AsyncWebClient,
                 rules: RuleSet, *, channel: str, size: int = 5, hour: int = 9,
                 clock: Callable[[], datetime], rng: random.Random | None = None,
                 every: float = 60.0, ttl: int = 30 * DAY) -> None:
        self.state = state
        self.records = AlertRecords(store, ttl)
        self.siem = siem
        self.client = client
        self.rules = rules
        self.channel = channel
        self.size = size
        self.hour = hour
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.every = every
        self.ttl = ttl

    async def run(self) -> None:
        """Tick every ``every`` seconds until cancelled; a failed tick is logged and retried."""
        await run_every(self.tick, self.every, what="daily review")

    async def tick(self) -> int | None:
        """Post today's sample if it is time and no replica has: how many, else None."""
        now = self.clock()
        if now.hour < self.hour:
            return None
        day = now.date().isoformat()
        done, lease = f"review-done:{day}", f"review:{day}"
        if await self.state.claimed(done) or not await self.state.claim(lease, LEASE_SECONDS):
            return None
        try:
            if await self.state.claimed(done):
                return None  # finished while this replica was taking the lease
            posted = await self.post(now)
        except Exception:
            await self.state.release(lease)  # the next tick (any replica) resumes the plan
            raise
        await self.state.claim(done, 3 * DAY)
        return posted

    async def post(self, now: datetime) -> int:
        """Post the day's sample of the 24 hours before ``now`` (or, when the day is already
        planned, what of it the channel does not show yet): how many samples this posted."""
        day = now.date().isoformat()
        plan = await self.state.plan(day)
        found: dict[str, str] = {}
        if plan is None:
            plan, records = await self._plan(now)
            await self.state.put_plan(plan, 3 * DAY)
        else:
            records = await self._load(plan)
            found = await self._in_history(day)
            log.info("resuming the review of %s: %d of %d messages found", day, len(found),
                     len(plan.members) + 1)
        if not plan.members:
            return 0
        rules = sorted({rule_id for rule_id, _ in plan.pairs()})
        if HEADER not in found:
            await self._post_header(plan, rules)
        links = {rule_id: {d.uuid: d.link for d in await self.state.decisions(rule_id)}
                 for rule_id in rules}
        posted = 0
        for rule_id, uuid in plan.pairs():
            record = records.get(uuid)
            if record is None:
                log.warning("review sample %s not posted: its record is gone", uuid)
                continue
            try:
                if uuid in found:
                    await self._adopt(record, links[rule_id].get(uuid, ""), day, found[uuid])
                    continue
                await self._post_one(record, links[rule_id].get(uuid, ""), day)
                posted += 1
            except Exception as exc:  # one refused sample must not cost the others
                log.warning("review sample %s not posted: %s", uuid,
                            redact(f"{type(exc).__name__}: {exc}"))
        return posted

    async def _plan(self, now: datetime) -> tuple[ReviewPlan, dict[str, AlertRecord]]:
        end = now.timestamp()
        closed = await self.state.closed_between(end - DAY, end)
        records = await self._still_closed(closed)
        picked = choose([(r.rule_id or "", r.uuid) for r in records.values()], self.size,
                        self.rng)
        return ReviewPlan.of(now.date().isoformat(), len(records), picked), records

    async def _load(self, plan: ReviewPlan) -> dict[str, AlertRecord]:
        loaded = await asyncio.gather(*(self.records.load(u) for _, u in plan.pairs()))
        return {r.uuid: r for r in loaded if r is not None}

    async def _post_header(self, plan: ReviewPlan, rules: list[str]) -> None:
        await self.client.chat_postMessage(
            channel=self.channel, unfurl_links=False,
            metadata={"event_type": HEADER_EVENT_TYPE, "event_payload": {"day": plan.day}},
            text=(f"*Daily auto-close review* · {len(plan.members)} of {plan.total} alerts "
                  f"SecBot closed in the last day ({escape(', '.join(rules))}). React "
                  ":white_check_mark: under a sample if SecBot was right, :x: if it was wrong: "
                  ":x: reopens the alert and puts its rule back into shadow mode."))

    async def _in_history(self, day: str) -> dict[str, str]:
        """The day's messages already in the channel: alert uuid (or :data:`HEADER`) → ts."""
        found: dict[str, str] = {}
        for message in await tagged_messages(self.client, self.channel,
                                             lambda m: m.payload.get("day") == day):
            if message.event_type == EVENT_TYPE and message.payload.get("alert_uuid"):
                found[str(message.payload["alert_uuid"])] = message.ts
            elif message.event_type == HEADER_EVENT_TYPE:
                found[HEADER] = message.ts
        return found

    async def _still_closed(self, closed: Sequence[tuple[str, str]]) -> dict[str, AlertRecord]:
        """The records of ``closed`` whose alert the SIEM still shows closed."""
        loaded = await asyncio.gather(*(self.records.load(uuid) for _, uuid in closed))
        records = [r for r in loaded if r is not None and r.rule_id and r.auto_close]
        found = await self.siem.get_many([r.id or r.uuid for r in records]) if records else {}
        return {r.uuid: r for r in records
                if (a := found.get(r.id or r.uuid)) is not None and a.workflow_status == "closed"}

    async def _post_one(self, record: AlertRecord, link: str, day: str) -> None:
        text = sample_text(record, self._rule_name(record.rule_id or ""), link)
        response = await self.client.chat_postMessage(
            channel=self.channel, text=text, unfurl_links=False,
            metadata={"event_type": EVENT_TYPE,
                      "event_payload": {"day": day, "alert_uuid": record.uuid,
                                        "rule_id": record.rule_id or ""}})
        await self._adopt(record, link, day, str(response["ts"]), fresh=True)

    async def _adopt(self, record: AlertRecord, link: str, day: str, ts: str, *,
                     fresh: bool = False) -> None:
        """Remember the sample message ``ts`` (reactions find it by ts) and give it the
        reviewer's two buttons; an older message (``fresh`` false) may have them already."""
        sample = Sample(uuid=record.uuid, rule_id=record.rule_id or "", day=day,
                        alert_id=record.id, link=link, channel=record.channel or "")
        await self.state.put_sample(self.channel, ts, sample, self.ttl)
        for name in (RIGHT, WRONG):
            try:
                await self.client.reactions_add(channel=self.channel, timestamp=ts, name=name)
            except SlackApiError as exc:
                if fresh or exc.response.get("error") != "already_reacted":
                    raise

    def _rule_name(self, rule_id: str) -> str:
        rule = self.rules.by_id(rule_id)
        return rule.rule.name if rule else rule_id


def sample_text(record: AlertRecord, rule_name: str, link: str) -> str:
    """One sample's message: rule, alert (linked), reason, the rule's fields. Alert data is
    escaped; the link is SecBot's own (Slack permalink or Kibana page)."""
    alert = f"alert {record.uuid}"
    shown = f"<{escape(link)}|{escape(alert)}>" if link else escape(alert)
    lines = [f"*Review* · rule *{escape(rule_name)}* ({code(record.rule_id or '')}) "
             f"auto-closed {shown} as {code(record.close_reason or 'automated_closure')}"]
    lines += [f"• {escape(name)}: {plain(value, 200)}" for name, value in
              list(record.fields.items())[:8]]
    lines.append("Right? :white_check_mark: · Wrong? :x:")
    return "\n".join(lines)

