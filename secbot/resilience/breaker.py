"""Consecutive-failure circuit breaker: closed → open (``window`` s) → half-open (one probe).

Kept hand-written on purpose. The maintained asyncio breakers were weighed and do not fit:

* purgatory 3.0.1 counts *exceptions* and lets every concurrent call through while half-open
  (a dead provider then costs a burst of timeouts, not one probe), and it reads the wall clock
  (``time.time()``), so an NTP step opens or closes circuits and tests cannot inject a clock;
* aiobreaker 1.2.0 has had no release since 2021; circuitbreaker 2.1.3 is a decorator with
  module-global state and the same exception-only, many-probes half-open.

Our callers decide *what* a failure is from a result (an enrichment "not found" is an answer,
not a failure), need exactly one probe while half-open, a way to give a permit back when the
call was cancelled, and a re-check after queueing for a concurrency slot. That is ~60 lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class Permit(Enum):
    """What :meth:`CircuitBreaker.acquire` granted."""

    NORMAL = "normal"
    PROBE = "probe"


class CircuitBreaker:
    """After ``threshold`` consecutive failures the circuit opens for ``window`` seconds and
    :meth:`acquire` refuses; then one probe goes through (half-open): success closes the
    circuit, failure opens it for another window."""

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
        """Re-check after queueing for a concurrency cap: the circuit may have opened."""
        return permit is Permit.PROBE or self.state == "closed"

    def record(self, permit: Permit, *, failed: bool) -> None:
        """The outcome of a call made under ``permit``."""
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


__all__ = ["CircuitBreaker", "Permit"]
