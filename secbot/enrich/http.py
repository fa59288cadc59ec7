"""httpx helpers for enrichers: retries on 429/5xx, and HTTP status → outcome.

Retries follow the one policy in :mod:`secbot.resilience.retry` (capped exponential backoff with
equal jitter) and honour ``Retry-After`` (seconds or an HTTP date). A ``Retry-After`` longer
than the policy's ``max_retry_after`` is not waited for: the enrichment is needed now, and the
cache/breaker stop us from hammering anyway. Timeouts are not retried here: the per-call
timeout (breaker wrapper) is the budget.

Redirects are followed here, not by httpx: httpx drops only ``Authorization`` when a redirect
leaves the origin, while providers put their API keys in headers of their own (AbuseIPDB
``Key``, VirusTotal ``x-apikey``, GreyNoise ``key``). Once a redirect leaves the origin, only
the :data:`SAFE_HEADERS` go on; a client whose default headers carry anything else is not
led to another origin at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from secbot.enrich.common import NotFoundError, ProviderError
from secbot.resilience.retry import (
    RetryableError,
    RetryPolicy,
    Sleep,
    retry_after_seconds,
    retry_async,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Headers that carry no credential: the only ones sent on after a cross-origin redirect.
SAFE_HEADERS = frozenset({"accept", "accept-encoding", "accept-language", "user-agent",
                          "connection", "host", "content-type", "content-length"})
MAX_REDIRECTS = 5


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
    response = await get_following(client, url, provider=provider, policy=policy,
                                   headers=headers, params=params)
    raise_for_status(response, provider, what)
    return json_body(response, provider)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


async def get_following(
    client: httpx.AsyncClient,
    url: str,
    *,
    provider: str,
    policy: RetryPolicy,
    headers: Mapping[str, str] | None = None,
    params: Any = None,
) -> httpx.Response:
    """GET with redirects followed by hand, so credentials never reach another origin.

    Each hop is one :func:`send` (with its retries). After the first hop that leaves the
    origin, only :data:`SAFE_HEADERS` of ``headers`` are sent, on every later hop too (a
    redirect back is still a destination the provider chose, not one we trust).
    """
    sent = dict(headers or {})
    response = await send(client, "GET", url, policy=policy, headers=sent, params=params,
                          follow_redirects=False)
    origin = _origin(response.request.url)
    for _ in range(MAX_REDIRECTS):
        location = response.headers.get("Location")
        if not response.is_redirect or not location:
            return response
        target = response.request.url.join(location)
        await response.aclose()
        if _origin(target) != origin:
            if any(name.lower() not in SAFE_HEADERS for name in client.headers):
                raise ProviderError(f"{provider}: redirected to another origin, not followed "
                                    "(the HTTP client carries credentials)")
            sent = {k: v for k, v in sent.items() if k.lower() in SAFE_HEADERS}
        response = await send(client, "GET", str(target), policy=policy, headers=sent,
                              follow_redirects=False)
    raise ProviderError(f"{provider}: more than {MAX_REDIRECTS} redirects")


def join_url(base: str, path: str) -> str:
    """``base`` (with or without trailing slash) + ``path`` (with or without leading slash)."""
    return base.rstrip("/") + "/" + path.lstrip("/")


__all__ = [
    "MAX_REDIRECTS",
    "RETRY_STATUSES",
    "SAFE_HEADERS",
    "RetryPolicy",
    "Sleep",
    "get_following",
    "get_json",
    "join_url",
    "json_body",
    "raise_for_status",
    "retry_after_seconds",
    "send",
]
