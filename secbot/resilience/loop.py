"""The periodic loops every replica runs (ask timeouts, the daily review sample, the weekly
report): call ``tick`` now and then every ``every`` seconds until cancelled.

A failed tick is logged (redacted: an exception may quote a URL or a token) and the next one
tries again; a tick's own work decides what "done once across replicas" means (claims,
leases), so a retried tick never repeats what another one finished. Cancellation is never
swallowed: it is how the service stops the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

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


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, timeout: float = 5.0,
                          what: str = "tasks") -> None:
    """Cancel ``tasks`` and wait, at most ``timeout`` seconds, for them to end.

    Cancelled again every half second: on Python 3.11 ``asyncio.wait_for`` can swallow a
    cancel that lands just as its wait ends, and a loop that lost one would run on forever —
    a stop that merely awaited it would hang the shutdown (SIGTERM must exit within 30 s).
    Never raises: what is still running at the deadline is logged and left behind.
    """
    pending = {task for task in tasks if not task.done()}
    deadline = asyncio.get_running_loop().time() + timeout
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            log.warning("tasks did not stop", what=what, still_running=len(pending))
            return
        _, pending = await asyncio.wait(pending, timeout=min(0.5, left))
