"""What the pipeline decided for one alert: a value, easy to test, print and serialise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secbot.domain.alert import Alert, thaw
from secbot.domain.enrichment import Enrichment
from secbot.domain.escalation import Escalated
from secbot.domain.group import GroupKey
from secbot.domain.record import AlertRecord


@dataclass(frozen=True)
class Decision:
    """The outcome for one alert.

    ``post`` is True for a new top-level Slack message; a duplicate inside its rule's dedup
    window has ``post`` False and ``duplicate_of`` set, and is threaded as new context under
    the first alert's message. Nothing is ever dropped: an unmatched alert goes to the default
    channel with the generic template.
    """

    alert_uuid: str
    rule_id: str | None
    channel: str | None
    post: bool
    auto_close: bool
    close_reason: str | None
    explanation: str
    severity: str
    duplicate_of: str | None = None
    duplicate_count: int = 1
    notes: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    enrichments: Mapping[str, Enrichment] = field(default_factory=dict)
    message: Mapping[str, Any] = field(default_factory=dict)
    group: GroupKey | None = None  # the rule's ``group.by`` key for this alert (issue 11)
    #: the ``escalate`` entry that applied (issue 13): its severity and channel are already
    #: in ``severity`` / ``channel``; the destinations read its ``destinations``
    escalation: Escalated | None = None
    #: the rule would auto-close but was held (shadow mode, expired, demoted: ``held`` says
    #: which; issue 15): the alert stays open and people's later actions are compared to it
    shadow: bool = False
    held: str | None = None

    @property
    def matched(self) -> bool:
        return self.rule_id is not None

    @property
    def deduplicated(self) -> bool:
        return self.duplicate_of is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_uuid": self.alert_uuid,
            "rule_id": self.rule_id,
            "matched": self.matched,
            "channel": self.channel,
            "post": self.post,
            "deduplicated": self.deduplicated,
            "duplicate_of": self.duplicate_of,
            "duplicate_count": self.duplicate_count,
            "auto_close": self.auto_close,
            "close_reason": self.close_reason,
            "explanation": self.explanation,
            "severity": self.severity,
            "notes": list(self.notes),
            "fields": thaw(self.fields),
            "enrichments": {
                name: (
                    {"available": True, "data": thaw(e.data)}
                    if e.available
                    else {"available": False, "reason": e.error}
                )
                for name, e in self.enrichments.items()
            },
            "message": thaw(self.message),
            "escalation": self.escalation.to_json() if self.escalation else None,
            "shadow": self.shadow,
            "held": self.held,
        }


def alert_record(alert: Alert, decision: Decision) -> AlertRecord:
    """What SecBot keeps about a decided alert for thread commands and status changes: the
    rule's fields plus identity and outcome (the publisher attaches where it was posted)."""
    return AlertRecord(
        uuid=alert.uuid,
        id=alert.id,
        index=alert.index,
        rule_id=decision.rule_id,
        rule_name=alert.rule_name,
        severity=decision.severity,
        timestamp=thaw(alert.get_field("@timestamp")),  # any JSON value, even an object
        fields=thaw(decision.fields),
        channel=decision.channel,
        auto_close=decision.auto_close,
        close_reason=decision.close_reason,
        duplicate_of=decision.duplicate_of,
        status="open",  # closing happens after the post (intake.handoff), if at all
        escalation=decision.escalation,
        shadow=decision.shadow,
    )
