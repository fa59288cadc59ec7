"""``oncall``: is the user on call right now, and for which schedules (PagerDuty REST API v2).

Two calls, both with ``Authorization: Token token=…`` and
``Accept: application/vnd.pagerduty+json;version=2``:

1. ``GET /users?query=<email>`` → ``{users: [{id, name, email, …}], more, …}``. ``query``
   matches substrings of names and emails, so only an exact (case-insensitive) email match
   counts: ``bob@example.com`` must not borrow the shifts of ``bob@example.com.evil``.
2. ``GET /oncalls?user_ids[]=<id>&since=<now>&until=<now+1s>`` → ``{oncalls: [{user,
   schedule: {id, summary}|null, escalation_policy: {id, summary}, escalation_level, start,
   end}]}``. An on-call period overlapping that one-second range is one happening now.

Result: ``{on_call, schedules: [schedule names], escalation_policies: [...], oncalls: [...],
user: {id, name, email}, provider: "pagerduty"}``. A user unknown to PagerDuty is "not found"
(unavailable): ``isUserOnCall`` then never lets an auto-close through on a guess.

The provider is an :class:`OnCallAdapter`: PagerDuty (default) or Opsgenie
(``SECBOT_ONCALL_PROVIDER=opsgenie``); another tool plugs in the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from secbot.enrich.common import EmailKeyedSource, NotFoundError, ProviderError
from secbot.enrich.http import RetryPolicy, get_json, join_url

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class OnCallAdapter(Protocol):
    """One on-call product: the user's current on-call status in the ``oncall`` shape."""

    provider: str

    async def status(self, http: httpx.AsyncClient, email: str) -> dict[str, Any]: ...


def _summary(node: Any) -> str | None:
    if not isinstance(node, Mapping):
        return None
    return str(node.get("summary") or node.get("name") or node.get("id") or "") or None


class PagerDutyAdapter:
    """PagerDuty REST API v2 (see the module docstring)."""

    provider = "pagerduty"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self._base = base_url
        self._headers = {
            "Authorization": f"Token token={token}",
            "Accept": "application/vnd.pagerduty+json;version=2",
        }
        self._policy = policy or RetryPolicy()
        self._clock = clock

    async def _get(self, http: httpx.AsyncClient, path: str, params: Any, what: str) -> Any:
        body = await get_json(
            http,
            join_url(self._base, path),
            provider="PagerDuty",
            what=what,
            policy=self._policy,
            headers=self._headers,
            params=params,
        )
        if not isinstance(body, Mapping):
            raise ProviderError("PagerDuty: unexpected response shape")
        return body

    async def find_user(self, http: httpx.AsyncClient, email: str) -> Mapping[str, Any]:
        body = await self._get(
            http, "users", {"query": email, "limit": 100}, f"PagerDuty user {email!r}"
        )
        for user in body.get("users") or []:
            if isinstance(user, Mapping) and str(user.get("email", "")).lower() == email:
                return user
        raise NotFoundError(f"PagerDuty user {email!r}")

    async def status(self, http: httpx.AsyncClient, email: str) -> dict[str, Any]:
        user = await self.find_user(http, email)
        now = self._clock()
        params = [
            ("user_ids[]", str(user.get("id"))),
            ("since", _iso(now)),
            ("until", _iso(now + timedelta(seconds=1))),
            ("limit", "100"),
        ]
        body = await self._get(http, "oncalls", params, f"PagerDuty on-calls for {email!r}")
        entries = [e for e in body.get("oncalls") or [] if isinstance(e, Mapping)]
        oncalls = [
            {
                "schedule": _summary(e.get("schedule")),
                "escalation_policy": _summary(e.get("escalation_policy")),
                "escalation_level": e.get("escalation_level"),
                "start": e.get("start"),
                "end": e.get("end"),
            }
            for e in entries
        ]
        return {
            "on_call": bool(oncalls),
            "schedules": sorted({o["schedule"] for o in oncalls if o["schedule"]}),
            "escalation_policies": sorted(
                {o["escalation_policy"] for o in oncalls if o["escalation_policy"]}
            ),
            "oncalls": oncalls,
            "user": {"id": user.get("id"), "name": user.get("name"), "email": email},
            "provider": self.provider,
        }


class OpsgenieAdapter:
    """Opsgenie (Who Is On Call API): ``Authorization: GenieKey <key>``.

    1. ``GET /v2/users/<email>`` — a user Opsgenie does not know is "not found", as with
       PagerDuty, so ``!isUserOnCall(x)`` can never pass on a guess.
    2. ``GET /v2/schedules/on-calls?flat=true`` → ``{data: [{_parent: {id, name, enabled},
       onCallRecipients: [usernames]}]}``: every schedule's current on-call users at once.
    """

    provider = "opsgenie"

    def __init__(self, base_url: str, key: str, *, policy: RetryPolicy | None = None) -> None:
        self._base = base_url
        self._headers = {"Authorization": f"GenieKey {key}"}
        self._policy = policy or RetryPolicy()

    async def _get(self, http: httpx.AsyncClient, path: str, params: Any, what: str) -> Any:
        body = await get_json(
            http,
            join_url(self._base, path),
            provider="Opsgenie",
            what=what,
            policy=self._policy,
            headers=self._headers,
            params=params,
        )
        if not isinstance(body, Mapping):
            raise ProviderError("Opsgenie: unexpected response shape")
        return body

    async def status(self, http: httpx.AsyncClient, email: str) -> dict[str, Any]:
        user = (await self._get(http, f"v2/users/{email}", None, f"Opsgenie user {email!r}")).get(
            "data"
        ) or {}
        body = await self._get(
            http, "v2/schedules/on-calls", {"flat": "true"}, f"Opsgenie on-calls for {email!r}"
        )
        schedules = sorted(
            _summary(entry.get("_parent")) or "?"
            for entry in body.get("data") or []
            if isinstance(entry, Mapping)
            and email in {str(r).lower() for r in entry.get("onCallRecipients") or []}
        )
        return {
            "on_call": bool(schedules),
            "schedules": schedules,
            "user": {"id": user.get("id"), "name": user.get("fullName"), "email": email},
            "provider": self.provider,
        }


class OnCallEnricher(EmailKeyedSource[OnCallAdapter]):
    """On-call status by email; powers ``isUserOnCall(email)``."""

    name = "oncall"

    async def fetch_email(self, email: str) -> Mapping[str, Any]:
        return await self._adapter.status(self._http, email)


__all__ = ["OnCallAdapter", "OnCallEnricher", "OpsgenieAdapter", "PagerDutyAdapter"]
