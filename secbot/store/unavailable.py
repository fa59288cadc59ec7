"""Redis failures as :class:`~secbot.store.base.StoreUnavailable`, for the Redis-backed state
that lives beside the Store (the ask/respond interactions, the review room's trust state).

Those rooms treat *any* Redis error as "the state is unreachable right now" (their callers
retry on the next tick or tell the person), so this maps :class:`redis.exceptions.RedisError`
and socket-level ``OSError`` alike; the Store itself (:mod:`secbot.store.redis`) keeps its
narrower mapping, where a command error is a bug to surface, not an outage.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from redis.exceptions import RedisError

from secbot.store.base import StoreUnavailable

T = TypeVar("T")

#: Builtin OSError covers socket errors that slip past redis-py's own wrapping.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)


async def guarded(call: Awaitable[T]) -> T:
    """Await one Redis call; a failure becomes ``StoreUnavailable`` (redis-py messages hold
    no URL, so the message is safe to log)."""
    try:
        return await call
    except REDIS_FAILURES as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
