"""Where an alert came from: the SIEM (polled, or pushed by its rule action) or a mapped source.

A mapped source's alert is written by the intake with ``secbot.source: <name>`` AND the uuid
``<name>:<id>`` (:mod:`secbot.intake.sources`). The field alone is alert content — a SIEM alert
copies event fields, so anyone who can put ``secbot.source`` into an event could otherwise make
a SIEM alert match (and be auto-closed by) another source's rules. The uuid prefix is not
content: Kibana writes SIEM uuids, and the intake writes mapped ones. Both must agree.
"""

from __future__ import annotations

from secbot.domain.alert import Alert

#: The field the intake writes the source name into.
SOURCE_FIELD = "secbot.source"
#: The SIEM's alerts, polled or pushed by an Elastic rule action (``/v1/alerts/elastic``).
SIEM_SOURCE = "elastic"


def mapped_uuid(source: str, ident: str) -> str:
    """The uuid of alert ``ident`` of mapped source ``source``: never collides across sources."""
    return f"{source}:{ident}"


def alert_source(alert: Alert) -> str:
    """The source an alert came from; the SIEM unless its field and its uuid both say another."""
    value = alert.get_field(SOURCE_FIELD)
    if (isinstance(value, str) and value and value != SIEM_SOURCE
            and alert.uuid.startswith(mapped_uuid(value, ""))):
        return value
    return SIEM_SOURCE
