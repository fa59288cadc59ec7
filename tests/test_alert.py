"""The alert model reads real Elastic Security documents as they are."""

from __future__ import annotations

from typing import Any

import pytest

from secbot.domain.alert import Alert, lookup, parse_timestamp


def test_dotted_keys_and_nested_objects_resolve_alike(sample_alerts: list[dict[str, Any]]) -> None:
    endpoint = Alert.from_hit(sample_alerts[2])
    assert endpoint.rule_name == "Endpoint Security"  # literal dotted key
    assert endpoint.get_field("user.name") == "user1"  # nested object
    assert endpoint.get_field("event.category") == "malware"
    assert endpoint.get_field("file.hash.sha256") == "fake file sha256"


def test_arrays_are_kept(sample_alerts: list[dict[str, Any]]) -> None:
    assert Alert.from_hit(sample_alerts[0]).get_field("host.ip") == "11.200.0.194"
    ips = Alert.from_hit(sample_alerts[2]).get_field("host.ip")
    assert list(ips) == ["10.249.37.72", "10.150.39.243", "10.186.17.170"]


def test_identity_comes_from_the_hit(sample_alerts: list[dict[str, Any]]) -> None:
    hit = sample_alerts[0]
    alert = Alert.from_hit(hit)
    assert alert.id == hit["_id"] == alert.uuid
    assert alert.index == hit["_index"]
    assert alert.timestamp is not None and alert.timestamp.year == 2022


def test_literal_key_wins_then_nested_path_is_tried() -> None:
    source = {
        "host.name": "literal",
        "host": {"name": "nested", "ip": "10.0.0.1"},
        "a": {"b.c": {"d": 1}},
    }
    assert lookup(source, "host.name") == "literal"
    assert lookup(source, "host.ip") == "10.0.0.1"
    assert lookup(source, "a.b.c.d") == 1
    assert lookup(source, "missing.field", "dflt") == "dflt"


def test_alert_is_read_only_and_source_is_not_shared() -> None:
    source: dict[str, Any] = {"user": {"email": "a@example.com"}, "tags": ["x"]}
    alert = Alert.from_hit(source)
    with pytest.raises(TypeError):
        alert.frozen["user"]["email"] = "evil"  # type: ignore[index]
    source["user"]["email"] = "changed later"
    assert alert.get_field("user.email") == "a@example.com"
    assert alert.to_json()["tags"] == ["x"]


@pytest.mark.parametrize(
    ("value", "year"),
    [
        ("2023-04-27T11:03:57.906Z", 2023),
        ("2023-04-27T11:03:57+02:00", 2023),
        (1_700_000_000_000, 2023),
        ("not a date", None),
        (None, None),
    ],
)
def test_timestamps(value: Any, year: int | None) -> None:
    parsed = parse_timestamp(value)
    assert (parsed.year if parsed else None) == year
    if parsed:
        assert parsed.tzinfo is not None
