"""The ``Destination`` contract (DESIGN.md §2, §12): where an escalated alert goes beyond Slack.

A destination is PagerDuty (Events API v2), Jira Cloud (REST v3) or a signed webhook (SOAR,
XSOAR). It never gets called directly by the pipeline or by triage: they put a
:class:`DestinationJob` in the durable outbox (:mod:`secbot.destinations.outbox`), whose worker
calls :meth:`Destination.open` / :meth:`Destination.update` with retries, one destination's
outage delaying only its own jobs. Both calls must be idempotent by alert uuid: the outbox may
repeat a call after a crash (PagerDuty ``dedup_key``, Jira's ``secbot-<uuid>`` label looked up
before creating, the webhook ``Idempotency-Key``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from secbot.domain.errors import SecBotError

#: Why something is sent: a ``page`` entry, a ``ticket`` entry, or a further ``notify`` one.
EscalationKind = Literal["page", "ticket", "notify"]


@dataclass(frozen=True)
class Link:
    """A link shown at the destination (Slack permalink, Kibana)."""

    text: str
    href: str


@dataclass(frozen=True)
class EscalationRequest:
    """What a destination is asked to open for one alert. Plain values only (JSON-able), so the
    outbox can store it and a restarted process can send it."""

    alert_uuid: str
    rule_id: str
    title: str  # the rule's name (or the SIEM rule name)
    summary: str  # one line: title and the key fields
    severity: str  # info | low | medium | high | critical
    kind: EscalationKind
    source: str = "secbot"  # the alert's source (SIEM or an intake source)
    details: Mapping[str, str] = field(default_factory=dict)  # the rule's fields, as text
    links: tuple[Link, ...] = ()
    why: str = ""  # which escalate entry matched, or "by <person> from Slack"


@dataclass(frozen=True)
class StatusUpdate:
    """The alert's new status, to be mirrored at a destination that holds it."""

    alert_uuid: str
    status: str  # open | acknowledged | closed
    reason: str | None
    actor: str  # slack user id, email, or "secbot"
    #: When the change was made (epoch seconds; 0 = unknown, from an older job): a close, a
    #: reopen and a second close are three changes, and a receiver that de-duplicates by
    #: ``Idempotency-Key`` must see the second close; retries of one change keep their key.
    at: float = 0.0


@dataclass(frozen=True)
class Receipt:
    """What a destination answered for :meth:`Destination.open`: its reference (PagerDuty
    dedup key, Jira issue key, the webhook's id), a link when it has one, and the short text
    shown on the Slack message ("🚨 paged", "Jira SEC-123", "sent to xsoar")."""

    destination: str
    reference: str
    text: str
    url: str | None = None


class DestinationError(SecBotError):
    """A destination call failed. ``retryable``: the outbox tries again later (timeouts, 429,
    5xx); otherwise the job fails for good and the thread says why (400, 401, 404, a missing
    Jira transition)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@runtime_checkable
class Destination(Protocol):
    """One place escalations go. Implementations: one module per service in this room."""

    @property
    def name(self) -> str:
        """The name rules use (``page: pagerduty``, ``ticket: jira``, a webhook's name)."""
        ...

    async def open(self, request: EscalationRequest) -> Receipt:
        """Open (page, create the issue, post the webhook) — idempotent by alert uuid.
        Raises :class:`DestinationError`."""
        ...

    async def update(self, update: StatusUpdate, receipt: Receipt) -> None:
        """Mirror a status change (acknowledge / resolve the page, transition the issue, post
        the status) for an alert opened earlier with ``receipt``. Raises
        :class:`DestinationError`."""
        ...
