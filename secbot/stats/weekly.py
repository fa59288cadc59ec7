"""The weekly statistics report to ``SECBOT_REPORT_CHANNEL``, posted once across replicas.

Every replica runs :meth:`WeeklyReport.run` (a check a minute). Once the week's slot has come
(Monday 09:00 UTC by default) and the week's report is not marked done, a replica takes a
short lease named after the ISO week (only one can hold it), checks the mark again, notes the
attempt, posts the table (``chat.postMessage`` tagged with message ``metadata``
``{event_type: secbot_report, event_payload: {week: "2026-W49"}}``), uploads the chart into
its thread (``files_upload_v2``: ``files.completeUploadExternal`` takes no metadata, so the
tagged message is the table and the chart hangs under it), marks the week done and gives the
lease up. A replica that starts after the slot still posts that week's report; the next
week's waits for its slot.

Exactly once (DESIGN §10's way for alerts): a replica that finds the week attempted but not
done — the last one died between the post and the mark, or failed after it, and its lease
lapsed — looks for the week's tagged message in the channel history first: found, it only
adds the chart if the thread has none and marks the week done; not found, it posts. A
failure (Slack, the SIEM) releases the lease unmarked: the next check, on any replica,
tries again the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from secbot.publish.history import find_tagged
from secbot.resilience.loop import run_every
from secbot.siem.base import Siem
from secbot.stats.message import chart_file, slack_text
from secbot.stats.report import StatsReport, fetch_report
from secbot.store.base import Store

log = structlog.stdlib.get_logger(__name__)

DONE_CHECKPOINT = "stats:weekly-report"
#: The week a replica last began to post (set before the post: a crash after it is detected).
ATTEMPT_CHECKPOINT = "stats:weekly-report:attempt"
EVENT_TYPE = "secbot_report"
#: Long enough for a slow SIEM and Slack; short enough that a dead replica's claim passes soon.
LEASE_SECONDS = 300.0
CHECK_SECONDS = 60.0


def week_slot(now: datetime, weekday: int, hour: int) -> datetime:
    """The report time of ``now``'s ISO week: ``weekday`` (0 = Monday) at ``hour`` UTC."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = day - timedelta(days=day.weekday())
    return monday + timedelta(days=weekday, hours=hour)


def week_key(moment: datetime) -> str:
    """``2026-W49``: the ISO week of ``moment``."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


class WeeklyReport:
    """Posts the last seven days' statistics to ``channel`` once a week."""

    def __init__(self, siem: Siem, store: Store, client: AsyncWebClient, channel: str, *,
                 owner: str, clock: Callable[[], datetime] | None = None, weekday: int = 0,
                 hour: int = 9, period: timedelta = timedelta(days=7),
                 check_seconds: float = CHECK_SECONDS) -> None:
        self.siem, self.store, self.client, self.channel = siem, store, client, channel
        self.owner = owner
        self._clock = clock or (lambda: datetime.now(UTC))
        self.weekday, self.hour, self.period = weekday, hour, period
        self.check_seconds = check_seconds

    async def run(self) -> None:
        """Check now, then every ``check_seconds``, until cancelled; failures are logged."""
        await run_every(self.tick, self.check_seconds, what="weekly report")

    async def tick(self) -> bool:
        """Post this week's report if it is due and nobody posted it; True when this did."""
        now = self._clock()
        slot = week_slot(now, self.weekday, self.hour)
        if now < slot:
            return False
        key = week_key(slot)
        if await self.store.get_checkpoint(DONE_CHECKPOINT) == key:
            return False
        lease = f"{DONE_CHECKPOINT}:{key}"
        if not await self.store.acquire_lease(lease, self.owner, LEASE_SECONDS):
            return False  # another replica is posting it
        try:
            if await self.store.get_checkpoint(DONE_CHECKPOINT) == key:
                return False  # posted while this replica was asking for the lease
            posted = await self._post_once(slot, key)
            await self.store.set_checkpoint(DONE_CHECKPOINT, key)
            return posted
        finally:
            await self.store.release_lease(lease, self.owner)

    async def _post_once(self, slot: datetime, key: str) -> bool:
        """Post the week's report unless an earlier attempt did; True when this posted."""
        if await self.store.get_checkpoint(ATTEMPT_CHECKPOINT) == key:
            earlier = await self._find_in_history(key)
            if earlier is not None:
                log.info("weekly report %s was posted before (ts %s): not again", key, earlier)
                if not await self._has_chart(earlier):
                    await self._chart(await fetch_report(self.siem, self.period, slot), earlier)
                return False
        else:
            await self.store.set_checkpoint(ATTEMPT_CHECKPOINT, key)
        await self._post(slot, key)
        return True

    async def _post(self, slot: datetime, key: str) -> None:
        report = await fetch_report(self.siem, self.period, slot)
        response = await self.client.chat_postMessage(
            channel=self.channel, text=slack_text(report, f"Weekly report {key}"),
            unfurl_links=False,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"week": key}})
        ts = str(response["ts"])
        log.info("weekly report %s posted to %s", key, self.channel)
        await self._chart(report, ts)

    async def _chart(self, report: StatsReport, ts: str) -> None:
        chart = await chart_file(report)
        await self.client.files_upload_v2(
            channel=self.channel, thread_ts=ts, content=chart.content,
            filename=chart.filename, title=chart.title, alt_txt=chart.alt_txt)

    async def _find_in_history(self, key: str) -> str | None:
        """The ts of the week's tagged report in the channel, if an earlier attempt posted it."""
        found = await find_tagged(self.client, self.channel, lambda m: (
            m.event_type == EVENT_TYPE and m.payload.get("week") == key))
        return None if found is None else found.ts

    async def _has_chart(self, ts: str) -> bool:
        page = await self.client.conversations_replies(channel=self.channel, ts=ts, limit=200)
        messages: list[dict[str, Any]] = page.get("messages") or []
        return any(m.get("files") for m in messages if m.get("ts") != ts)


__all__ = ["ATTEMPT_CHECKPOINT", "DONE_CHECKPOINT", "EVENT_TYPE", "WeeklyReport", "week_key",
           "week_slot"]
