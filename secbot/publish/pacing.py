"""Per-channel pacing: Slack allows about one message per second per channel, with bursts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class ChannelPacer:
    """A token bucket per channel: ``burst`` messages at once, then ``rate`` per second.

    ``rate=0`` disables pacing (benchmarks, the emulator).
    """

    def __init__(
        self, rate: float = 1.0, burst: int = 4, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, channel: str) -> None:
        if self.rate <= 0:
            return
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            tokens, stamp = self._buckets.get(channel, (float(self.burst), self._clock()))
            now = self._clock()
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens < 1.0:
                await asyncio.sleep((1.0 - tokens) / self.rate)
                now = self._clock()
                tokens = 1.0
            self._buckets[channel] = (tokens - 1.0, now)
