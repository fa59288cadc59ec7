"""The periodic loops every replica runs (ask timeouts, the daily review sample, the weekly
report): call ``tick`` now and then every ``every`` seconds until cancelled.

A failed tick is logged (redacted: an exception may quote a URL or a token) and the next one
tries again; a tick's own work decides what "done once across replicas" means (claims,
leases), so a retried tick never repeats what another one finished. Cancellation is never
swallowed: it is how the service stops the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from secbot.domain.secrets import redact

log = structlog.stdlib.get_logger(__name__)


async def run_every(tick: Callable[[], Awaitable[object]], every: float, *, what: str) -> None:
    """Run ``tick`` every ``every`` seconds until cancelled; ``what`` names it in the log."""
    while True:
        try:
            await tick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next tick tries again; the loop must outlive outages
            log.warning("periodic task failed", task=what,
                        error=redact(f"{type(exc).__name__}: {exc}"))
        await asyncio.sleep(every)
