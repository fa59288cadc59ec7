"""Capped exponential backoff with jitter for calls to remote services.

A call wrapper turns transient failures (connection errors, timeouts, 429, 5xx) into
:class:`RetryableError`; :func:`retry_async` sleeps and tries again, and re-raises the last
:class:`RetryableError` once the attempts or the time budget are spent. Anything else propagates
at once: a 401 will not heal by hammering the server.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from secbot.domain.errors import SecBotError

T = TypeVar("T")

log = logging.getLogger(__name__)


class RetryableError(SecBotError):
    """A transient failure; ``retry_after`` is the server's hint in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry: ``attempts`` tries in all, delays doubling from ``base`` up to ``cap``.

    ``budget`` bounds the whole call (tries plus sleeps) so a poll never stalls for minutes;
    the poller's next cycle is the outer retry loop.
    """

    attempts: int = 6
    base: float = 0.25
    cap: float = 5.0
    budget: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Sleep before try ``attempt + 2``: "equal jitter" in [ceiling/2, ceiling].

        Half of the delay is random so that many replicas recovering together do not
        stampede the cluster in lockstep; the other half keeps the backoff meaningful.
        A server ``Retry-After`` is honoured but still capped, so a bogus huge value
        cannot park the poller.
        """
        ceiling = min(self.cap, self.base * float(2**attempt))
        chosen = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None and retry_after > 0:
            chosen = max(chosen, min(retry_after, self.cap))
        return chosen


async def retry_async(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str = "call",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await ``call()`` until it returns, retrying :class:`RetryableError` per ``policy``."""
    started = time.monotonic()
    last: RetryableError | None = None
    for attempt in range(max(1, policy.attempts)):
        try:
            return await call()
        except RetryableError as exc:
            last = exc
            if attempt + 1 >= policy.attempts:
                break
            pause = policy.delay(attempt, exc.retry_after)
            if time.monotonic() - started + pause > policy.budget:
                break
            log.info("%s failed (%s); retry %d in %.2fs", what, exc, attempt + 1, pause)
            await sleep(pause)
    assert last is not None  # the loop ran at least once and only breaks after a failure
    raise last


__all__ = ["RetryPolicy", "RetryableError", "retry_async"]
