"""The slack-bolt ``AsyncApp``: event listeners wired to triage and commands.

Listeners are thin: they dedupe redelivered events by ``event_id``, find the alert behind the
message, and call :class:`ReactionTriage` / :class:`CommandRouter`. Refusals are ephemeral;
command answers are visible replies in the thread of the mention.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from secbot.commands.context import CommandContext, Reply
from secbot.commands.router import CommandRouter, StatusCommand
from secbot.domain.secrets import redact
from secbot.domain.status import Status
from secbot.publish.group_view import EVENT_TYPE as GROUP_EVENT_TYPE
from secbot.publish.slack import EVENT_TYPE
from secbot.review.reactions import ReviewReactions
from secbot.stats.message import ChartFile
from secbot.store.base import MessageRef, Store, StoreUnavailable
from secbot.store.records import AlertRecords
from secbot.triage.reactions import ReactionTriage, normalize
from secbot.triage.status_change import OutcomeKind, StatusChanger

EVENT_MEMORY = 3600  # seconds an event_id is remembered; Slack retries within minutes

log = structlog.stdlib.get_logger(__name__)


class SlackHandlers:
    """What the bolt listeners do, testable without bolt."""

    def __init__(
        self,
        client: AsyncWebClient,
        store: Store,
        reactions: ReactionTriage,
        router: CommandRouter,
        *,
        link_ttl: int = 30 * 86400,
        review: ReviewReactions | None = None,
    ) -> None:
        self.review = review  # ✅/❌ on a daily review sample (issue 15), never triage
        self.client = client
        self.store = store
        self.reactions = reactions
        self.router = router
        self.link_ttl = link_ttl
        self.records = AlertRecords(store, link_ttl)

    async def first_delivery(self, body: Mapping[str, Any]) -> bool:
        """False for a redelivered (or replayed) event already handled by any replica."""
        event_id = body.get("event_id")
        if not event_id:
            return True
        return await self.store.claim_post(f"event:{event_id}", EVENT_MEMORY)

    async def release_delivery(self, body: Mapping[str, Any]) -> None:
        """The event was not handled to the end: a redelivery (or replay) may try again."""
        event_id = body.get("event_id")
        if event_id:
            with contextlib.suppress(Exception):  # the store is down: its claim expires
                await self.store.release_post(f"event:{event_id}")

    async def on_reaction_added(self, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        """Never raises: whatever fails, the person is told and the event may be retried."""
        item = event.get("item") or {}
        channel, user = str(item.get("channel")), str(event.get("user"))
        try:
            await self._reaction(event, body)
        except StoreUnavailable:
            await self._store_down(channel, user, None)
        except Exception as exc:  # e.g. Kibana or Slack unreachable mid-change
            log.exception("reaction on %s/%s failed", channel, item.get("ts"))
            await self.release_delivery(body)
            await self._tell(
                channel,
                user,
                "SecBot could not finish acting on your reaction "
                f"({redact(f'{type(exc).__name__}: {exc}')}). Please try again.",
            )

    async def _reaction(self, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        if not await self.first_delivery(body):
            return
        item = event.get("item") or {}
        outcome = await self.review.handle(event) if self.review is not None else None
        if outcome is None:
            if item.get("type") == "message" and normalize(str(event.get("reaction") or "")) in (
                self.reactions.reactions
            ):
                await self.relink(str(item.get("channel")), str(item.get("ts")))
            outcome = await self.reactions.handle(event)
        if outcome is None:
            return
        if outcome.kind is OutcomeKind.FAILED:
            await self.release_delivery(body)  # a redelivery or a retry can finish it
        if outcome.needs_telling:
            await self._tell(str(item.get("channel")), str(event.get("user")), outcome.text)

    async def _tell(self, channel: str, user: str, text: str) -> None:
        """An ephemeral note; if Slack refuses even that, the log has it."""
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text)
        except Exception:
            log.exception("could not tell %s in %s: %s", user, channel, text)

    async def on_app_mention(self, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        thread = event.get("thread_ts") or event.get("ts")
        channel, user = str(event.get("channel")), str(event.get("user"))
        try:
            await self._mention(event, body)
        except StoreUnavailable:
            await self._store_down(channel, user, str(thread) if thread else None)
        except Exception as exc:  # never into bolt's "Failed to run listener function"
            log.exception("command in %s failed", channel)
            await self.release_delivery(body)
            await self._tell(
                channel,
                user,
                f"SecBot could not answer ({redact(f'{type(exc).__name__}: {exc}')}). "
                "Please try again.",
            )

    async def _store_down(self, channel: str, user: str, thread_ts: str | None) -> None:
        """Redis is down: say so rather than drop the request silently."""
        await self.client.chat_postEphemeral(
            channel=channel,
            user=user,
            thread_ts=thread_ts,
            text="SecBot cannot reach its state store right now, so it did not act on this. "
            "Please try again in a minute.",
        )

    async def _mention(self, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        if not await self.first_delivery(body):
            return
        ctx = await self.context_for(event)
        reply = await self.router.run(str(event.get("text") or ""), ctx)
        await self.answer(ctx, reply)

    async def context_for(self, event: Mapping[str, Any]) -> CommandContext:
        channel, ts = str(event.get("channel")), str(event.get("ts"))
        thread_ts = event.get("thread_ts")
        uuid = await self.relink(channel, str(thread_ts)) if thread_ts else None
        if uuid is not None and uuid.startswith("context:"):
            uuid = uuid.removeprefix("context:")
        record = await self.records.load(uuid) if uuid else None
        return CommandContext(
            user=str(event.get("user")),
            channel=channel,
            ts=ts,
            thread_ts=str(thread_ts) if thread_ts else None,
            alert_uuid=uuid,
            alert=record,
        )

    async def relink(self, channel: str, ts: str) -> str | None:
        """The alert (or group) behind a message: the store's link, else (Redis restarted
        empty, or the link expired) the ``secbot_alert`` / ``secbot_group`` header metadata
        SecBot put on the message, re-linked."""
        known = await self.store.alert_for_message(channel, ts)
        if known is not None:
            return known
        try:
            page = await self.client.conversations_history(
                channel=channel,
                latest=ts,
                oldest=ts,
                inclusive=True,
                limit=1,
                include_all_metadata=True,
            )
        except SlackApiError:
            return None
        bot = self.reactions.bot_user_id
        for message in page.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            uuid = payload.get("alert_uuid")
            if meta.get("event_type") == GROUP_EVENT_TYPE and payload.get("role") == "header":
                uuid = payload.get("group_id")  # a group header leads to its whole group
            if (
                message.get("ts") == ts
                and meta.get("event_type") in (EVENT_TYPE, GROUP_EVENT_TYPE)
                and isinstance(uuid, str)
                and uuid
                and (not bot or message.get("user") == bot)  # only SecBot's own posts
            ):
                await self.store.link_message(uuid, MessageRef(channel, ts), self.link_ttl)
                return uuid
        return None

    async def answer(self, ctx: CommandContext, reply: Reply) -> None:
        thread = ctx.thread_ts or ctx.ts
        if reply.ephemeral:
            await self.client.chat_postEphemeral(
                channel=ctx.channel, user=ctx.user, text=reply.text, thread_ts=thread
            )
        else:
            await self.client.chat_postMessage(
                channel=ctx.channel, thread_ts=thread, text=reply.text, unfurl_links=False
            )
        if reply.upload is not None:
            await self._upload(ctx, thread, reply.upload)

    async def _upload(self, ctx: CommandContext, thread: str, upload: ChartFile) -> None:
        """Share the reply's file in the thread (``files_upload_v2``: upload URL, the
        bytes, complete); a failed upload is told to the person, never dropped."""
        try:
            await self.client.files_upload_v2(
                channel=ctx.channel, thread_ts=thread, content=upload.content,
                filename=upload.filename, title=upload.title, alt_txt=upload.alt_txt)
        except Exception as exc:  # slack_sdk raises SlackApiError and SlackRequestError
            await self._tell(ctx.channel, ctx.user, "SecBot could not upload the chart ("
                             f"{redact(f'{type(exc).__name__}: {exc}')}).")


def status_command(changer: StatusChanger) -> StatusCommand:
    """``close`` / ``ack`` / ``reopen`` typed in an alert's thread: same rules as emoji."""

    async def change(ctx: CommandContext, status: Status, reason: str | None) -> Reply:
        if not ctx.alert_uuid:
            return Reply("Use this inside an alert's thread.", ephemeral=True)
        outcome = await changer.change(ctx.alert_uuid, status, reason, ctx.user)
        if outcome.kind is OutcomeKind.CHANGED:
            done = f"{status.capitalize()} by <@{ctx.user}>" + (f" · {reason}" if reason else "")
            if outcome.problems:  # the change stands; say what did not follow it
                done += " · but " + "; ".join(outcome.problems)
            return Reply(done)
        return Reply(outcome.text, ephemeral=True)

    return change


class ActionHandler(Protocol):
    """What a button's listener calls once bolt has acked the click (Slack's 3 s)."""

    async def on_action(self, body: Mapping[str, Any]) -> None: ...


class ViewHandler(Protocol):
    """What a modal's ``view_submission`` listener calls once acked."""

    async def on_view(self, body: Mapping[str, Any], view: Mapping[str, Any]) -> None: ...


def _register_action(app: AsyncApp, action_id: str | re.Pattern[str], handler: ActionHandler,
                     client: AsyncWebClient) -> None:
    @app.action(action_id)
    async def clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()  # first: the handler may take longer than Slack waits
        try:
            await handler.on_action(body)
        except Exception as exc:  # the person hears it, never bolt's log only
            log.exception("button %s failed", action_id)
            channel = str((body.get("channel") or {}).get("id") or "")
            user = str((body.get("user") or {}).get("id") or "")
            with contextlib.suppress(Exception):
                await client.chat_postEphemeral(
                    channel=channel, user=user,
                    text=f"SecBot could not act on that ({redact(f'{type(exc).__name__}: {exc}')})."
                    " Please try again.")


def _register_view(app: AsyncApp, callback_id: str, handler: ViewHandler) -> None:
    @app.view(callback_id)
    async def submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        try:
            await handler.on_view(body, view)
        except Exception:
            log.exception("view %s failed", callback_id)


def build_app(client: AsyncWebClient, handlers: SlackHandlers, *,
              actions: Sequence[tuple[str | re.Pattern[str], ActionHandler]] = (),
              views: Sequence[tuple[str, ViewHandler]] = ()) -> AsyncApp:
    """The bolt app. ``client`` already points at the right Slack (``base_url``). ``actions``
    and ``views``: button action ids (or patterns) and modal callback ids with their handlers
    (asking, approvals)."""
    app = AsyncApp(
        client=client,
        request_verification_enabled=False,
        ignoring_self_events_enabled=True,
    )

    @app.event("reaction_added")
    async def reaction_added(event: dict[str, Any], body: dict[str, Any]) -> None:
        await handlers.on_reaction_added(event, body)

    @app.event("reaction_removed")
    async def reaction_removed() -> None:
        """Removing an emoji changes nothing (DESIGN.md §10); acked so Slack won't retry."""

    @app.event("app_mention")
    async def app_mention(event: dict[str, Any], body: dict[str, Any]) -> None:
        await handlers.on_app_mention(event, body)

    @app.event("message")
    async def message() -> None:
        """Plain channel messages are not for SecBot; acked so Slack won't retry."""

    for action_id, action_handler in actions:
        _register_action(app, action_id, action_handler, client)
    for callback_id, view_handler in views:
        _register_view(app, callback_id, view_handler)
    return app
