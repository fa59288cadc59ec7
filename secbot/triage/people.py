"""Who may triage, and how people are named: Slack user ids, user groups, emails (cached)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


class Triagers:
    """``SECBOT_TRIAGERS``: user ids allowed directly, plus members of listed user groups.

    Group membership comes from ``usergroups.users.list`` and is cached for ``ttl`` seconds.
    If Slack cannot be asked, group members are refused (fail closed) until it answers.
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
        self.groups = tuple(a for a in allowed if a.startswith("S"))
        self.ttl = ttl
        self._clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    async def allows(self, user: str) -> bool:
        if user in self.users:
            return True
        for group in self.groups:
            if user in await self._group_members(group):
                return True
        return False

    async def _group_members(self, group: str) -> frozenset[str]:
        cached = self._members.get(group)
        if cached and self._clock() - cached[0] < self.ttl:
            return cached[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group)
        except SlackApiError:
            return cached[1] if cached else frozenset()
        users: list[str] = response.get("users") or []
        members = frozenset(str(u) for u in users)
        self._members[group] = (self._clock(), members)
        return members


class Directory:
    """Slack user id → email (``users.info``), cached; falls back to the id."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._emails: dict[str, str] = {}

    async def email(self, user: str) -> str | None:
        if user in self._emails:
            return self._emails[user] or None
        try:
            response = await self.client.users_info(user=user)
        except SlackApiError:
            return None
        profile = (response.get("user") or {}).get("profile") or {}
        email = str(profile.get("email") or "")
        self._emails[user] = email
        return email or None

    async def credit(self, user: str) -> str:
        """How a person is credited in the SIEM tag and audit: email if known, else the id."""
        return await self.email(user) or user
