"""Posting decided alerts to Slack, exactly once per alert uuid.

Each top-level post carries message ``metadata`` (``event_type: secbot_alert``, payload
``{alert_uuid}``). Before posting, an attempt token is claimed in the store; if an earlier
attempt exists (a crash between ``chat.postMessage`` and recording it), the channel history is
searched for the metadata first, so a retry adopts the earlier message instead of posting twice.
The process also remembers what it posted itself: if Redis restarts empty between the post and
the record of it, the retry in this process adopts the post without any store.
Duplicates inside a dedup window form a ``dup`` group (:mod:`secbot.domain.group`) whose
header is the first alert's own message: each duplicate joins durably and the group flusher
lists it once in that message's thread and keeps the header part (count, first/last seen,
status counts) current at Slack's pace, like a storm or ``group.by`` group. The first
duplicate also posts the "new context" reply at once (the flusher edits it in place later).
The first message keeps leading to the first alert.
"""

from __future__ import annotations

import re
import secrets

from cachetools import LRUCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.alert import Alert, thaw
from secbot.domain.errors import SecBotError
from secbot.domain.record import RecordUpdate
from secbot.pipeline.decision import Decision
from secbot.publish import group_view as view
from secbot.publish.group_flush import GroupFlusher
from secbot.publish.groups import GroupAssigner, recount
from secbot.publish.history import find_tagged
from secbot.publish.pacing import ChannelPacer
from secbot.render import mrkdwn as md
from secbot.render.blocks import with_status
from secbot.store.base import MessageRef, Store
from secbot.store.records import AlertRecords

EVENT_TYPE = "secbot_alert"
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")  # a Slack user id (audit actors may be emails)
#: chat.postMessage errors about the message itself: retrying the same content cannot succeed.
CONTENT_ERRORS = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "too_many_attachments",
        "invalid_attachments",
    }
)
PUBLISHED_MEMORY = 10_000  # alerts this process posted (least recently used forgotten first)


class NoChannelError(SecBotError, RuntimeError):
    """Neither the rule nor SECBOT_DEFAULT_CHANNEL names a channel for this alert."""


class SlackPublisher:
    """The :class:`secbot.intake.handoff.Publisher` for Slack."""

    def __init__(
        self,
        client: AsyncWebClient,
        store: Store,
        *,
        ttl: int = 30 * 86400,
        pacer: ChannelPacer | None = None,
        attempt_ttl: int = 7 * 86400,
        group_threshold: int = 0,
        group_interval: float | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.records = AlertRecords(store, ttl)
        self.ttl = ttl
        self.pacer = pacer or ChannelPacer(rate=0)
        self.attempt_ttl = attempt_ttl
        self.groups = GroupAssigner(store, threshold=group_threshold, ttl=ttl)
        interval = group_interval if group_interval is not None else (
            1.0 if self.pacer.rate > 0 else 0.2)
        self.flusher = GroupFlusher(client, store, self.pacer, ttl=ttl,
                                    threshold=group_threshold, interval=interval)
        self._published: LRUCache[str, MessageRef] = LRUCache(maxsize=PUBLISHED_MEMORY)

    async def publish(self, alert: Alert, decision: Decision) -> None:
        if decision.channel is None:
            raise NoChannelError(f"alert {alert.uuid}: no channel (set SECBOT_DEFAULT_CHANNEL)")
        note = None
        if decision.duplicate_of:
            head, note = await self._live_head(decision.duplicate_of, alert)
            first = await self.store.message_for_alert(head) if head else None
            if head is not None and first is not None:
                await self._join_duplicates(head, first, alert, decision)
                return
        group_id = await self.store.group_of(alert.uuid)  # joined by an earlier attempt
        ref = None if group_id else await self._existing_post(alert.uuid, decision.channel)
        if ref is not None and await self._shown_on_other(alert.uuid, ref):
            return  # an earlier attempt showed it on another message: done
        if ref is None and group_id is None and note is None:
            group_id = await self.groups.assign(alert, decision, decision.channel)
        if group_id is not None:
            await self._join(group_id, alert, decision)
            return
        if ref is None:
            ref = await self._post(alert, decision, decision.channel, note)
        self._remember(alert.uuid, ref)
        await self.store.link_message(alert.uuid, ref, self.ttl)
        # Two fields of the record the pipeline saved: where it went and what it shows.
        await self.records.attach_message(alert.uuid, ref, thaw(decision.message))
        if decision.auto_close:
            await self._react(ref, "white_check_mark")

    async def _join(self, group_id: str, alert: Alert, decision: Decision) -> None:
        """The alert joins its group durably; the flusher lists it in the group's thread
        (this or any replica, even after this process dies)."""
        await self.groups.join(group_id, alert, decision)
        await self.store.update_record(alert.uuid, RecordUpdate(group_id=group_id), self.ttl)
        self.flusher.wake()

    async def _live_head(self, first: str, alert: Alert) -> tuple[str | None, str | None]:
        """The alert a duplicate threads under: ``first``, or, once that was closed, the
        duplicate that came after the close (it got a message of its own). ``(None, note)``
        when ``alert`` is that duplicate: it is posted with ``note`` ("previous alert closed
        by … at …") instead of vanishing under a closed thread."""
        head = first
        for _ in range(8):  # each closed round moves on one message; bounded for safety
            record = await self.records.load(head)
            if record is None or record.status != "closed":
                return head, None
            after = await self.store.claim_group(f"after-close:{head}", alert.uuid, self.ttl)
            if after == alert.uuid:
                return None, await self._closed_note(head)
            head = after
        return head, None

    async def _closed_note(self, uuid: str) -> str:
        closes = [e for e in await self.store.read_audit(uuid, limit=20) if e.action == "closed"]
        if not closes:
            return "Previous alert with the same dedup key was closed."
        last = closes[-1]
        person = last.extra.get("slack_user") or last.actor  # the Slack user when known
        who = f"<@{person}>" if USER_ID.match(person) else md.escape(person)
        return (f"Previous alert with the same dedup key (`{md.escape(uuid[:8])}`) closed by "
                f"{who} at {last.at.strftime('%Y-%m-%d %H:%M UTC')}; this one is new activity.")

    async def _shown_on_other(self, uuid: str, ref: MessageRef) -> bool:
        """True when ``ref`` is a message standing for another alert or a group, not
        ``uuid``'s own (so it must never be edited with ``uuid``'s blocks)."""
        owner = await self.store.alert_for_message(ref.channel, ref.ts)
        return owner is not None and owner != uuid

    async def correct(self, alert: Alert, decision: Decision, note: str) -> None:
        """The auto-close was not applied: fix the status line and take the bot's ✅ back."""
        line = f"Open · {note}"
        group_id = await self.store.group_of(alert.uuid)  # a duplicate's group too
        if group_id is not None:
            await self._correct_member(alert, group_id, note)
            return
        if decision.duplicate_of:
            first = await self.store.message_for_alert(decision.duplicate_of)
            if first is not None:
                await self._say_in_thread(first.channel, first.ts, alert.uuid, note)
            return
        ref = await self.store.message_for_alert(alert.uuid)
        if ref is None:
            return
        if await self._shown_on_other(alert.uuid, ref):  # shown on another message: say it there
            await self._say_in_thread(ref.channel, ref.ts, alert.uuid, note)
            return
        # The record's copy is the message as last shown; without a record (Redis lost it),
        # the decision's message is what was posted.
        record = await self.records.load(alert.uuid)
        message = (record.message if record else None) or decision.message
        updated = with_status(message, line)
        await self.client.chat_update(
            channel=ref.channel,
            ts=ref.ts,
            text=str(updated.get("text", "")),
            blocks=updated["blocks"],
        )
        await self.records.set_status(alert.uuid, "open", updated)
        try:
            await self.client.reactions_remove(
                channel=ref.channel, timestamp=ref.ts, name="white_check_mark"
            )
        except SlackApiError as exc:
            if exc.response.get("error") != "no_reaction":
                raise

    async def _correct_member(self, alert: Alert, group_id: str, note: str) -> None:
        """A group member's auto-close failed: its line and the header counts say open again
        (redrawn by the flusher), and the group's thread says why."""
        await self.store.update_record(alert.uuid, RecordUpdate(status="open", auto_close=False),
                                       self.ttl)
        await recount(self.store, group_id, self.ttl)
        self.flusher.wake()
        state = await self.store.load_group(group_id)
        if state is not None and state.header_ts:
            await self._say_in_thread(state.meta.channel, state.header_ts, alert.uuid, note)

    async def _say_in_thread(self, channel: str, thread_ts: str, uuid: str, note: str) -> None:
        """A correction about alert ``uuid`` where its message's readers look: the thread."""
        await self.client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                           text=md.escape(f"Alert {uuid}: {note}"),
                                           unfurl_links=False)

    def start(self) -> None:
        """Start showing groups (and resume those a stopped process left half shown)."""
        self.flusher.start()

    async def aclose(self) -> None:
        await self.flusher.aclose()

    async def _post(self, alert: Alert, decision: Decision, channel: str,
                    note: str | None = None) -> MessageRef:
        metadata = {"event_type": EVENT_TYPE, "event_payload": {"alert_uuid": alert.uuid}}
        blocks = list(decision.message.get("blocks", []))
        if note is not None:  # trusted text built by SecBot (alert data in it is escaped)
            blocks = [{"type": "context", "elements": [{"type": "mrkdwn", "text": note}]},
                      *blocks][: md.MAX_BLOCKS]
        await self.pacer.wait(channel)
        try:
            response = await self.client.chat_postMessage(
                channel=channel,
                text=decision.message.get("text", ""),
                blocks=blocks,
                metadata=metadata,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error not in CONTENT_ERRORS:
                raise  # transient or configuration: the poller retries this alert later
            # Slack refuses this content and would refuse it on every retry, blocking the
            # queue: post a plain stand-in that points at the SIEM instead.
            response = await self.client.chat_postMessage(
                channel=channel,
                metadata=metadata,
                unfurl_links=False,
                text=md.truncate(
                    md.escape(
                        f"Alert {alert.uuid} ({decision.rule_id or 'no rule'}): Slack refused the "
                        f"full message ({error}); open it in the SIEM."
                    ),
                    md.MESSAGE_TEXT_MAX,
                ),
            )
        return MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))

    async def _existing_post(self, uuid: str, channel: str) -> MessageRef | None:
        """The message an earlier attempt posted for ``uuid``, if any."""
        mine = self._published.get(uuid)
        if mine is not None:  # posted by this process; the store may have lost it since
            return mine
        known = await self.store.message_for_alert(uuid)
        if known is not None:
            return known
        token = secrets.token_hex(8)
        claim = await self.store.claim_dedup(f"post-attempt:{uuid}", token, self.attempt_ttl)
        if claim.first_uuid == token:
            return None  # first attempt: nothing can have been posted
        return await self._find_in_history(uuid, channel)

    def _remember(self, uuid: str, ref: MessageRef) -> None:
        self._published[uuid] = ref

    async def _find_in_history(self, uuid: str, channel: str) -> MessageRef | None:
        found = await find_tagged(self.client, channel, lambda m: (
            m.event_type == EVENT_TYPE and m.payload.get("alert_uuid") == uuid))
        return None if found is None else MessageRef(channel=channel, ts=found.ts)

    async def _react(self, ref: MessageRef, name: str) -> None:
        try:
            await self.client.reactions_add(channel=ref.channel, timestamp=ref.ts, name=name)
        except SlackApiError as exc:
            if exc.response.get("error") != "already_reacted":
                raise

    async def _join_duplicates(self, head: str, first: MessageRef, alert: Alert,
                               decision: Decision) -> None:
        """``alert`` joins the duplicates group of ``head`` (durably, once); the flusher lists
        it and redraws the header part. The first duplicate posts the "new context" reply."""
        legacy = await self.store.load_group(head) is None and bool(
            await self.store.group_members(head, 0, 0))
        if not legacy:
            await self.groups.open_duplicates(head, first, alert, decision)
            await self._join(head, alert, decision)
        key = f"context:{head}"
        existing = await self.store.message_for_alert(key)
        if existing is not None and not legacy:
            return  # the flusher edits it at its pace, not one edit per duplicate
        first_record = await self.records.load(head)
        text = view.context_text(
            max(1, decision.duplicate_count - 1), alert.uuid, alert.get_field("@timestamp"),
            thaw(decision.fields), first_record.fields if first_record else {},
            decision.explanation if decision.auto_close else None)
        if existing is None:
            await self.pacer.wait(first.channel)
            response = await self.client.chat_postMessage(
                channel=first.channel, thread_ts=first.ts, text=text, unfurl_links=False)
            existing = MessageRef(first.channel, str(response["ts"]))
            await self.store.link_message(key, existing, self.ttl)
        else:  # an older SecBot's duplicates (no group state): shown in this reply, as then
            await self.client.chat_update(channel=existing.channel, ts=existing.ts, text=text)
        if legacy:
            await self.records.join_group(head, alert.uuid, first)
