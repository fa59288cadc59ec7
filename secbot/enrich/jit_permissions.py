"""``jit_permissions``: what the actor was allowed to do, since when, until when, and why.

The product behind it is an adapter (:class:`JitAdapter`), so another just-in-time access
product can be plugged in by writing one class with one method. Two ship here:

* :class:`EntitleAdapter` — Entitle's public API:
  ``GET /public/v1/permissions?search=<email>&page=N&perPage=100`` (``Authorization: Bearer``)
  answering ``{pagination: {page, perPage, totalResults, totalPages}, result: [{permissionId,
  createdAt, account: {email, …}, role: {name, resource: {name, integration: {name,
  application: {name}}}}, types: ["jit"|"policy"|"external"], path}]}``. That listing has no
  expiry or justification (those live on access requests, which the public API only serves by
  id), so ``expires_at`` / ``justification`` are null for Entitle grants.
* :class:`GenericJitAdapter` — the shape SecBot wants from any product (or a tiny shim in
  front of one): ``GET {url}/grants?user=<email>`` → ``{grants: [{permission, resource,
  granted_at, expires_at, justification}]}``.

Result: ``{email, provider, grants: [{permission, resource, granted_at, expires_at,
justification, …}], jit_active: bool}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from secbot.enrich.common import EmailKeyedSource, ProviderError
from secbot.enrich.http import RetryPolicy, get_json, join_url


class JitAdapter(Protocol):
    """One JIT product. ``grants`` returns the user's grants in the common shape."""

    provider: str

    async def grants(self, http: httpx.AsyncClient, email: str) -> list[dict[str, Any]]: ...


def _name(node: Any) -> str | None:
    return str(node["name"]) if isinstance(node, Mapping) and node.get("name") else None


def entitle_grant(item: Mapping[str, Any]) -> dict[str, Any]:
    """One Entitle ``PermissionSchema`` → a grant."""
    role = item.get("role")
    role = role if isinstance(role, Mapping) else {}
    resource = role.get("resource")
    resource = resource if isinstance(resource, Mapping) else {}
    integration = resource.get("integration")
    application = integration.get("application") if isinstance(integration, Mapping) else None
    return {
        "permission": _name(role),
        "resource": _name(resource),
        "integration": _name(integration),
        "application": _name(application),
        "granted_at": item.get("createdAt"),
        "expires_at": None,
        "justification": None,
        "types": list(item.get("types") or []),
        "path": item.get("path"),
        "id": item.get("permissionId"),
    }


class EntitleAdapter:
    """Entitle public API (see the module docstring for the shape)."""

    provider = "entitle"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        policy: RetryPolicy | None = None,
        max_pages: int = 5,
        per_page: int = 100,
    ) -> None:
        self._base = base_url
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._policy = policy or RetryPolicy()
        self._max_pages = max_pages
        self._per_page = per_page

    async def grants(self, http: httpx.AsyncClient, email: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while page <= self._max_pages:  # bounded: an alert cannot page through a whole org
            body = await get_json(
                http,
                join_url(self._base, "public/v1/permissions"),
                provider="Entitle",
                what=f"Entitle permissions for {email!r}",
                policy=self._policy,
                headers=self._headers,
                params={"search": email, "page": page, "perPage": self._per_page},
            )
            if not isinstance(body, Mapping) or not isinstance(body.get("result"), list):
                raise ProviderError("Entitle: unexpected response shape")
            for item in body["result"]:
                account = item.get("account") if isinstance(item, Mapping) else None
                # search is a substring match: keep only this exact account.
                if isinstance(account, Mapping) and str(account.get("email", "")).lower() == email:
                    out.append(entitle_grant(item))
            pagination = body.get("pagination") or {}
            if page >= int(pagination.get("totalPages") or 1):
                break
            page += 1
        return out


class GenericJitAdapter:
    """``GET {url}/grants?user=<email>`` → ``{grants: [...]}`` in SecBot's own shape."""

    provider = "generic"

    def __init__(self, base_url: str, token: str | None, *, policy: RetryPolicy | None = None):
        self._base = base_url
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._policy = policy or RetryPolicy()

    async def grants(self, http: httpx.AsyncClient, email: str) -> list[dict[str, Any]]:
        body = await get_json(
            http,
            join_url(self._base, "grants"),
            provider="JIT",
            what=f"JIT user {email!r}",
            policy=self._policy,
            headers=self._headers,
            params={"user": email},
        )
        if not isinstance(body, Mapping) or not isinstance(body.get("grants"), list):
            raise ProviderError("JIT: unexpected response shape")
        keys = ("permission", "resource", "granted_at", "expires_at", "justification")
        return [
            {**{k: g.get(k) for k in keys}, **{k: v for k, v in g.items() if k not in keys}}
            for g in body["grants"]
            if isinstance(g, Mapping)
        ]


class JitPermissionsEnricher(EmailKeyedSource[JitAdapter]):
    """The actor's JIT/standing grants from a :class:`JitAdapter`."""

    name = "jit_permissions"

    async def fetch_email(self, email: str) -> Mapping[str, Any]:
        grants = await self._adapter.grants(self._http, email)
        return {
            "email": email,
            "provider": self._adapter.provider,
            "grants": grants,
            "jit_active": any("jit" in (g.get("types") or ()) for g in grants)
            or any(g.get("expires_at") for g in grants),
        }


__all__ = ["EntitleAdapter", "GenericJitAdapter", "JitAdapter", "JitPermissionsEnricher"]
