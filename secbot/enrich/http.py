"""httpx helpers for enrichers: retries on 429/5xx, and HTTP status → outcome.

Retries use capped exponential backoff with full jitter, and honour ``Retry-After`` (seconds or
an HTTP date) when the server sends it. A ``Retry-After`` longer than the policy allows is not
waited for: the enrichment is needed now, and the cache/breaker stop us from hammering anyway.
Timeouts are not retried here: the per-call timeout (breaker wrapper) is the budget.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from secbot.enrich.common import NotFoundError, ProviderError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra attempts; delays double from ``base_delay`` up to ``max_delay``."""

    retries: int = 2
    base_delay: float = 0.25
    max_delay: float = 4.0
    max_retry_after: float = 10.0


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(
    policy: RetryPolicy,
    attempt: int,
    retry_after: float | None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before retry number ``attempt + 1``; None means "do not retry"."""
    if retry_after is not None:
        # The server said when; waiting longer than our budget is pointless.
        return retry_after if retry_after <= policy.max_retry_after else None
    ceiling = min(policy.max_delay, policy.base_delay * (2**attempt))
    # Full jitter: spreads retries of many replicas hitting the same rate limit.
    return float(ceiling * rand())


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    **kwargs: Any,
) -> httpx.Response:
    """One request with retries on 429/5xx and connection errors; returns the last response."""
    for attempt in range(policy.retries + 1):
        last = attempt == policy.retries
        try:
            response = await client.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError):
            if last:
                raise
            delay = backoff_delay(policy, attempt, None)
        else:
            if response.status_code not in RETRY_STATUSES or last:
                return response
            hint = retry_after_seconds(response.headers.get("Retry-After"))
            delay = backoff_delay(policy, attempt, hint)
            if delay is None:
                return response
            await response.aclose()
        await sleep(delay or 0.0)
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns


def raise_for_status(response: httpx.Response, provider: str, what: str) -> None:
    """Map an HTTP error status to :class:`NotFoundError` / :class:`ProviderError`."""
    code = response.status_code
    if code < 400:
        return
    if code == 404:
        raise NotFoundError(what)
    if code == 401:
        raise ProviderError(f"{provider}: unauthorized (HTTP 401), check the credentials")
    if code == 403:
        raise ProviderError(f"{provider}: forbidden (HTTP 403)")
    if code == 429:
        raise ProviderError(f"{provider}: rate limited (HTTP 429), retries exhausted")
    if code >= 500:
        raise ProviderError(f"{provider}: server error (HTTP {code})")
    raise ProviderError(f"{provider}: HTTP {code}")


def json_body(response: httpx.Response, provider: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(f"{provider}: response is not JSON") from exc


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    provider: str,
    what: str,
    policy: RetryPolicy,
    headers: Mapping[str, str] | None = None,
    params: Any = None,
) -> Any:
    """GET ``url`` with retries; the JSON body, or NotFoundError/ProviderError."""
    response = await send(
        client, "GET", url, policy=policy, headers=headers, params=params, follow_redirects=True
    )
    raise_for_status(response, provider, what)
    return json_body(response, provider)


def join_url(base: str, path: str) -> str:
    """``base`` (with or without trailing slash) + ``path`` (with or without leading slash)."""
    return base.rstrip("/") + "/" + path.lstrip("/")


__all__ = [
    "RETRY_STATUSES",
    "RetryPolicy",
    "backoff_delay",
    "get_json",
    "join_url",
    "json_body",
    "raise_for_status",
    "retry_after_seconds",
    "send",
]
