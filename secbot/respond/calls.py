"""The response APIs (DESIGN.md §13), over httpx with the project's retry policy.

* isolate / release a host — Kibana (Elastic Defend) ``POST {kibana}[/s/<space>]/api/endpoint/
  action/isolate`` (``/unisolate``) with ``{"endpoint_ids": [<agent.id>], "comment": …}``;
  Kibana answers ``{"action": "<action id>", "data": {…}}``.
* suspend / unsuspend a user — Okta ``GET /api/v1/users/{login}`` (the id), then ``POST
  /api/v1/users/{id}/lifecycle/suspend`` (``/unsuspend``), ``Authorization: SSWS <token>``.
* disable a service-account key — GCP IAM ``POST {iam}/v1/{name}:disable`` (undo:
  ``:enable``); an ``http://`` IAM URL is a local stand-in and gets no credentials.

Only 429/5xx and dropped connections are retried (:func:`secbot.enrich.http.send`); any other
error is final and comes back as :class:`CallFailed` with the service's own message.

Running one again (a run taken over after its replica died, or an Undo clicked again) is safe:
Kibana isolates an isolated host again ("isolated" persists until a release; the repeat is one
more action id in the host's history, no harm); IAM documents no error for disabling a disabled
key (the stand-in answers as the first time; were IAM to refuse, the re-run fails visibly and
Approve comes back). Okta refuses to suspend a user who is not ``ACTIVE`` (400 ``E0000001``),
so with ``already_ok`` the user's status, read first, decides: already in the wanted state is
done, without a second lifecycle call. A whole run is bounded
(:attr:`ResponseApis.bound`), so a running claim's lease (:attr:`ResponseApis.lease`) never
ends while a live replica is still calling.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

from secbot.domain.errors import SecBotError
from secbot.domain.secrets import redact
from secbot.enrich.http import send
from secbot.resilience.retry import RetryPolicy

#: action → (inverse, words for people)
ACTIONS = {
    "isolate_host": ("release_host", "isolate host"),
    "release_host": ("isolate_host", "release host"),
    "suspend_user": ("unsuspend_user", "suspend user"),
    "unsuspend_user": ("suspend_user", "unsuspend user"),
    "disable_sa_key": ("enable_sa_key", "disable service-account key"),
    "enable_sa_key": ("disable_sa_key", "enable service-account key"),
}
UNDO = {"isolate_host", "suspend_user", "disable_sa_key"}  # actions an Undo button follows
POLICY = RetryPolicy(attempts=3, base=0.5, cap=4.0, budget=20.0)


class CallFailed(SecBotError):
    """The response API did not do it (or is not configured)."""


@dataclass(frozen=True)
class Target:
    """What an action acts on: the host's agent id, the person's login, the key's name."""

    label: str  # as people read it: the host name, the email, the key name
    ident: str  # what the API takes: agent.id, Okta login, key resource name


@dataclass(frozen=True)
class Planned:
    """One HTTP request a response action makes (what a dry run shows)."""

    method: str
    url: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Done:
    """What the API said: an id to quote (Kibana's action id, Okta's user id)."""

    ref: str
    already: str = ""  # the state it was in already (Okta's status), when nothing was called


@dataclass(frozen=True)
class ResponseApis:
    """Base URLs and credentials (from settings, by the composition root)."""

    kibana_url: str | None = None
    kibana_space: str = "default"
    kibana_api_key: str | None = None
    okta_url: str | None = None
    okta_token: str | None = None
    gcp_iam_url: str = "https://iam.googleapis.com"
    timeout: float = 15.0

    @property
    def bound(self) -> float:
        """The longest one run may take (Okta's two requests, each tried ``attempts`` times,
        plus the retries' sleeps); :meth:`run` gives up after it."""
        return 2 * self.timeout * POLICY.attempts + POLICY.budget

    @property
    def lease(self) -> float:
        """How long a running claim holds: the bound plus a margin for Slack and the audit."""
        return self.bound + 60.0

    def plan(self, action: str, target: Target, comment: str, *, dry: bool = False) -> Planned:
        """The request ``action`` makes (CallFailed when its service is not configured; a
        dry run names the missing setting in the URL instead)."""
        if action in ("isolate_host", "release_host"):
            if not self.kibana_url and not dry:
                raise CallFailed("SECBOT_KIBANA_URL is not set: SecBot cannot isolate hosts")
            base = (self.kibana_url or "<SECBOT_KIBANA_URL>").rstrip("/")
            space = "" if self.kibana_space == "default" else f"/s/{self.kibana_space}"
            verb = "isolate" if action == "isolate_host" else "unisolate"
            return Planned("POST", f"{base}{space}/api/endpoint/action/{verb}",
                           {"endpoint_ids": [target.ident], "comment": comment})
        if action in ("suspend_user", "unsuspend_user"):
            if (not self.okta_url or not self.okta_token) and not dry:
                raise CallFailed("SECBOT_OKTA_URL / SECBOT_OKTA_TOKEN are not set")
            verb = "suspend" if action == "suspend_user" else "unsuspend"
            login = urllib.parse.quote(target.ident, safe="@")
            base = (self.okta_url or "<SECBOT_OKTA_URL>").rstrip("/")
            return Planned("POST", f"{base}/api/v1/users/{{id of {login}}}/lifecycle/{verb}")
        verb = "disable" if action == "disable_sa_key" else "enable"
        return Planned("POST", f"{self.gcp_iam_url.rstrip('/')}/v1/{target.ident}:{verb}", {})

    async def run(self, action: str, target: Target, comment: str, *,
                  already_ok: bool = False) -> Done:
        """Call the API once (retries aside), within :attr:`bound`. ``already_ok``: a target
        already in the wanted state counts as done (Okta; the others are idempotent)."""
        try:
            return await asyncio.wait_for(self._run(action, target, comment, already_ok),
                                          self.bound)
        except TimeoutError as exc:
            raise CallFailed(f"no answer within {self.bound:.0f} s: it may or may not have "
                             "happened") from exc

    async def _run(self, action: str, target: Target, comment: str, already_ok: bool) -> Done:
        planned = self.plan(action, target, comment)
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                if action in ("suspend_user", "unsuspend_user"):
                    return await self._okta(client, planned, target, already_ok)
                headers = await self._headers(action)
                response = await send(client, planned.method, planned.url, policy=POLICY,
                                      json=planned.body, headers=headers)
            except httpx.HTTPError as exc:
                raise CallFailed(redact(f"{type(exc).__name__}: {exc}")) from exc
        body = _checked(response)
        return Done(str(body.get("action") or body.get("name") or ""))

    async def _okta(self, client: httpx.AsyncClient, planned: Planned, target: Target,
                    already_ok: bool) -> Done:
        assert self.okta_url and self.okta_token
        headers = {"Authorization": f"SSWS {self.okta_token}", "Accept": "application/json"}
        login = urllib.parse.quote(target.ident, safe="@")
        found = _checked(await send(client, "GET",
                                    f"{self.okta_url.rstrip('/')}/api/v1/users/{login}",
                                    policy=POLICY, headers=headers))
        user_id = str(found.get("id") or "")
        if not user_id:
            raise CallFailed(f"Okta returned no id for {target.ident}")
        status = str(found.get("status") or "")
        if already_ok and status == ("SUSPENDED" if planned.url.endswith("/suspend")
                                     else "ACTIVE"):
            return Done(user_id, already=status)
        url = planned.url.replace(f"{{id of {login}}}", urllib.parse.quote(user_id))
        _checked(await send(client, "POST", url, policy=POLICY, headers=headers))
        return Done(user_id)

    async def _headers(self, action: str) -> dict[str, str]:
        if action in ("isolate_host", "release_host"):
            headers = {"kbn-xsrf": "secbot", "Elastic-Api-Version": "2023-10-31"}
            if self.kibana_api_key:
                headers["Authorization"] = f"ApiKey {self.kibana_api_key}"
            return headers
        if self.gcp_iam_url.startswith("http://"):
            return {}  # a local stand-in: anonymous, like SECBOT_GCP_ENDPOINT
        return {"Authorization": f"Bearer {await asyncio.to_thread(_gcp_token)}"}


def _gcp_token() -> str:
    """An access token from Application Default Credentials (blocking: run in a thread)."""
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(
        scopes=["https://www.googleapis.com/auth/cloud-platform"])
    credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
    return str(credentials.token)


def _checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a success; CallFailed naming the status and the service's message."""
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code >= 400:
        error = body.get("error")
        message = (body.get("message") or body.get("errorSummary")
                   or (error.get("message") if isinstance(error, dict) else error)
                   or response.reason_phrase)
        raise CallFailed(redact(f"HTTP {response.status_code}: {message}"))
    return body
