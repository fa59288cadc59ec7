"""httpx helpers for enrichers: retries on 429/5xx, and HTTP status → outcome.

Retries follow the one policy in :mod:`secbot.resilience.retry` (capped exponential backoff with
equal jitter) and honour ``Retry-After`` (seconds or an HTTP date). A ``Retry-After`` longer
than the policy's ``max_retry_after`` is not waited for: the enrichment is needed now, and the
cache/breaker stop us from hammering anyway. Timeouts are not retried here: the per-call
timeout (breaker wrapper) is the budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from secbot.enrich.common import NotFoundError, ProviderError
from secbot.resilience.retry import RetryableError, RetryPolicy, Sleep, retry_async

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class _RetryableResponse(RetryableError):
    """A 429/5xx worth another try; carries the response to hand back if retries run out."""

    def __init__(self, response: httpx.Response, retry_after: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}", retry_after=retry_after)
        self.response = response


class _RetryableTransport(RetryableError):
    """A connection error worth another try; the original is re-raised if retries run out."""

    def __init__(self, error: httpx.TransportError) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


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


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    sleep: Sleep | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request with retries on 429/5xx and connection errors; returns the last response.

    Connection errors that outlast the retries are re-raised as the original httpx error.
    """

    async def attempt() -> httpx.Response:
        try:
            response = await client.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
            raise _RetryableTransport(exc) from exc
        if response.status_code in RETRY_STATUSES:
            hint = retry_after_seconds(response.headers.get("Retry-After"))
            await response.aclose()  # the body is already read; this frees the connection
            raise _RetryableResponse(response, hint)
        return response

    try:
        return await retry_async(attempt, policy, what=f"{method} {url}", sleep=sleep)
    except _RetryableResponse as exc:
        return exc.response
    except _RetryableTransport as exc:
        raise exc.error from None


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
    "Sleep",
    "get_json",
    "join_url",
    "json_body",
    "raise_for_status",
    "retry_after_seconds",
    "send",
]
