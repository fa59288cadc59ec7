"""Workspace state for the Slack emulator: users, channels, user groups, messages, reactions.

Pure in-memory data with Slack's semantics (error codes, ts ordering, thread bookkeeping);
no HTTP here. :class:`SlackError` carries a Slack ``error`` code that the Web API layer turns
into ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from secbot_emulators.slack_blocks import notifications

JsonDict = dict[str, Any]


class SlackError(Exception):
    """A Slack API error code (``channel_not_found`` …) plus optional extra response keys."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class User:
    """A workspace member (human or bot user)."""

    id: str
    name: str
    real_name: str
    email: str | None = None
    is_bot: bool = False
    bot_id: str | None = None
    is_admin: bool = False
    deleted: bool = False
    tz: str = "Europe/London"

    def to_api(self, team_id: str) -> JsonDict:
        """The ``user`` object of ``users.info`` / ``users.lookupByEmail``."""
        profile: JsonDict = {
            "display_name": self.name, "display_name_normalized": self.name,
            "real_name": self.real_name, "real_name_normalized": self.real_name,
            "team": team_id, "status_text": "", "status_emoji": "",
            "avatar_hash": hashlib.sha1(self.id.encode()).hexdigest()[:12],
            "image_48": f"https://secure.gravatar.com/avatar/{self.id}.jpg?s=48",
        }
        if self.email is not None:
            profile["email"] = self.email
        if self.bot_id is not None:
            profile["bot_id"] = self.bot_id
        return {
            "id": self.id, "team_id": team_id, "name": self.name, "deleted": self.deleted,
            "color": "9f69e7", "real_name": self.real_name, "tz": self.tz,
            "tz_label": "Greenwich Mean Time", "tz_offset": 0, "profile": profile,
            "is_admin": self.is_admin, "is_owner": False, "is_primary_owner": False,
            "is_restricted": False, "is_ultra_restricted": False, "is_bot": self.is_bot,
            "is_app_user": False, "updated": 1700000000, "has_2fa": False,
        }


@dataclass
class UserGroup:
    """A user group (``S…``), referenced by ``SECBOT_TRIAGERS``."""

    id: str
    handle: str
    name: str
    users: list[str] = field(default_factory=list)
    disabled: bool = False


@dataclass
class Message:
    """One stored message; ``replies`` holds the ts of thread replies (parents only)."""

    ts: str
    channel: str
    user: str
    text: str
    blocks: list[JsonDict] | None = None
    attachments: list[JsonDict] | None = None
    thread_ts: str | None = None
    parent_user_id: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    subtype: str | None = None
    metadata: JsonDict | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)
    reply_users: list[str] = field(default_factory=list)
    edited: JsonDict | None = None
    team: str = ""
    files: list[JsonDict] | None = None  # shared files (files.completeUploadExternal)
    upload: bool = False

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def notifications(self) -> list[str]:
        """Control sequences this message triggers (``!channel``, ``@U…``): escaped alert
        text must yield none (DESIGN.md §8)."""
        return notifications(self.text, self.blocks, self.attachments)

    def reactions_api(self) -> list[JsonDict]:
        return [{"name": name, "users": list(users), "count": len(users)}
                for name, users in self.reactions.items()]

    def to_api(self, *, include_metadata: bool = True) -> JsonDict:
        """The message object as ``conversations.history`` / ``replies`` return it."""
        out: JsonDict = {"type": "message", "user": self.user, "text": self.text,
                         "ts": self.ts, "team": self.team}
        if self.subtype is not None:
            out["subtype"] = self.subtype
        for key in ("bot_id", "app_id", "blocks", "attachments", "edited", "files"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.upload:
            out["upload"] = True
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.is_reply:
            out["parent_user_id"] = self.parent_user_id
        elif self.replies:
            out.update(reply_count=len(self.replies), reply_users_count=len(self.reply_users),
                       latest_reply=self.replies[-1], reply_users=list(self.reply_users),
                       is_locked=False, subscribed=False)
        if self.reactions:
            out["reactions"] = self.reactions_api()
        if include_metadata and self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out


@dataclass
class Channel:
    """A public channel; ``members is None`` means every user (and the bot) is a member."""

    id: str
    name: str
    topic: str = ""
    is_private: bool = False
    members: set[str] | None = None
    messages: dict[str, Message] = field(default_factory=dict)

    def has_member(self, user_id: str) -> bool:
        return self.members is None or user_id in self.members


@dataclass(frozen=True)
class BotIdentity:
    """Who the app is: its bot user, bot id and app id."""

    user_id: str = "U0SECBOT"
    bot_id: str = "B0SECBOT"
    app_id: str = "A0SECBOT"
    name: str = "secbot"


class TsClock:
    """Unique, strictly increasing Slack timestamps (``"1700000000.000100"``).

    Based on wall-clock microseconds so ``oldest``/``latest`` filters behave like Slack's,
    bumped by one microsecond whenever two stamps would collide.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> str:
        micros = max(self._last + 1, int(self._clock() * 1_000_000))
        self._last = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def ts_key(ts: str) -> tuple[int, int]:
    """Sort key for ts strings (numeric, not lexicographic); raises ValueError on garbage."""
    seconds, _, fraction = ts.partition(".")
    return int(seconds), int((fraction or "0").ljust(6, "0")[:6])


class Workspace:
    """All workspace data plus the operations the Web API methods need."""

    def __init__(self, *, team_id: str = "T0SECBOT", team_name: str = "SecBot Demo",
                 domain: str = "secbot-demo", bot: BotIdentity | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.team_id = team_id
        self.team_name = team_name
        self.domain = domain
        self.bot = bot or BotIdentity()
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.usergroups: dict[str, UserGroup] = {}
        self.ephemeral: list[JsonDict] = []  # chat.postEphemeral calls (never in history)
        self.clock = TsClock(clock)
        self.version = 0  # bumped on every change, lets pollers (demo page) skip re-rendering
        self.add_user(self.bot.user_id, self.bot.name, "SecBot", is_bot=True,
                      bot_id=self.bot.bot_id)

    @property
    def url(self) -> str:
        return f"https://{self.domain}.slack.com/"

    def touch(self) -> None:
        self.version += 1

    # --- directory ---------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, real_name: str | None = None, *,
                 email: str | None = None, is_bot: bool = False, bot_id: str | None = None,
                 is_admin: bool = False) -> User:
        """Add (or replace) a user."""
        user = User(user_id, name, real_name or name.title(), email, is_bot, bot_id, is_admin)
        self.users[user_id] = user
        self.touch()
        return user

    def add_channel(self, channel_id: str, name: str, *, topic: str = "",
                    members: Iterable[str] | None = None) -> Channel:
        """Add a channel; ``members=None`` makes everyone (bot included) a member."""
        channel = Channel(channel_id, name, topic,
                          members=None if members is None else set(members))
        self.channels[channel_id] = channel
        self.touch()
        return channel

    def add_usergroup(self, group_id: str, handle: str, users: Iterable[str], *,
                      name: str | None = None) -> UserGroup:
        """Add (or replace) a user group."""
        group = UserGroup(group_id, handle, name or handle, list(users))
        self.usergroups[group_id] = group
        self.touch()
        return group

    def user(self, user_id: str | None) -> User:
        if user_id is None or user_id not in self.users:
            raise SlackError("user_not_found")
        return self.users[user_id]

    def user_by_email(self, email: str | None) -> User:
        wanted = (email or "").strip().lower()
        for user in self.users.values():
            if user.email is not None and user.email.lower() == wanted and not user.deleted:
                return user
        raise SlackError("users_not_found")

    def channel(self, channel_id: str | None) -> Channel:
        if channel_id is None or channel_id not in self.channels:
            raise SlackError("channel_not_found")
        return self.channels[channel_id]

    def channel_by_id_or_name(self, ref: str | None) -> Channel:
        """chat.postMessage also accepts ``#name`` / ``name`` (other methods need the id)."""
        if ref is not None and ref not in self.channels:
            name = ref.removeprefix("#")
            for channel in self.channels.values():
                if channel.name == name:
                    return channel
        return self.channel(ref)

    def message(self, channel_id: str | None, ts: str | None) -> Message:
        channel = self.channel(channel_id)
        if ts is None or ts not in channel.messages:
            raise SlackError("message_not_found")
        return channel.messages[ts]

    # --- messages ------------------------------------------------------------------------------
    def post(self, channel_id: str, user: str, text: str, *, thread_ts: str | None = None,
             broadcast: bool = False, **fields: Any) -> Message:
        """Store a new message (a thread reply when ``thread_ts`` is given)."""
        channel = self.channel(channel_id)
        parent = None
        if thread_ts:
            if thread_ts not in channel.messages:
                raise SlackError("thread_not_found")
            parent = channel.messages[thread_ts]
            if parent.is_reply and parent.thread_ts is not None:  # reply to a reply: same thread
                parent = channel.messages[parent.thread_ts]
        message = Message(self.clock.next(), channel.id, user, text, team=self.team_id, **fields)
        if parent is not None:
            message.thread_ts = parent.ts
            message.parent_user_id = parent.user
            parent.thread_ts = parent.ts
            parent.replies.append(message.ts)
            if user not in parent.reply_users:
                parent.reply_users.append(user)
            if broadcast:
                message.subtype = "thread_broadcast"
        channel.messages[message.ts] = message
        self.touch()
        return message

    def add_reaction(self, channel_id: str | None, ts: str | None, name: str, user: str
                     ) -> Message:
        """Record ``user``'s reaction; ``already_reacted`` if it is there."""
        message = self.message(channel_id, ts)
        users = message.reactions.setdefault(name, [])
        if user in users:
            raise SlackError("already_reacted")
        users.append(user)
        self.touch()
        return message

    def remove_reaction(self, channel_id: str | None, ts: str | None, name: str, user: str
                        ) -> Message:
        """Remove ``user``'s reaction; ``no_reaction`` if there is none."""
        message = self.message(channel_id, ts)
        users = message.reactions.get(name, [])
        if user not in users:
            raise SlackError("no_reaction")
        users.remove(user)
        if not users:
            del message.reactions[name]
        self.touch()
        return message

    def timeline(self, channel_id: str) -> list[Message]:
        """What the channel shows: top-level messages and broadcast replies, oldest first."""
        channel = self.channel(channel_id)
        return sorted((m for m in channel.messages.values()
                       if not m.is_reply or m.subtype == "thread_broadcast"),
                      key=lambda m: ts_key(m.ts))

    def thread(self, channel_id: str, ts: str) -> list[Message]:
        """The parent then its replies, oldest first (``thread_not_found`` if ts is unknown)."""
        channel = self.channel(channel_id)
        if ts not in channel.messages:
            raise SlackError("thread_not_found")
        parent = channel.messages[ts]
        if parent.is_reply and parent.thread_ts is not None:
            parent = channel.messages[parent.thread_ts]
        return [parent, *(channel.messages[r] for r in parent.replies)]

    def permalink(self, channel_id: str, ts: str) -> str:
        message = self.message(channel_id, ts)
        link = f"{self.url}archives/{channel_id}/p{ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel_id}"
        return link


def seed_workspace(workspace: Workspace) -> None:
    """The fixed demo/test directory (DESIGN.md §7): two people, seven channels, a group."""
    workspace.add_user("U0TRIAGER", "alice", "Alice Triager", email="alice@example.com")
    workspace.add_user("U0VIEWER", "bob", "Bob Viewer", email="bob@example.com")
    for channel_id, name in (("C0SECALERTS", "sec-alerts"), ("C0PRODSEC", "prod-sec"),
                             ("C0SECCRIT", "sec-critical"), ("C0IDENTITY", "identity-alerts"),
                             ("C0ENDPOINT", "endpoint-alerts"),
                             ("C0THREATINTEL", "threat-intel"), ("C0DEFAULT", "secbot")):
        workspace.add_channel(channel_id, name)
    workspace.add_usergroup("S0TRIAGE", "triage", ["U0TRIAGER"], name="Security triage")
