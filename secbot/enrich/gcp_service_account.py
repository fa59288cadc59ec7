"""``gcp_service_account``: a service account's display name and description (IAM v1 REST).

Cloud assets have random names; the description says what a service account is for, which
is what a triager needs when someone creates a key for it. Calls
``GET {SECBOT_GCP_IAM_URL}/v1/projects/-/serviceAccounts/{email}`` (``-`` lets IAM find the
project from the email) with the same credentials as ``gcp_project``: ADC in production, none
for an ``http://`` stand-in.

Keys: a service-account email (``…@….iam.gserviceaccount.com``, also inside a resource name
such as ``projects/p/serviceAccounts/<email>``) or a numeric unique id. The first configured
field holding one of those is used, so ``user.email`` of a human is skipped.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from secbot.domain.alert import Alert
from secbot.enrich.common import InvalidKeyError, ProviderError, SourceBase, scalar_values
from secbot.enrich.http import RetryPolicy, get_json, join_url

_SA_EMAIL = re.compile(r"[a-z0-9][a-z0-9._-]*@[a-z0-9.-]+\.gserviceaccount\.com", re.IGNORECASE)
_UNIQUE_ID = re.compile(r"^\d{10,30}$")
_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

AuthHeaders = Callable[[], Awaitable[dict[str, str]]]


async def no_auth() -> dict[str, str]:
    return {}


def adc_auth() -> AuthHeaders:
    """Bearer headers from Application Default Credentials, refreshed off the event loop."""
    state: dict[str, Any] = {}
    lock = asyncio.Lock()

    def refresh() -> str:
        import google.auth
        from google.auth.transport.requests import Request

        creds = state.get("creds")
        if creds is None:
            creds, _ = google.auth.default(scopes=[_SCOPE])
            state["creds"] = creds
        if not creds.valid:
            creds.refresh(Request())
        return str(creds.token)

    async def headers() -> dict[str, str]:
        async with lock:
            try:
                token = await asyncio.to_thread(refresh)
            except Exception as exc:  # no ADC, metadata server down…
                raise ProviderError(f"GCP credentials unavailable: {exc}") from exc
        return {"Authorization": f"Bearer {token}"}

    return headers


def service_account_key(value: str) -> str | None:
    """The SA email (or unique id) inside ``value``, lower-cased; None if there is none."""
    match = _SA_EMAIL.search(value)
    if match:
        return match.group(0).lower()
    text = value.strip().rsplit("/", 1)[-1]
    return text if _UNIQUE_ID.match(text) else None


class GcpServiceAccountEnricher(SourceBase):
    """Service account details by email or unique id."""

    name = "gcp_service_account"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = "https://iam.googleapis.com",
        auth: AuthHeaders = no_auth,
        fields: Iterable[str] = ("gcp.audit.resource_name", "user.email"),
        policy: RetryPolicy | None = None,
    ) -> None:
        self.fields = tuple(fields)
        self._http = http
        self._base = base_url
        self._auth = auth
        self._policy = policy or RetryPolicy()

    def key_for(self, alert: Alert) -> str | None:
        for field in self.fields:
            for value in scalar_values(alert.get_field(field)):
                key = service_account_key(value)
                if key:
                    return key
        return None

    def normalize_key(self, key: str) -> str:
        return service_account_key(key) or key.strip()

    async def fetch(self, key: str) -> Mapping[str, Any]:
        if not service_account_key(key):
            raise InvalidKeyError(f"{key!r} (not a service account email or id)")
        url = join_url(self._base, f"v1/projects/-/serviceAccounts/{quote(key, safe='@')}")
        body = await get_json(
            self._http,
            url,
            provider="GCP IAM",
            what=f"service account {key!r}",
            policy=self._policy,
            headers=await self._auth(),
        )
        if not isinstance(body, Mapping) or "email" not in body:
            raise ProviderError("GCP IAM: unexpected response shape")
        return {
            "email": body.get("email"),
            "display_name": body.get("displayName") or None,
            "description": body.get("description") or None,
            "project_id": body.get("projectId"),
            "disabled": bool(body.get("disabled", False)),
            "unique_id": body.get("uniqueId"),
            "name": body.get("name"),
        }


__all__ = ["GcpServiceAccountEnricher", "adc_auth", "no_auth", "service_account_key"]
