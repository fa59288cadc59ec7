"""Triage statuses and closing reasons: the vocabulary shared by the SIEM, Slack and the audit."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Status = Literal["open", "acknowledged", "closed", "in-progress"]
STATUSES: tuple[Status, ...] = ("open", "acknowledged", "closed", "in-progress")

#: Kibana's fixed list of closing reasons (ReasonEnum).
CLOSING_REASONS = (
    "false_positive",
    "issue_resolved",
    "acceptable_risk",
    "expected_activity",
    "low_severity",
    "duplicate",
    "investigation_required",
)


class AuditAction(StrEnum):
    """What an audit entry records: the status the alert was changed to.

    A ``StrEnum`` whose values are the :data:`Status` strings, so the audit stream and
    ``secbot audit --json`` keep printing ``"what": "closed"`` (DESIGN.md §3).
    """

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"
    IN_PROGRESS = "in-progress"
