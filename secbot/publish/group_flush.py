"""Showing alert groups in Slack: one header per group, every member once in its thread.

An alert joins its group in the store (durable) and its hand-off finishes; this *flusher* then
shows it. Any replica may do it, one at a time per group (a store lease): it works through the
store's pending groups, so a member that joined in a process killed since is shown by whoever
comes next. Exactly once, across ``kill -9``:

* the header is posted after an attempt token is claimed; a later attempt (the token is taken)
  first looks for a ``secbot_group`` header of that group in ``conversations.history``;
* a batch's range is written as ``inflight`` before it is posted; a flusher finding an inflight
  batch looks in the header's thread (``conversations.replies``, with metadata) for it first;
* a batch Slack refuses for its size is split in two and each half retried: never dropped.

Pace: one pass per group at most every ``interval`` seconds, so a storm of any size costs about
one ``chat.postMessage`` per ``BATCH_SIZE`` members plus one header edit per pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.errors import SecBotError
from secbot.domain.group import BATCH_PREFIX, LINE_PREFIX, Batch, GroupState, GroupUpdate
from secbot.domain.record import AlertRecord, MessageRef
from secbot.publish import group_view as view
from secbot.publish.history import find_tagged
from secbot.publish.pacing import ChannelPacer
from secbot.resilience.loop import cancel_and_wait
from secbot.store.base import Store

log = structlog.stdlib.get_logger(__name__)

SIZE_ERRORS = frozenset({"msg_too_long", "invalid_blocks", "invalid_metadata_format",
                         "metadata_too_large", "invalid_blocks_format"})
#: A flusher's lease on one group; renewed while it flushes (see ``GroupFlusher._leased``),
#: so this is how long a killed flusher's group waits for another replica, not a time limit.
LEASE_TTL = 10.0
#: While one pass lists a growing storm, its header is edited at most this often (seconds).
HEADER_EVERY = 5.0


class LeaseLostError(SecBotError):
    """Another flusher holds the group now: this pass stops before posting anything."""


class GroupFlusher:
    """Background task that shows pending groups; :meth:`wake` after a member joins."""

    def __init__(self, client: AsyncWebClient, store: Store, pacer: ChannelPacer, *,
                 ttl: int, threshold: int, interval: float = 1.0) -> None:
        self.client = client
        self.store = store
        self.pacer = pacer
        self.ttl = ttl
        self.threshold = threshold
        self.interval = interval
        self.owner = secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_pass: dict[str, float] = {}

    def start(self) -> None:
        """Run in the background (idempotent); also resumes groups left by a dead process."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        self.start()
        self._wake.set()

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], what="group flusher")

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.flush_pending()
            except Exception:  # Slack or Redis down: keep the group pending, try again
                log.exception("showing alert groups failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            await asyncio.sleep(self.interval / 4)  # coalesce a burst of joins into one pass

    async def flush_pending(self) -> None:
        """One pass over every pending group this replica can lease."""
        for group_id in await self.store.pending_groups():
            last = self._last_pass.get(group_id, 0.0)
            wait = last + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._leased(group_id)

    async def _leased(self, group_id: str) -> None:
        """Flush ``group_id`` while holding its lease, renewed every third of its TTL by a
        heartbeat: a slow Slack call (429 retries, pacing) never lets the lease lapse while
        this flusher lives, and a dead one's lapses within ``LEASE_TTL``. A renewal that fails
        (taken over, or Redis unreachable) stops the flush as a crash would: whatever was
        being posted is found again from the thread (the ``inflight`` range)."""
        lease = f"group-flush:{group_id}"
        if not await self.store.acquire_lease(lease, self.owner, LEASE_TTL):
            return
        flush = asyncio.ensure_future(self.flush(group_id))
        try:
            while not flush.done():
                await asyncio.wait({flush}, timeout=LEASE_TTL / 3)
                if not flush.done() and not await self._renew(lease):
                    log.warning("group %s: flush lease lost; stopping this pass", group_id)
                    break
            if flush.done():
                flush.result()
        finally:
            if not flush.done():
                # asyncio.wait, not ``await flush``: a cancel of this task arriving now must
                # propagate, not be taken for the flush's own CancelledError and swallowed.
                flush.cancel()
                await asyncio.wait({flush})
            if flush.done() and not flush.cancelled():
                flush.exception()  # retrieved: its failure was handled (or logged) above
            self._last_pass[group_id] = time.monotonic()
            with contextlib.suppress(Exception):  # lapses on its own if Redis is away
                await self.store.release_lease(lease, self.owner)

    async def _still_mine(self, group_id: str) -> None:
        """Fence a post: this flusher still holds the group (a process stalled past its
        lease must not post what the replica that took over posts)."""
        if not await self._renew(f"group-flush:{group_id}"):
            raise LeaseLostError(f"group {group_id}: flush lease lost before posting")

    async def _renew(self, lease: str) -> bool:
        try:
            return await self.store.acquire_lease(lease, self.owner, LEASE_TTL)
        except Exception:  # Redis unreachable: another replica may take over; stop
            return False

    async def flush(self, group_id: str) -> None:
        """Header, then every unlisted member in batches, then a redraw if one was asked."""
        state = await self.store.load_group(group_id)
        if state is None:  # expired: nothing left to show
            await self.store.settle_group(group_id)
            return
        header = await self._header(state)
        if state.inflight is not None:
            await self._resolve_inflight(state, header)
        state = await self._load(group_id)
        edited = time.monotonic()
        while state.shown < state.count:
            uuids = await self.store.group_members(
                group_id, state.shown, state.shown + view.BATCH_SIZE - 1)
            if not uuids:
                break
            await self._post_batch(state, header, state.shown, uuids)
            state = await self._load(group_id)
            if time.monotonic() - edited >= HEADER_EVERY:  # a long pass (a storm still
                await self._edit_header(state, header)  # growing): the count keeps up
                edited = time.monotonic()
        redraw = state.redraw
        if redraw:
            await self._redraw_batches(state, header)
        await self._edit_header(state, header)
        if redraw:
            await self.store.redrawn(group_id, redraw)
        await self.store.settle_group(group_id)

    async def _load(self, group_id: str) -> GroupState:
        state = await self.store.load_group(group_id)
        if state is None:
            raise RuntimeError(f"group {group_id} vanished from the store")
        return state

    # -- the header --------------------------------------------------------------------------

    async def _header(self, state: GroupState) -> MessageRef:
        channel = state.meta.channel
        if state.header_ts:
            return MessageRef(channel, state.header_ts)
        if state.meta.kind == "dup":  # the header is the first alert's own message
            own = await self.store.message_for_alert(state.meta.group_id)
            if own is None:
                raise RuntimeError(f"duplicates group {state.meta.group_id} has no message")
            return own
        token = secrets.token_hex(8)
        claim = await self.store.claim_dedup(f"group-header:{state.meta.group_id}", token,
                                             self.ttl)
        found = None if claim.first_uuid == token else await self._find_header(state)
        if found is None:
            uuids = await self.store.group_members(state.meta.group_id, 0, view.HEADER_UUIDS - 1)
            message = view.header_message(state, self.threshold, uuids)
            await self.pacer.wait(channel)
            await self._still_mine(state.meta.group_id)
            response = await self.client.chat_postMessage(
                channel=channel, unfurl_links=False, unfurl_media=False, **message)
            found = MessageRef(str(response["channel"]), str(response["ts"]))
        await self.store.update_group(state.meta.group_id, GroupUpdate(header_ts=found.ts),
                                      self.ttl)
        await self.store.link_message(state.meta.group_id, found, self.ttl)
        return found

    async def _find_header(self, state: GroupState) -> MessageRef | None:
        found = await find_tagged(self.client, state.meta.channel, lambda m: (
            m.event_type == view.EVENT_TYPE and m.payload.get("role") == "header"
            and m.payload.get("group_id") == state.meta.group_id))
        return None if found is None else MessageRef(state.meta.channel, found.ts)

    async def _edit_header(self, state: GroupState, header: MessageRef) -> None:
        if state.meta.kind == "dup":
            await self._edit_duplicates(state, header)
            return
        uuids = await self.store.group_members(state.meta.group_id, 0, view.HEADER_UUIDS - 1)
        message = view.header_message(state, self.threshold, uuids)
        await self.client.chat_update(channel=header.channel, ts=header.ts, **message)

    async def _edit_duplicates(self, state: GroupState, header: MessageRef) -> None:
        """A duplicates group: the header part on the first alert's message (drawn on the
        message as its record last saw it, status line included) and the "new context" reply
        naming the latest duplicate, each edited in place once per pass."""
        head = await self.store.load_record(state.meta.group_id)
        if head is None or head.message is None:
            return  # the first alert's record expired: its message is left as it is
        message = view.duplicates_message(head, head.message, state, self.threshold)
        await self.client.chat_update(channel=header.channel, ts=header.ts, **message)
        context = await self.store.message_for_alert(f"context:{state.meta.group_id}")
        last = await self.store.group_members(state.meta.group_id, state.count - 1,
                                              state.count - 1) if state.count else []
        latest = await self.store.load_record(last[0]) if last else None
        if context is None or latest is None:
            return
        text = view.context_text(state.count, latest.uuid, latest.timestamp, latest.fields,
                                 head.fields, "SecBot closed it" if latest.auto_close else None)
        await self.client.chat_update(channel=context.channel, ts=context.ts, text=text)

    # -- member batches ----------------------------------------------------------------------

    async def _resolve_inflight(self, state: GroupState, header: MessageRef) -> None:
        """A batch was being posted when its flusher stopped: adopt it if Slack has it."""
        assert state.inflight is not None
        start, end = state.inflight
        cursor: str | None = None
        while True:
            page = await self.client.conversations_replies(
                channel=header.channel, ts=header.ts, include_all_metadata=True, limit=200,
                cursor=cursor)
            for message in page.get("messages") or []:
                payload = _payload(message)
                if payload.get("role") == "batch" and payload.get("start") == start:
                    got = payload.get("alert_uuids") or []
                    await self._record(state, Batch(start, start + len(got), str(message["ts"])),
                                       [str(u) for u in got], header.channel)
                    return
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        del end  # not found: the range is posted again from ``shown`` on
        await self.store.update_group(state.meta.group_id, GroupUpdate(inflight=(0, 0)),
                                      self.ttl)

    async def _post_batch(self, state: GroupState, header: MessageRef, start: int,
                          uuids: Sequence[str]) -> None:
        group_id = state.meta.group_id
        records = await self._records(uuids)
        await self.store.update_group(
            group_id, GroupUpdate(inflight=(start, start + len(uuids))), self.ttl)
        message = view.batch_message(group_id, start, uuids, records, state.meta.fields,
                                     state.meta.kind)
        await self.pacer.wait(header.channel)
        await self._still_mine(group_id)
        try:
            response = await self.client.chat_postMessage(
                channel=header.channel, thread_ts=header.ts, unfurl_links=False,
                unfurl_media=False, **message)
        except SlackApiError as exc:
            if str(exc.response.get("error", "")) not in SIZE_ERRORS or len(uuids) < 2:
                raise
            # Too big for Slack: two smaller batches, each recorded on its own.
            await self.store.update_group(group_id, GroupUpdate(inflight=(0, 0)), self.ttl)
            half = len(uuids) // 2
            await self._post_batch(state, header, start, uuids[:half])
            await self._post_batch(state, header, start + half, uuids[half:])
            return
        await self._record(state, Batch(start, start + len(uuids), str(response["ts"])),
                           uuids, header.channel)

    async def _record(self, state: GroupState, batch: Batch, uuids: Sequence[str],
                      channel: str) -> None:
        ref = MessageRef(channel, batch.ts)
        # One alert on the line: a reaction there changes it. Several: refused (say why).
        owner = (f"{LINE_PREFIX}{uuids[0]}" if len(uuids) == 1
                 else f"{BATCH_PREFIX}{state.meta.group_id}:{batch.start}")
        await self.store.link_message(owner, ref, self.ttl)
        await self.store.update_group(state.meta.group_id, GroupUpdate(batch=batch), self.ttl)

    async def _records(self, uuids: Sequence[str]) -> dict[str, AlertRecord | None]:
        loaded = await asyncio.gather(*(self.store.load_record(u) for u in uuids))
        return dict(zip(uuids, loaded, strict=True))

    async def _redraw_batches(self, state: GroupState, header: MessageRef) -> None:
        """Statuses changed: every batch line is drawn again from the records."""
        for batch in state.batches:
            uuids = await self.store.group_members(state.meta.group_id, batch.start,
                                                   batch.end - 1)
            records = await self._records(uuids)
            message = view.batch_message(state.meta.group_id, batch.start, uuids, records,
                                         state.meta.fields, state.meta.kind)
            await self.client.chat_update(channel=header.channel, ts=batch.ts, **message)


def _payload(message: Any) -> dict[str, Any]:
    meta = message.get("metadata") or {}
    if meta.get("event_type") != view.EVENT_TYPE:
        return {}
    payload = meta.get("event_payload")
    return payload if isinstance(payload, dict) else {}
