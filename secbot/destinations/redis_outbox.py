"""The outbox's durable storage in Redis (keys under the app's prefix ``{p}``).

Layout:

- ``{p}outbox:job:<key>`` — hash: ``d`` the job (JSON), ``a`` claims so far, ``e`` last error;
- ``{p}outbox:due:<destination>`` — sorted set: job key → epoch second it may run next. A
  claimed job's score is pushed to *now + lease*: if the process dies mid-call (``kill -9``)
  the job simply becomes due again when the lease runs out — a visibility timeout, the same
  idea as the intake stream's ``XAUTOCLAIM``, but per job and with a retry time;
- ``{p}outbox:created:<destination>`` — sorted set: job key → enqueue time (oldest job age);
- ``{p}outbox:seen:<key>`` — idempotency marker: an open's lives ``keep`` seconds (a
  redelivered alert never pages twice), an update's only while it is queued (so a later
  close after a reopen is sent again);
- ``{p}outbox:alert:<uuid>`` — set of destinations an open was queued for;
- ``{p}outbox:updates:<destination>:<uuid>`` — sorted set: the alert's queued updates there by
  enqueue time (each is sent only after the ones before it);
- ``{p}outbox:receipts:<uuid>`` — hash: destination → receipt (JSON);
- ``{p}outbox:ref:<destination>:<reference>`` — the alert uuid a receipt's reference (a Jira
  issue key) belongs to, for the way back (the Jira webhook);
- ``{p}outbox:state:<destination>`` — hash: ``failing``, ``error``, ``sent``, ``failed``.

Enqueue and claim are Lua scripts, so two replicas never both take a job and a job is never
half-written. Times are the callers' clocks (replicas on one Redis are NTP-synced; a skew only
shifts when a retry happens).
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

from secbot.destinations.base import Receipt
from secbot.destinations.jobs import (
    DestinationState,
    OutboxJob,
    decode_job,
    decode_receipt,
    encode_job,
    encode_receipt,
)

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[4])
else
  redis.call('SET', KEYS[1], '1')
end
redis.call('HSET', KEYS[2], 'd', ARGV[1], 'a', 0)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[5], ARGV[5])
redis.call('EXPIRE', KEYS[5], ARGV[6])
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[6], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[6], ARGV[6])
end
return 1
"""

# KEYS[1] due set; ARGV now, lease, job key prefix. Takes the first due job that still exists.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 8)
for _, key in ipairs(due) do
  local job = ARGV[3] .. key
  local body = redis.call('HGET', job, 'd')
  if body then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), key)
    local attempts = redis.call('HINCRBY', job, 'a', 1)
    return {key, body, attempts}
  end
  redis.call('ZREM', KEYS[1], key)
end
return nil
"""


class RedisOutboxStore:
    """Jobs, receipts and per-destination state (``decode_responses=True`` client)."""

    def __init__(self, client: aioredis.Redis, prefix: str, *, keep: int = 30 * 86400) -> None:
        self.client = client
        self.p = f"{prefix}outbox:"
        self.keep = keep
        self._enqueue = client.register_script(_ENQUEUE)
        self._claim = client.register_script(_CLAIM)

    def _job(self, key: str) -> str:
        return f"{self.p}job:{key}"

    def _updates(self, job: OutboxJob) -> str:
        return f"{self.p}updates:{job.destination}:{job.alert_uuid}"

    async def earlier_update(self, job: OutboxJob) -> bool:
        """True while an update of the same alert at the same destination, queued before
        ``job``, is not done: updates are sent in the order they happened (ack, then close)."""
        for _ in range(8):
            first: Any = await self.client.zrange(self._updates(job), 0, 0)
            if not first or str(first[0]) == job.key:
                return False
            if await self.client.exists(self._job(str(first[0]))):
                return True
            await self.client.zrem(self._updates(job), first[0])  # gone (set aside): skip it
        return True

    async def enqueue(self, job: OutboxJob) -> bool:
        """Queue ``job`` unless one with its key is queued (or, for an open, was sent within
        ``keep``); True when it was queued now."""
        ttl = self.keep if job.action == "open" else 0
        added = await self._enqueue(
            keys=[f"{self.p}seen:{job.key}", self._job(job.key), f"{self.p}due:{job.destination}",
                  f"{self.p}created:{job.destination}", f"{self.p}alert:{job.alert_uuid}",
                  self._updates(job)],
            args=[encode_job(job), job.created, job.key, ttl, job.destination, self.keep,
                  "1" if job.action == "update" else "0"])
        return bool(added)

    async def claim(self, destination: str, lease: float, now: float | None = None
                    ) -> OutboxJob | None:
        """The next due job of ``destination``, leased for ``lease`` seconds."""
        now = time.time() if now is None else now
        found: Any = await self._claim(keys=[f"{self.p}due:{destination}"],
                                       args=[now, lease, f"{self.p}job:"])
        if not found:
            return None
        key, body, attempts = found
        try:
            return decode_job(body, int(attempts))
        except (ValueError, KeyError, TypeError):
            await self.bury(destination, str(key), body)
            return None

    async def bury(self, destination: str, key: str, body: str) -> None:
        """An undecodable job is set aside (kept for a human), not retried forever."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(f"{self.p}dead", body)
            pipe.delete(self._job(key))
            pipe.zrem(f"{self.p}due:{destination}", key)
            pipe.zrem(f"{self.p}created:{destination}", key)
            await pipe.execute()

    async def reschedule(self, job: OutboxJob, at: float, error: str | None) -> None:
        """Run ``job`` again at ``at`` (epoch seconds); ``error`` is why it has to."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(f"{self.p}due:{job.destination}", {job.key: at}, xx=True)
            if error is not None:
                pipe.hset(self._job(job.key), "e", error)
            await pipe.execute()

    async def complete(self, job: OutboxJob) -> None:
        """Done (either way): gone from the queue; an update's marker goes too."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._job(job.key))
            pipe.zrem(f"{self.p}due:{job.destination}", job.key)
            pipe.zrem(f"{self.p}created:{job.destination}", job.key)
            if job.action == "update":
                pipe.delete(f"{self.p}seen:{job.key}")
                pipe.zrem(self._updates(job), job.key)
            await pipe.execute()

    async def queued(self, key: str) -> bool:
        return bool(await self.client.exists(self._job(key)))

    async def save_receipt(self, alert_uuid: str, receipt: Receipt) -> None:
        key = f"{self.p}receipts:{alert_uuid}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, receipt.destination, encode_receipt(receipt))
            pipe.expire(key, self.keep)
            pipe.set(f"{self.p}ref:{receipt.destination}:{receipt.reference}", alert_uuid,
                     ex=self.keep)
            await pipe.execute()

    async def alert_for_reference(self, destination: str, reference: str) -> str | None:
        """The alert a destination's reference (a Jira issue key) was opened for."""
        found: Any = await self.client.get(f"{self.p}ref:{destination}:{reference}")
        return str(found) if found else None

    async def receipts(self, alert_uuid: str) -> dict[str, Receipt]:
        raw: Any = await self.client.hgetall(f"{self.p}receipts:{alert_uuid}")
        out = {}
        for name, text in raw.items():
            try:
                out[name] = decode_receipt(text)
            except (ValueError, TypeError):
                continue
        return out

    async def destinations_for(self, alert_uuid: str) -> set[str]:
        """Destinations an open was queued for (sent, pending or failed)."""
        members: Any = await self.client.smembers(f"{self.p}alert:{alert_uuid}")
        return {str(m) for m in members}

    async def next_due(self, destination: str) -> float | None:
        first = await self.client.zrange(f"{self.p}due:{destination}", 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def record(self, destination: str, *, ok: bool | None, error: str | None) -> None:
        """``ok`` True: sent; False: failed for good; None: failing, will retry."""
        key = f"{self.p}state:{destination}"
        async with self.client.pipeline(transaction=True) as pipe:
            if ok is None:
                pipe.hset(key, mapping={"failing": 1, "error": error or ""})
            else:
                pipe.hset(key, "failing", 0)
                pipe.hincrby(key, "sent" if ok else "failed", 1)
                if error:
                    pipe.hset(key, "error", error)
            await pipe.execute()

    async def state(self, destination: str, now: float | None = None) -> DestinationState:
        now = time.time() if now is None else now
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(f"{self.p}due:{destination}")
            pipe.zrange(f"{self.p}created:{destination}", 0, 0, withscores=True)
            pipe.hgetall(f"{self.p}state:{destination}")
            queued, oldest, raw = await pipe.execute()
        age = max(0.0, now - float(oldest[0][1])) if oldest else 0.0
        return DestinationState(destination, int(queued), raw.get("failing") == "1",
                                raw.get("error") or None, age, int(raw.get("sent", 0)),
                                int(raw.get("failed", 0)))


__all__ = ["RedisOutboxStore"]
