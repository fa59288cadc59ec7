"""Triage statuses and closing reasons: the vocabulary shared by the SIEM, Slack and the audit."""

from __future__ import annotations

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
