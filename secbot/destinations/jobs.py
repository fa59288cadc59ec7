"""The outbox's records: a job (one destination call to make), its outcome, a destination's
state. Plain frozen values with a JSON codec, so a job written by one process is read back by
another after a crash."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from secbot.destinations.base import EscalationRequest, Link, Receipt, StatusUpdate

JobAction = Literal["open", "update"]


@dataclass(frozen=True)
class OutboxJob:
    """One call to make: ``open`` with ``request``, or ``update`` with ``update``."""

    destination: str
    alert_uuid: str
    action: JobAction
    created: float  # epoch seconds it was enqueued
    request: EscalationRequest | None = None
    update: StatusUpdate | None = None
    attempts: int = 0  # claims so far (a crash mid-call counts)

    @property
    def key(self) -> str:
        """Idempotency: one open per (destination, alert); one pending update per status."""
        what = "open" if self.update is None else f"status:{self.update.status}"
        return f"{self.destination}|{self.alert_uuid}|{what}"

    @property
    def open_key(self) -> str:
        return f"{self.destination}|{self.alert_uuid}|open"


def encode_job(job: OutboxJob) -> str:
    body: dict[str, Any] = {"destination": job.destination, "alert_uuid": job.alert_uuid,
                            "action": job.action, "created": job.created}
    if job.request is not None:
        body["request"] = {**asdict(job.request), "details": dict(job.request.details)}
    if job.update is not None:
        body["update"] = asdict(job.update)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def decode_job(text: str, attempts: int = 0) -> OutboxJob:
    """The job ``encode_job`` wrote (ValueError/KeyError/TypeError when it is not one)."""
    body = json.loads(text)
    request = update = None
    if body.get("request") is not None:
        raw = dict(body["request"])
        raw["links"] = tuple(Link(**link) for link in raw.get("links", ()))
        raw["details"] = {str(k): str(v) for k, v in raw.get("details", {}).items()}
        request = EscalationRequest(**raw)
    if body.get("update") is not None:
        update = StatusUpdate(**body["update"])
    action: JobAction = "open" if body["action"] == "open" else "update"
    return OutboxJob(str(body["destination"]), str(body["alert_uuid"]), action,
                     float(body["created"]), request, update, attempts)


def encode_receipt(receipt: Receipt) -> str:
    return json.dumps(asdict(receipt), separators=(",", ":"), ensure_ascii=False)


def decode_receipt(text: str) -> Receipt:
    return Receipt(**json.loads(text))


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: done (``receipt``) or failed for good (``error``). ``receipts`` are
    all the alert's receipts now, for showing where it went."""

    job: OutboxJob
    receipt: Receipt | None
    error: str | None
    receipts: Mapping[str, Receipt] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class OutcomeSink(Protocol):
    """Told about every finished job (the runtime edits the message, posts a thread line on a
    permanent failure, audits). It may be told twice after a crash; it must not raise."""

    def __call__(self, outcome: JobOutcome) -> Awaitable[None]: ...


@dataclass(frozen=True)
class DestinationState:
    """What ``/healthz`` and ``/metrics`` show for one destination."""

    name: str
    queued: int
    failing: bool
    last_error: str | None
    oldest_age: float  # seconds the oldest queued job has waited (0 when none)
    sent: int = 0
    failed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["DestinationState", "JobAction", "JobOutcome", "OutboxJob", "OutcomeSink",
           "decode_job", "decode_receipt", "encode_job", "encode_receipt"]
