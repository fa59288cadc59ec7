"""✅ / ❌ on a daily review sample (issue 15).

The bolt app asks :class:`ReviewReactions` first; a reaction on a message that is not a
review sample (looked up by channel and ``ts`` in :mod:`secbot.review.state`) is left to
triage. Only ``SECBOT_TRIAGERS`` may judge; each sample is judged once (a Redis claim).

* ✅ *right*: an agreement for the rule; the sample says who confirmed it.
* ❌ *wrong*: the alert is reopened in the SIEM through the ordinary status-change saga (so
  it is audited as the reviewer's change, tagged and its message edited), a wrong close is
  recorded for the rule, and — with ``SECBOT_REVIEW_DEMOTE`` — the rule is put back into
  shadow mode (a Redis demotion the decide stage reads; the rule file is untouched) and the
  rule's channel is told. If the reopen fails, nothing is recorded and the reviewer is told,
  so reacting again retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.secrets import redact
from secbot.render.mrkdwn import code, escape
from secbot.review.sampler import RIGHT, WRONG
from secbot.review.state import Demotion, Judgement, Sample, TrustState
from secbot.rules.ruleset import RuleSet
from secbot.triage.people import MembershipUnknownError
from secbot.triage.reactions import normalize
from secbot.triage.status_change import Outcome, OutcomeKind, StatusChanger

log = structlog.stdlib.get_logger(__name__)

JUDGED_TTL = 400 * 86400
#: Handled, nothing to tell (the bot's own reaction, another emoji on a sample).
QUIET = Outcome(OutcomeKind.NOOP, "")


def demotion_text(demotion: Demotion) -> str:
    """Why a demoted rule does not close: on every message of the rule until restored."""
    day = datetime.fromtimestamp(demotion.at, UTC).strftime("%Y-%m-%d")
    return (f"demoted to shadow: {demotion.by} marked the auto-close of alert "
            f"{demotion.alert} wrong in review on {day}")


class ReviewReactions:
    """Routes reactions on review samples; :meth:`handle` returns None for other messages."""

    def __init__(self, state: TrustState, changer: StatusChanger, client: AsyncWebClient,
                 rules: RuleSet, *, demote: bool = True, bot_user_id: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.changer = changer
        self.client = client
        self.rules = rules
        self.demote = demote
        self.bot_user_id = bot_user_id
        self.clock = clock

    async def handle(self, event: Mapping[str, Any]) -> Outcome | None:
        item = event.get("item") or {}
        if item.get("type") != "message":
            return None
        channel, ts = str(item.get("channel")), str(item.get("ts"))
        sample = await self.state.sample_at(channel, ts)
        if sample is None:
            return None
        user = str(event.get("user") or "")
        reaction = normalize(str(event.get("reaction") or ""))
        if not user or user == self.bot_user_id or reaction not in (RIGHT, WRONG):
            return QUIET
        refusal = await self._authorize(user)
        if refusal is not None:
            return refusal
        claim = f"judged:{sample.uuid}"
        if not await self.state.claim(claim, JUDGED_TTL):
            return Outcome(OutcomeKind.REFUSED, "This sample has already been reviewed.")
        try:
            if reaction == RIGHT:
                return await self._right(sample, user, channel, ts)
            return await self._wrong(sample, user, channel, ts, claim)
        except BaseException:
            await self.state.release(claim)  # not judged: reacting again retries
            raise

    async def _authorize(self, user: str) -> Outcome | None:
        try:
            allowed = await self.changer.triagers.allows(user)
        except MembershipUnknownError:
            return Outcome(OutcomeKind.REFUSED, "SecBot could not tell whether you are a "
                           "triager (Slack did not list the group). Try again shortly.")
        if allowed:
            return None
        return Outcome(OutcomeKind.REFUSED, "You are not in SECBOT_TRIAGERS, so your review "
                       "was not counted. Ask a triager.")

    async def _right(self, sample: Sample, user: str, channel: str, ts: str) -> Outcome:
        await self.state.judged(Judgement(uuid=sample.uuid, rule_id=sample.rule_id, agree=True,
                                          why="confirmed in review", by=user, at=self.clock()))
        await self._mark(channel, ts, sample, f":white_check_mark: Right · confirmed by <@{user}>")
        return QUIET

    async def _wrong(self, sample: Sample, user: str, channel: str, ts: str, claim: str
                     ) -> Outcome:
        reopened = await self.changer.change(sample.uuid, "open", None, user)
        if reopened.kind in (OutcomeKind.FAILED, OutcomeKind.REFUSED):
            await self.state.release(claim)
            return Outcome(OutcomeKind.FAILED, "SecBot did not record your ❌: it could not "
                           f"reopen the alert ({reopened.text}). React again to retry.")
        await self.state.judged(Judgement(uuid=sample.uuid, rule_id=sample.rule_id, agree=False,
                                          why="marked wrong in review", by=user,
                                          at=self.clock()))
        line = f":x: Wrong · <@{user}> · alert reopened"
        if self.demote:
            demotion = Demotion(rule_id=sample.rule_id, by=user, at=self.clock(),
                                alert=sample.uuid, link=sample.link)
            if await self.state.demote(demotion):
                await self._tell_rule_channel(sample, demotion)
            line += " · rule back in shadow mode"
        await self._mark(channel, ts, sample, line)
        return QUIET if not reopened.problems else Outcome(
            OutcomeKind.CHANGED, reopened.text, reopened.problems)

    async def _tell_rule_channel(self, sample: Sample, demotion: Demotion) -> None:
        if not sample.channel:
            return
        rule = self.rules.by_id(sample.rule_id)
        name = rule.rule.name if rule else sample.rule_id
        alert = (f"<{escape(sample.link)}|{escape(sample.uuid)}>" if sample.link
                 else escape(sample.uuid))
        text = (f"Rule *{escape(name)}* ({code(sample.rule_id)}) is back in *shadow mode*: "
                f"<@{demotion.by}> marked its auto-close of alert {alert} wrong in the daily "
                "review, and SecBot reopened it. Its alerts now show \"would auto-close "
                "(shadow)\" and stay open until someone runs "
                f"`secbot rules trust --restore {escape(sample.rule_id)}`.")
        try:
            await self.client.chat_postMessage(channel=sample.channel, text=text,
                                               unfurl_links=False)
        except Exception as exc:  # the demotion stands; the alert messages say it too
            log.warning("demotion of %s not told: %s", sample.rule_id,
                        redact(f"{type(exc).__name__}: {exc}"))

    async def _mark(self, channel: str, ts: str, sample: Sample, line: str) -> None:
        """The sample's message says how it was judged (best effort)."""
        try:
            found = await self.client.conversations_history(
                channel=channel, latest=ts, oldest=ts, inclusive=True, limit=1)
            messages = found.get("messages") or []
            text = str(messages[0].get("text") or "") if messages else ""
            await self.client.chat_update(channel=channel, ts=ts,
                                          text=f"{text}\n{line}" if text else line)
        except Exception as exc:
            log.info("review sample %s not marked: %s", sample.uuid, type(exc).__name__)
