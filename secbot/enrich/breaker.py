"""Circuit breaker and concurrency cap for one provider (the breaker itself is generic and lives
in :mod:`secbot.resilience.breaker`, which says why it is not a library).

Without a breaker, a dead provider costs every alert a full timeout. With it, after
``threshold`` consecutive failures the circuit opens for ``window`` seconds: calls fail fast
with ``unavailable("circuit open…")``. When the window has passed one probe call goes through
(half-open); success closes the circuit, failure opens it for another window. So a dead
provider costs one timeout per window, not one per alert.

"Not found" is an answer, not a failure: it never trips the breaker.
"""

from __future__ import annotations

import asyncio

from secbot.domain.enrichment import Enrichment
from secbot.enrich.common import Source, SourceWrapper, is_failure
from secbot.resilience.breaker import CircuitBreaker, Permit


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
