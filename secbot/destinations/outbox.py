"""The durable outbox (DESIGN.md §1, §12): every destination call goes through it.

Callers (the hand-off, status changes) *enqueue* and move on; the alert's flow never waits for
PagerDuty or Jira. The worker runs one loop per destination, so a destination that is down
only delays its own jobs. What it guarantees:

- **Idempotent enqueue**: one open per (destination, alert uuid) — a redelivered alert or a
  second replica enqueueing the same escalation changes nothing, and never pages twice; one
  queued update per (destination, alert, status).
- **Nothing lost**: jobs live in Redis (:mod:`secbot.destinations.redis_outbox`); a claimed job
  is leased, and a process killed mid-call leaves it to be claimed again when the lease runs
  out. The destinations make a repeated call harmless (dedup key, label lookup,
  ``Idempotency-Key``).
- **Retries with backoff**: a retryable :class:`DestinationError` (timeouts, 429, 5xx) puts
  the job back with capped exponential backoff (the :class:`RetryPolicy` equal-jitter
  formula; a ``Retry-After`` is waited at least), for ``give_up_after`` seconds in all; then,
  or at once for a permanent error (400, 401, 404, a missing transition), the job fails and
  the outcome sink says so in the thread.
- **Updates in order, after opens**: an update waits for the alert's earlier updates at the
  same destination (acknowledged, then closed — never the other way round), and until its
  open has a receipt (a close arriving
  while PagerDuty is down resolves the page right after it is triggered); an update for an
  open that failed for good is dropped — there is nothing to update.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

import structlog

from secbot.destinations.base import (
    Destination,
    DestinationError,
    EscalationRequest,
    Receipt,
    StatusUpdate,
)
from secbot.destinations.jobs import DestinationState, JobOutcome, OutboxJob, OutcomeSink
from secbot.destinations.redis_outbox import RedisOutboxStore
from secbot.domain.secrets import redact
from secbot.resilience.loop import cancel_and_wait
from secbot.resilience.retry import RetryPolicy

log = structlog.stdlib.get_logger(__name__)

#: The outbox keeps trying for minutes to hours, not the seconds of an in-line retry.
OUTBOX_POLICY = RetryPolicy(attempts=1_000_000, base=1.0, cap=300.0, budget=86400.0,
                            max_retry_after=float("inf"))


class Outbox:
    """Enqueue side: what the hand-off and status changes call."""

    def __init__(self, store: RedisOutboxStore, names: frozenset[str]) -> None:
        self.store = store
        self.names = names
        self.wake: dict[str, asyncio.Event] = {}

    def _poke(self, destination: str) -> None:
        event = self.wake.get(destination)
        if event is not None:
            event.set()

    async def open(self, destination: str, request: EscalationRequest) -> bool:
        """Queue the open of ``request`` at ``destination``; False when already queued or
        sent (or the destination is not configured here: the rule loader refused that)."""
        if destination not in self.names:
            log.warning("escalation to unconfigured destination %s dropped", destination)
            return False
        job = OutboxJob(destination, request.alert_uuid, "open", time.time(), request=request)
        added = await self.store.enqueue(job)
        self._poke(destination)
        return added

    async def update(self, update: StatusUpdate) -> list[str]:
        """Queue ``update`` for every destination this alert was escalated to; returns them."""
        sent = []
        for destination in sorted(await self.store.destinations_for(update.alert_uuid)):
            if destination not in self.names:
                continue
            job = OutboxJob(destination, update.alert_uuid, "update", time.time(),
                            update=update)
            if await self.store.enqueue(job):
                sent.append(destination)
                self._poke(destination)
        return sent

    async def escalated_to(self, alert_uuid: str) -> set[str]:
        return await self.store.destinations_for(alert_uuid)

    async def states(self) -> list[DestinationState]:
        return [await self.store.state(name) for name in sorted(self.names)]


class OutboxWorker:
    """Takes jobs and calls the destinations: ``concurrency`` loops per destination."""

    def __init__(self, outbox: Outbox, destinations: Mapping[str, Destination],
                 sink: OutcomeSink | None = None, *, lease: float = 60.0, poll: float = 0.5,
                 policy: RetryPolicy = OUTBOX_POLICY, give_up_after: float = 86400.0,
                 wait_for_open: float = 1.0, concurrency: int = 2) -> None:
        self.outbox = outbox
        self.store = outbox.store
        self.destinations = dict(destinations)
        self.sink = sink
        self.lease = lease
        self.poll = poll
        self.policy = policy
        self.give_up_after = give_up_after
        self.wait_for_open = wait_for_open
        self.concurrency = concurrency
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()
        for event in self.outbox.wake.values():
            event.set()

    async def run(self) -> None:
        """Until :meth:`stop`: a job in flight finishes (or is left to its lease)."""
        for name in self.destinations:
            self.outbox.wake.setdefault(name, asyncio.Event())
        loops = [asyncio.create_task(self._loop(name), name=f"outbox-{name}-{i}")
                 for name in self.destinations for i in range(self.concurrency)]
        try:
            await self._stop.wait()
        finally:
            # Set before cancelling: asyncio.wait_for (Python < 3.12) can swallow a cancel
            # that lands as its wait ends, and the loop must still see it is time to stop.
            self._stop.set()
            await cancel_and_wait(loops, what="outbox loops")

    async def _loop(self, name: str) -> None:
        wake = self.outbox.wake[name]
        while not self._stop.is_set():
            try:
                worked = await self.process_one(name)
            except Exception:  # Redis trouble: never let a loop die
                log.exception("outbox loop for %s failed; retrying", name)
                worked = False
            if worked:
                continue
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.poll)

    async def process_one(self, name: str) -> bool:
        """Claim and run one due job of ``name``; False when none was due."""
        job = await self.store.claim(name, self.lease)
        if job is None:
            return False
        destination = self.destinations[name]
        try:
            receipt = await self._call(destination, job)
        except DestinationError as exc:
            await self._failed(job, exc)
            return True
        except Exception as exc:  # a bug in a destination: keep the job, try later
            log.exception("destination %s raised unexpectedly", name)
            await self._failed(job, DestinationError(f"{type(exc).__name__}: {exc}",
                                                     retryable=True))
            return True
        if receipt is not None:
            await self.store.record(name, ok=True, error=None)
            await self._report(JobOutcome(job, receipt, None,
                                          await self.store.receipts(job.alert_uuid)))
        await self.store.complete(job)
        return True

    async def _call(self, destination: Destination, job: OutboxJob) -> Receipt | None:
        """The call; returns the receipt, or None when there was nothing to do (or the job
        was put back to wait for its open)."""
        if job.action == "open":
            assert job.request is not None
            opened = await destination.open(job.request)
            await self.store.save_receipt(job.alert_uuid, opened)
            return opened
        assert job.update is not None
        if await self.store.earlier_update(job):
            raise _Waiting()
        receipt = (await self.store.receipts(job.alert_uuid)).get(job.destination)
        if receipt is None:
            if await self.store.queued(job.open_key):
                raise _Waiting()
            return None  # the open failed for good: nothing to update
        await destination.update(job.update, receipt)
        return receipt

    def delay(self, job: OutboxJob, hint: float | None) -> float:
        chosen = self.policy.delay(max(0, job.attempts - 1), hint)
        return self.policy.cap if chosen is None else chosen

    async def _failed(self, job: OutboxJob, exc: DestinationError) -> None:
        if isinstance(exc, _Waiting):
            await self.store.reschedule(job, time.time() + self.wait_for_open, None)
            return
        error = redact(str(exc))
        age = time.time() - job.created
        if exc.retryable and age + self.delay(job, exc.retry_after) < self.give_up_after:
            pause = self.delay(job, exc.retry_after)
            log.info("%s %s of %s failed (%s); retry in %.1fs", job.destination, job.action,
                     job.alert_uuid, error, pause)
            await self.store.record(job.destination, ok=None, error=error)
            await self.store.reschedule(job, time.time() + pause, error)
            return
        if exc.retryable:
            error = f"{error} (gave up after {age / 3600:.1f} h of retries)"
        log.warning("%s %s of %s failed for good: %s", job.destination, job.action,
                    job.alert_uuid, error)
        await self.store.record(job.destination, ok=False, error=error)
        await self._report(JobOutcome(job, None, error,
                                      await self.store.receipts(job.alert_uuid)))
        await self.store.complete(job)

    async def _report(self, outcome: JobOutcome) -> None:
        if self.sink is None:
            return
        try:
            await self.sink(outcome)
        except Exception:  # the call happened; telling Slack is best effort
            log.exception("outbox outcome sink failed for %s", outcome.job.key)


class _Waiting(DestinationError):
    """An update whose open has no receipt yet (internal: the job is put back)."""

    def __init__(self) -> None:
        super().__init__("waiting for the open", retryable=True)


__all__ = ["OUTBOX_POLICY", "Outbox", "OutboxWorker"]
