"""Shared test helpers: the real sample alerts and a factory for synthetic alert documents."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def load_sample_alerts() -> list[dict[str, Any]]:
    """The es_archiver sample alerts as ES hits (``_index``, ``_id``, ``_source``), file order."""
    hits = []
    for path in sorted((FIXTURES / "alerts").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))["value"]
        hits.append({"_index": record["index"], "_id": record["id"], "_source": record["source"]})
    return hits


@pytest.fixture
def sample_alerts() -> list[dict[str, Any]]:
    """Real Elastic Security alert documents (public Kibana test fixtures)."""
    return load_sample_alerts()


def make_alert_source(
    uuid: str,
    timestamp: datetime | str,
    *,
    status: str = "open",
    building_block: bool = False,
    rule_name: str = "Test rule",
    **fields: Any,
) -> dict[str, Any]:
    """An alert ``_source`` in the mixed dotted/nested shape real alerts have.

    Extra ``fields`` use dotted names and are stored as literal dotted keys, except that
    a ``user_email`` keyword is stored nested (``user: {email: ...}``) like ECS fields.
    """
    stamp = (
        timestamp
        if isinstance(timestamp, str)
        else (timestamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    )
    source: dict[str, Any] = {
        "@timestamp": stamp,
        "kibana.alert.uuid": uuid,
        "kibana.alert.workflow_status": status,
        "kibana.alert.rule.name": rule_name,
        "kibana.alert.severity": "low",
        "event.kind": "signal",
    }
    if building_block:
        source["kibana.alert.building_block_type"] = "default"
    email = fields.pop("user_email", None)
    if email is not None:
        source["user"] = {"email": email, "name": email.split("@")[0]}
    source.update(fields)
    return source


@pytest.fixture
def make_alert() -> Callable[..., dict[str, Any]]:
    """Factory: ``make_alert(uuid, timestamp, status=..., building_block=..., **fields)``."""
    return make_alert_source
