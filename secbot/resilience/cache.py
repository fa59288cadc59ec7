"""Bounded in-process caches on cachetools: every entry has a lifetime and the cache a size.

:class:`TtlMemory` is a ``cachetools.TLRUCache`` whose entries each carry their own TTL (the
enrichment cache keeps data for minutes and "not found" for seconds in one map). When full,
expired entries go first, then the least recently used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from cachetools import TLRUCache

V = TypeVar("V")


def _expires(_key: str, item: tuple[float, float, object], now: float) -> float:
    return item[0] + item[1]  # stored at + ttl


class TtlMemory(Generic[V]):
    """``key → value`` for at most ``maxsize`` keys, each for the TTL it was stored with."""

    def __init__(self, maxsize: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be ≥ 1")
        self._clock = clock
        # (stored at, ttl, value): the deadline stays readable for :meth:`remaining`.
        self._data: TLRUCache[str, tuple[float, float, V]] = TLRUCache(
            maxsize=maxsize, ttu=_expires, timer=clock
        )

    @property
    def maxsize(self) -> int:
        return int(self._data.maxsize)

    def get(self, key: str) -> V | None:
        item = self._data.get(key)
        return None if item is None else item[2]

    def remaining(self, key: str) -> float | None:
        """Seconds ``key`` has left, or None when it is absent or expired."""
        item = self._data.get(key)
        return None if item is None else item[0] + item[1] - self._clock()

    def set(self, key: str, value: V, ttl: float) -> None:
        if ttl <= 0:
            self._data.pop(key, None)  # a zero lifetime means "do not keep"
            return
        self._data[key] = (self._clock(), ttl, value)

    def __len__(self) -> int:
        self._data.expire()
        return len(self._data)


__all__ = ["TtlMemory"]
