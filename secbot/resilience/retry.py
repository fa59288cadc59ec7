"""The one retry policy for calls to remote services (SIEM, Kibana, enrichment providers).

Built on tenacity rather than stamina: stamina is a thin, opinionated layer over tenacity with
process-global configuration (``stamina.set_testing``) and its own fixed backoff; we need a
``Retry-After``-aware wait, a per-call time budget and an injectable ``sleep`` for tests, which
are tenacity's composable ``wait`` / ``stop`` / ``sleep`` hooks.

The contract callers rely on:

* A call wrapper turns transient failures (connection errors, timeouts, 429, 5xx) into
  :class:`RetryableError`; nothing else is retried (a 401 will not heal by hammering).
* Delays are capped exponential backoff with *equal jitter*: before retry ``n`` (0-based) the
  ceiling is ``min(cap, base * 2**n)`` and the wait is uniform in ``[ceiling/2, ceiling]`` —
  half random so replicas recovering together do not stampede in lockstep, half fixed so the
  backoff still backs off.
* A server ``Retry-After`` hint is waited for (at least) when it is at most
  ``max_retry_after``; a longer hint ends the retries at once (the caller's outer loop — the
  next poll, the breaker — retries later; parking a poll or an alert for minutes helps nobody).
  :func:`retry_after_seconds` reads the header (delta-seconds or an HTTP date) for every
  HTTP caller (enrichment providers, destinations).
* ``attempts`` tries in all, and ``budget`` seconds for the whole call: a retry whose sleep
  would overrun the budget is not attempted. The last :class:`RetryableError` is re-raised.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)
from tenacity.stop import stop_base

from secbot.domain.errors import SecBotError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

log = structlog.stdlib.get_logger(__name__)


class RetryableError(SecBotError):
    """A transient failure; ``retry_after`` is the server's hint in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry one call: ``attempts`` tries in all, delays doubling from ``base`` up
    to ``cap`` (equal jitter), at most ``budget`` seconds overall, and a server hint longer than
    ``max_retry_after`` ends the retries."""

    attempts: int = 3
    base: float = 0.25
    cap: float = 4.0
    budget: float = 30.0
    max_retry_after: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base < 0 or self.cap < 0 or self.budget < 0:
            raise ValueError("attempts must be >= 1; base, cap and budget >= 0")

    @property
    def retries(self) -> int:
        """Retries after the first try (``attempts - 1``)."""
        return self.attempts - 1

    def delay(
        self,
        retry: int,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to sleep before retry number ``retry`` (0-based); None means "give up"."""
        if retry_after is not None and retry_after > self.max_retry_after:
            return None  # the server asks for longer than this call may wait
        ceiling = min(self.cap, self.base * float(2**retry))
        chosen = ceiling / 2 + rand() * ceiling / 2
        if retry_after is not None and retry_after > 0:
            chosen = max(chosen, retry_after)
        return chosen


def _hint(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc.retry_after if isinstance(exc, RetryableError) else None


class _Backoff:
    """tenacity ``wait``: the policy's delay for this retry (0 when the stop already fired)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, state: RetryCallState) -> float:
        return self.policy.delay(state.attempt_number - 1, _hint(state)) or 0.0


class _HintTooLong(stop_base):
    """tenacity ``stop``: the server's ``Retry-After`` is longer than the policy waits."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, state: RetryCallState) -> bool:
        hint = _hint(state)
        return hint is not None and hint > self.policy.max_retry_after


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        pause = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("%s failed (%s); retry %d in %.2fs", what, exc, state.attempt_number, pause)

    return before_sleep


def retrying(
    policy: RetryPolicy, *, what: str = "call", sleep: Sleep | None = None
) -> AsyncRetrying:
    """The tenacity controller for ``policy`` (retries :class:`RetryableError` only)."""
    return AsyncRetrying(
        sleep=sleep or asyncio.sleep,
        retry=retry_if_exception_type(RetryableError),
        wait=_Backoff(policy),
        stop=(
            stop_after_attempt(policy.attempts)
            | stop_before_delay(policy.budget)
            | _HintTooLong(policy)
        ),
        before_sleep=_log_retry(what),
        reraise=True,  # callers catch RetryableError, not tenacity.RetryError
    )


async def retry_async(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str = "call",
    sleep: Sleep | None = None,
) -> T:
    """Await ``call()`` until it returns, retrying :class:`RetryableError` per ``policy``.

    ``call`` may be any callable returning an awaitable (a lambda too): tenacity awaits only
    what it recognises as a coroutine function and would hand a lambda's coroutine back
    unawaited, so the call is wrapped in one.
    """

    async def attempt() -> T:
        return await call()

    result: T = await retrying(policy, what=what, sleep=sleep)(attempt)
    return result


__all__ = ["RetryPolicy", "RetryableError", "Sleep", "retry_async", "retrying"]
