"""A status change as a small saga: intent → SIEM → audit → tags → message.

The steps and what each may do when it fails:

1. **Intent** (:class:`~secbot.domain.record.StatusIntent`, one per alert) is written first.
   If the store is down nothing else happens (the caller tells the person).
2. **SIEM status** is the one step that must succeed. A bulk change may fail part-way (Kibana
   answering 500 on the third of five chunks): the alerts the SIEM confirmed go on to the audit
   at once, the rest are retried (``siem_retries`` times, backing off per ``siem_backoff``). What
   still failed is read again — a timeout may hide a change that landed, and those go on too;
   for the others the intent is dropped and the person is told how many changed and how many
   did not ("closed 740 of 1,000; 260 failed: …"). If the SIEM cannot even be read, their
   intents stay so the next attempt can finish whatever did land.
3. **Audit**, one entry per changed alert, written once per (change id, alert): retried, and
   if it still fails the intents stay and the person is told to try again — a retry finds the
   alerts already in the status, reads their intents and writes the missing entries.
4. **Tags** (``closed_by:<who>``) and 5. the **message edit** are best effort, retried; a
   failure never undoes or hides the change: the person is told what did not happen.
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import structlog

from secbot.domain.record import StatusIntent
from secbot.domain.secrets import redact
from secbot.domain.status import AuditAction, Status
from secbot.resilience.retry import RetryPolicy
from secbot.siem.base import Siem, StatusChange
from secbot.store.base import AuditEntry, Store
from secbot.store.records import AlertRecords

log = structlog.stdlib.get_logger(__name__)

T = TypeVar("T")

TAG_VERB = {
    "closed": "closed_by",
    "acknowledged": "acknowledged_by",
    "open": "reopened_by",
    "in-progress": "in_progress_by",
}


#: Between the saga's own SIEM retries: the client already retried each call within its
#: budget, so these wait a little longer than its first backoff steps.
SIEM_BACKOFF = RetryPolicy(attempts=3, base=0.5, cap=2.0)


@dataclass(frozen=True)
class SideEffects:
    """How hard the best-effort steps try: ``attempts`` tries, each bounded by ``timeout``
    seconds, ``pause`` seconds apart. The audit uses the same bound. SIEM status changes
    that failed (after the SIEM client's own retries) are asked again ``siem_retries`` times,
    waiting per ``siem_backoff`` — only the alerts not confirmed yet."""

    attempts: int = 3
    timeout: float = 15.0
    pause: float = 0.5
    siem_retries: int = 2
    siem_backoff: RetryPolicy = SIEM_BACKOFF


@dataclass(frozen=True)
class Target:
    """One alert a status change acts on, as the SIEM shows it now."""

    uuid: str
    alert_id: str  # the SIEM's id (``_id``), usually the uuid
    current: str  # the SIEM's workflow status (may be one SecBot does not know)
    rule_id: str = ""


@dataclass(frozen=True)
class Request:
    """Who asked for what."""

    status: Status
    reason: str | None
    slack_user: str
    credit: str  # email when known, else the user id


@dataclass
class SagaResult:
    """What the saga did: ``done`` alerts are changed *and* audited; ``failure`` says why
    nothing (or not everything) could be done; ``problems`` are best-effort steps that failed."""

    done: list[StatusIntent] = field(default_factory=list)
    failure: str | None = None
    problems: list[str] = field(default_factory=list)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


async def attempt(
    call: Callable[[], Awaitable[T]], policy: SideEffects, what: str
) -> tuple[T | None, str | None]:
    """``call()`` retried per ``policy``: (result, None), or (None, the last error as text)."""
    error = "not tried"
    for number in range(policy.attempts):
        if number:
            await asyncio.sleep(policy.pause)
        try:
            return await asyncio.wait_for(call(), policy.timeout), None
        except TimeoutError:
            error = f"no answer within {policy.timeout:g}s"
        except Exception as exc:  # best effort: any failure is reported, never raised
            error = redact(f"{type(exc).__name__}: {exc}")
        log.warning("%s failed (attempt %d of %d): %s", what, number + 1, policy.attempts, error)
    return None, error


class StatusSaga:
    """Runs steps 1–4 for a set of alerts; the caller edits the message (step 5)."""

    def __init__(self, siem: Siem, store: Store, records: AlertRecords, policy: SideEffects
                 ) -> None:
        self.siem = siem
        self.store = store
        self.records = records
        self.policy = policy

    async def run(
        self,
        request: Request,
        changing: Sequence[Target],
        finishing: Sequence[tuple[Target, StatusIntent]] = (),
    ) -> SagaResult:
        """Change ``changing`` in the SIEM and audit them; finish ``finishing`` (alerts already
        in the status whose earlier change, begun with that intent, was not audited yet)."""
        result = SagaResult()
        pending = [intent for _, intent in finishing]
        intents = [self._intent(request, t, result.at) for t in changing]
        for intent in intents:
            await self.records.begin_change(intent)
        if intents:
            intents = await self._change_siem(request, changing, intents, result)
        if result.failure is not None and not intents and not pending:
            return result
        ready = [*pending, *intents]
        _, error = await attempt(lambda: self._audit(ready), self.policy, "audit")
        if error is not None:
            result.failure = (
                "the SIEM changed, but SecBot could not write the audit entry "
                f"({error})"
            )
            return result
        result.done = ready
        for intent in ready:
            await self.records.end_change(intent)
        done = {i.uuid for i in ready}
        ids = [t.alert_id for t in (*changing, *(t for t, _ in finishing)) if t.uuid in done]
        await self._tag(ids, request, result)
        return result

    @staticmethod
    def _intent(request: Request, target: Target, at: datetime) -> StatusIntent:
        return StatusIntent(
            change_id=uuidlib.uuid4().hex,
            uuid=target.uuid,
            status=request.status,
            reason=request.reason,
            actor=request.credit,
            slack_user=request.slack_user,
            at=at.isoformat(),
            rule_id=target.rule_id,
        )

    async def _change_siem(
        self,
        request: Request,
        changing: Sequence[Target],
        intents: list[StatusIntent],
        result: SagaResult,
    ) -> list[StatusIntent]:
        """The intents whose alerts this change put in the status (confirmed by the SIEM, or
        found there on a second look); the others' intents are ended or, when the SIEM could
        not be read, kept for the next attempt. ``result.failure`` tells what did not happen."""
        by_id = {t.alert_id: t for t in changing}
        confirmed, pending, error = await self._set_with_retries(request, list(by_id))
        unknown: set[str] = set()
        if pending:
            landed = await self._landed([by_id[i] for i in pending], request.status)
            if landed is None:  # cannot tell: keep these intents for the next attempt
                unknown = {by_id[i].uuid for i in pending}
            else:
                confirmed |= {i for i in pending if by_id[i].uuid in landed}
        done = {by_id[i].uuid for i in confirmed}
        for intent in intents:
            if intent.uuid not in done and intent.uuid not in unknown:
                await self.records.end_change(intent)  # it did not happen: nothing to finish
        failed = len(intents) - len(done)
        if failed:
            result.failure = _failure_text(request.status, len(done), len(intents), failed,
                                           error or "no reason given", bool(unknown))
            log.warning("status change to %s: %d of %d alerts not changed: %s",
                        request.status, failed, len(intents), error)
        return [i for i in intents if i.uuid in done]

    async def _set_with_retries(
        self, request: Request, ids: list[str]
    ) -> tuple[set[str], list[str], str | None]:
        """(alert ids the SIEM confirmed changed, ids still not confirmed, the last error).

        Alerts the SIEM finds already in the status (someone else got there first) or no
        longer has are neither: nobody here changed them, so they are not audited."""
        confirmed: set[str] = set()
        pending, error = ids, None
        for number in range(1 + max(0, self.policy.siem_retries)):
            if number:
                await asyncio.sleep(self.policy.siem_backoff.delay(number - 1) or 0.0)
            change, error, retryable = await self._set_status(request, pending)
            confirmed.update(change.changed)
            pending = list(change.failed)
            if not pending or not retryable:
                break
        return confirmed, pending, error

    async def _set_status(
        self, request: Request, ids: list[str]
    ) -> tuple[StatusChange, str | None, bool]:
        """One bulk call: (what the SIEM says, its error, whether asking again may help)."""
        try:
            change = await self.siem.set_status(
                ids, request.status, reason=request.reason, user=request.slack_user
            )
            return change, change.error, True
        except ValueError as exc:  # a refused closing reason or status: asking again won't help
            return StatusChange(failed=tuple(ids)), redact(f"{type(exc).__name__}: {exc}"), False
        except Exception as exc:  # nothing confirmed: find out what happened before answering
            return StatusChange(failed=tuple(ids)), redact(f"{type(exc).__name__}: {exc}"), True

    async def _landed(self, targets: Sequence[Target], status: Status) -> set[str] | None:
        """The uuids of ``targets`` the SIEM now shows in ``status``; None if it cannot say.
        One bounded bulk read (not one read per alert)."""
        try:
            alerts = await self.siem.get_many([t.alert_id for t in targets])
        except Exception:  # unreachable: unknown, not "unchanged"
            return None
        return {
            t.uuid
            for t in targets
            if (alert := alerts.get(t.alert_id)) is not None and alert.workflow_status == status
        }

    async def _audit(self, intents: Sequence[StatusIntent]) -> None:
        for intent in intents:
            await self.store.append_audit(
                AuditEntry(
                    alert_uuid=intent.uuid,
                    actor=intent.actor,
                    action=AuditAction(intent.status),
                    reason=intent.reason or "",
                    at=datetime.fromisoformat(intent.at),
                    rule_id=intent.rule_id,
                    extra={"slack_user": intent.slack_user},
                ),
                once_key=f"status-change:{intent.change_id}:{intent.uuid}",
            )

    async def _tag(self, ids: Sequence[str], request: Request, result: SagaResult) -> None:
        tag = f"{TAG_VERB.get(request.status, 'changed_by')}:{request.credit}"
        _, error = await attempt(
            lambda: self.siem.add_tags(list(dict.fromkeys(ids)), [tag]), self.policy, "tags"
        )
        if error is not None:
            result.problems.append(f"the SIEM tag `{tag}` could not be added ({error})")



_DONE_VERB = {"closed": "closed", "acknowledged": "acknowledged", "open": "reopened"}


def _failure_text(status: Status, done: int, asked: int, failed: int, error: str,
                  unknown: bool) -> str:
    """What the person hears about a change that did not (completely) happen."""
    if not unknown and not done:
        return f"the SIEM did not make the change ({error})"
    if unknown and not done:
        return (f"the SIEM did not confirm the change ({error}) and could not be asked whether "
                "it happened")
    verb = _DONE_VERB.get(status, f"set to {status}")
    what = "could not be confirmed" if unknown else "failed"
    return f"{verb} {done:,} of {asked:,}; {failed:,} {what}: {error}; react again to retry"
