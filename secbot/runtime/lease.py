"""Leader election for the poller (DESIGN.md §9): a lease with a TTL in the shared store.

Every replica runs Socket Mode and handles reactions and commands; only the lease holder
polls the SIEM. The holder renews every ``ttl / 3``; if it dies, the lease expires within
``ttl`` and a standby (which also tries once per poll cycle) takes over within ``ttl`` plus one
poll interval. Even two pollers at once would not double-post: posting is
claimed per alert uuid in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

from secbot.resilience.loop import cancel_and_wait
from secbot.runtime.logs import get_logger
from secbot.store.base import Store

log = get_logger("secbot.runtime.lease")


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Keeps trying to hold ``name``; ``held`` says whether this replica leads right now."""

    def __init__(
        self, store: Store, name: str = "poller", *, ttl: float = 15.0, owner: str | None = None
    ) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self.owner = owner or replica_id()
        self.held = False
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """One attempt to take or renew; a store failure means "not held" (fail safe)."""
        try:
            held = await self.store.acquire_lease(self.name, self.owner, self.ttl)
        except Exception as exc:  # the store is down: stop polling rather than risk two leaders
            if self.held:
                log.warning("lease_lost", reason=str(exc))
            held = False
        if held != self.held:
            log.info("lease_acquired" if held else "lease_released", owner=self.owner)
        self.held = held
        return held

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.ttl / 3)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], what="lease keeper")
        if self.held:
            with contextlib.suppress(Exception):
                await self.store.release_lease(self.name, self.owner)
            self.held = False
