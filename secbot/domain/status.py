"""Triage statuses and closing reasons: the vocabulary shared by the SIEM, Slack and the audit."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Status = Literal["open", "acknowledged", "closed", "in-progress"]
STATUSES: tuple[Status, ...] = ("open", "acknowledged", "closed", "in-progress")

#: The closing reasons Kibana 9.2+ documents for ``signals/status`` (older versions ignore a
#: reason). Kibana also takes a custom reason of 1–1024 characters, but only one listed in its
#: advanced setting ``securitySolution:detectionsCloseReasons``; any other is refused.
KIBANA_REASONS = (
    "false_positive",
    "duplicate",
    "true_positive",
    "benign_positive",
    "automated_closure",
    "other",
)
#: Names SecBot offered before 9.2 was documented; kept accepted in reaction maps and the
#: ``close`` command so existing configurations keep loading (a Kibana that refuses one says
#: so, and the change is reported as failed, never made silently).
OLDER_REASONS = (
    "issue_resolved",
    "acceptable_risk",
    "expected_activity",
    "low_severity",
    "investigation_required",
)
#: The named reasons: documented first.
CLOSING_REASONS = KIBANA_REASONS + OLDER_REASONS

#: Longest custom closing reason Kibana accepts.
MAX_REASON_LENGTH = 1024
#: ✅ and a bare ``close``: looked at, not a threat.
DEFAULT_CLOSE_REASON = "benign_positive"
#: An auto-close whose rule names no reason.
AUTO_CLOSE_REASON = "automated_closure"


def check_reason(reason: str) -> str:
    """``reason`` if Kibana's body schema can take it (1–1024 characters, not blank).

    Whether Kibana then *accepts* a custom one depends on its advanced settings, which SecBot
    cannot read; that refusal comes back from the SIEM as an error.
    """
    if not reason.strip():
        raise ValueError("a closing reason may not be empty")
    if len(reason) > MAX_REASON_LENGTH:
        raise ValueError(
            f"a closing reason has at most {MAX_REASON_LENGTH} characters (got {len(reason)})"
        )
    return reason


class AuditAction(StrEnum):
    """What an audit entry records: the status the alert was changed to.

    A ``StrEnum`` whose values are the :data:`Status` strings, so the audit stream and
    ``secbot audit --json`` keep printing ``"what": "closed"`` (DESIGN.md §3).
    """

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"
    IN_PROGRESS = "in-progress"
    # Asking the person and response actions (issue 14): not statuses, steps around them.
    ASKED = "asked"  # the person was sent the question (or could not be found: ``extra``)
    ANSWERED = "answered"  # the person (or silence: ``extra.answer`` = timeout) answered
    REFUSED = "refused"  # a click that did not count: someone else, replayed, stale
    PROPOSED = "proposed"  # a response action awaits approval
    APPROVED = "approved"  # by a person, or by the night window (``extra.auto``)
    DENIED = "denied"
    RESPONDED = "responded"  # the response API accepted the action (or the dry run said so)
    RESPONSE_FAILED = "response_failed"
    UNDONE = "undone"  # released / unsuspended / the key enabled again
    # Destinations (issue 13): where an alert went beyond Slack, ``extra.destination`` names it.
    ESCALATED = "escalated"  # a destination took it (page, issue, webhook): ``extra.reference``
    DESTINATION_UPDATED = "destination_updated"  # a status mirrored there (``extra.status``)
    ESCALATION_FAILED = "escalation_failed"  # refused for good: ``reason`` says why
