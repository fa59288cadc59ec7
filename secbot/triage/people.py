"""Who may triage, and how people are named: Slack user ids, user groups, emails (cached).

Both caches are bounded cachetools ``TTLCache``s. Group membership fails closed: once its TTL
has passed, an answer Slack cannot give is never replaced by the stale one; the caller gets
:class:`MembershipUnknownError` and tells the person why nothing happened.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.errors import SecBotError

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
EMAIL_TTL = 3600.0  # an address changed in Slack is picked up within the hour
EMAIL_ENTRIES = 10_000


class MembershipUnknownError(SecBotError):
    """Slack could not list a user group's members, and no fresh answer is cached."""

    def __init__(self, groups: Iterable[str]) -> None:
        self.groups = tuple(groups)
        super().__init__(f"cannot check membership of user group(s) {', '.join(self.groups)}")


class Triagers:
    """``SECBOT_TRIAGERS``: user ids allowed directly, plus members of listed user groups.

    Group membership comes from ``usergroups.users.list`` and is cached for ``ttl`` seconds.
    Past the TTL, a failed lookup refuses group members (fail closed) until Slack answers.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        allowed: Iterable[str],
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        allowed = list(allowed)
        self.users = frozenset(a for a in allowed if a[:1] in ("U", "W"))
        self.groups = tuple(dict.fromkeys(a for a in allowed if a.startswith("S")))
        self.ttl = ttl
        # One entry per configured group: the bound is exact.
        self._members: TTLCache[str, frozenset[str]] = TTLCache(
            maxsize=max(1, len(self.groups)), ttl=ttl, timer=clock
        )

    async def allows(self, user: str) -> bool:
        """True if ``user`` may triage; False if not.

        Raises :class:`MembershipUnknownError` when the user is in none of the groups Slack
        could answer for, and at least one group could not be looked up: "maybe" is not "no",
        and the person should hear that Slack, not their role, is the problem.
        """
        if user in self.users:
            return True
        unknown: list[str] = []
        for group in self.groups:
            members = await self._group_members(group)
            if members is None:
                unknown.append(group)
            elif user in members:
                return True
        if unknown:
            raise MembershipUnknownError(unknown)
        return False

    async def _group_members(self, group: str) -> frozenset[str] | None:
        """The group's members, from the cache while fresh; None if Slack cannot say."""
        cached = self._members.get(group)
        if cached is not None:
            return cached
        try:
            response = await self.client.usergroups_users_list(usergroup=group)
        except SlackApiError:
            return None
        users: list[str] = response.get("users") or []
        members = frozenset(str(u) for u in users)
        self._members[group] = members
        return members


class Directory:
    """Slack user id → email (``users.info``), cached for an hour; falls back to the id."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = EMAIL_TTL,
        maxsize: int = EMAIL_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        # "" is cached too: a user without an email is not asked again for an hour.
        self._emails: TTLCache[str, str] = TTLCache(maxsize=maxsize, ttl=ttl, timer=clock)

    async def email(self, user: str) -> str | None:
        cached = self._emails.get(user)
        if cached is not None:
            return cached or None
        try:
            response = await self.client.users_info(user=user)
        except SlackApiError:
            return None  # not cached: the next action asks again
        profile = (response.get("user") or {}).get("profile") or {}
        email = str(profile.get("email") or "")
        self._emails[user] = email
        return email or None

    async def credit(self, user: str) -> str:
        """How a person is credited in the SIEM tag and audit: email if known, else the id."""
        return await self.email(user) or user
