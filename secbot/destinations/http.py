"""HTTP plumbing the destinations share: one request, its failure classified for the outbox.

Retryable (the outbox tries again later): connection errors, timeouts, 408, 425, 429 and 5xx,
with the server's ``Retry-After`` (seconds, or an HTTP date) kept as the hint. Everything else
(400, 401, 403, 404, 409, ...) is permanent: sending the same request again cannot heal it, and
the person reading the thread needs to hear why instead.
"""

from __future__ import annotations

from typing import Any

import httpx

from secbot.destinations.base import DestinationError
from secbot.domain.secrets import redact
from secbot.resilience.retry import retry_after_seconds

RETRYABLE_STATUS = frozenset({408, 425, 429})
_MAX_DETAIL = 300


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, if it is there and readable."""
    return retry_after_seconds(response.headers.get("Retry-After"))


def detail(response: httpx.Response) -> str:
    """A short, redacted rendering of an error body for the thread and the audit."""
    text = response.text.strip().replace("\n", " ")
    if len(text) > _MAX_DETAIL:
        text = text[:_MAX_DETAIL] + "…"
    return redact(text)


def failure(service: str, response: httpx.Response, what: str) -> DestinationError:
    """The error for a non-2xx answer, classified."""
    status = response.status_code
    retryable = status in RETRYABLE_STATUS or status >= 500
    body = detail(response)
    message = f"{service} {what}: HTTP {status}" + (f" {body}" if body else "")
    return DestinationError(message, retryable=retryable,
                            retry_after=retry_after(response) if retryable else None)


async def send(client: httpx.AsyncClient, service: str, what: str, method: str, url: str,
               **kwargs: Any) -> httpx.Response:
    """One request; a 2xx response, or :class:`DestinationError` (transport errors are
    retryable and their text is redacted: an error naming a URL may carry userinfo)."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise DestinationError(redact(f"{service} {what}: {type(exc).__name__}: {exc}"),
                               retryable=True) from None
    if not response.is_success:
        raise failure(service, response, what)
    return response


def json_body(response: httpx.Response, service: str, what: str) -> Any:
    """The answer's JSON; a 2xx whose body is not JSON is retryable (a proxy's page)."""
    try:
        return response.json()
    except ValueError:
        raise DestinationError(f"{service} {what}: the answer was not JSON",
                               retryable=True) from None
