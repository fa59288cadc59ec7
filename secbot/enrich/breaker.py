"""Circuit breaker and concurrency cap for one provider.

Without a breaker, a dead provider costs every alert a full timeout. With it, after
``threshold`` consecutive failures the circuit opens for ``window`` seconds: calls fail fast
with ``unavailable("circuit open…")``. When the window has passed one probe call goes through
(half-open); success closes the circuit, failure opens it for another window. So a dead
provider costs one timeout per window, not one per alert.

"Not found" is an answer, not a failure: it never trips the breaker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from enum import Enum

from secbot.domain.enrichment import Enrichment
from secbot.enrich.common import Source, SourceWrapper, is_failure


class Permit(Enum):
    """What :meth:`CircuitBreaker.acquire` granted."""

    NORMAL = "normal"
    PROBE = "probe"


class CircuitBreaker:
    """Consecutive-failure breaker: closed → open (``window`` s) → half-open (one probe)."""

    def __init__(
        self,
        threshold: int = 5,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or window <= 0:
            raise ValueError("threshold must be ≥ 1 and window > 0")
        self.threshold = threshold
        self.window = window
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.window:
            return "open"
        return "half_open"

    @property
    def failures(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until the next probe is allowed (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.window - (self._clock() - self._opened_at))

    def acquire(self) -> Permit | None:
        """Permission to call the provider now, or None to fail fast."""
        state = self.state
        if state == "closed":
            return Permit.NORMAL
        if state == "half_open" and not self._probing:
            self._probing = True
            return Permit.PROBE
        return None

    def still_allows(self, permit: Permit) -> bool:
        """Re-check after queueing for the concurrency cap: the circuit may have opened."""
        return permit is Permit.PROBE or self.state == "closed"

    def record(self, permit: Permit, *, failed: bool) -> None:
        if permit is Permit.PROBE:
            self._probing = False
        if not failed:
            self._failures = 0
            self._opened_at = None
            return
        self._failures += 1
        if permit is Permit.PROBE or self._failures >= self.threshold:
            self._opened_at = self._clock()

    def release(self, permit: Permit) -> None:
        """The call was abandoned (cancelled) without an outcome: let another probe try."""
        if permit is Permit.PROBE:
            self._probing = False


class GuardedEnricher(SourceWrapper):
    """A :class:`Source` behind a concurrency cap, a per-call timeout and a circuit breaker.

    The timeout starts once a slot under the cap is held: queueing behind a busy provider is
    not the provider's failure and must not trip the breaker.
    """

    def __init__(
        self,
        inner: Source,
        *,
        breaker: CircuitBreaker | None = None,
        timeout: float = 4.0,
        concurrency: int = 20,
    ) -> None:
        super().__init__(inner)
        self.breaker = breaker or CircuitBreaker()
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)

    def _open(self) -> Enrichment:
        return Enrichment.unavailable(
            self.name,
            f"circuit open after {self.breaker.failures} consecutive failures; "
            f"next try in {self.breaker.retry_in():.0f}s",
        )

    async def lookup(self, key: str) -> Enrichment:
        permit = self.breaker.acquire()
        if permit is None:
            return self._open()
        try:
            async with self._slots:
                if not self.breaker.still_allows(permit):
                    self.breaker.release(permit)
                    return self._open()
                try:
                    # asyncio.timeout, not wait_for: no extra task per call on the hot path.
                    async with asyncio.timeout(self.timeout):
                        result = await self.inner.lookup(key)
                except TimeoutError:
                    result = Enrichment.unavailable(self.name, f"timeout after {self.timeout:g}s")
                except Exception as exc:  # wrapped enrichers should not raise; if one does…
                    result = Enrichment.unavailable(self.name, f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            self.breaker.release(permit)
            raise
        self.breaker.record(permit, failed=is_failure(result))
        return result


__all__ = ["CircuitBreaker", "GuardedEnricher", "Permit"]
