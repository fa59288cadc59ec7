"""Intake sources (DESIGN.md §11): what a pushed alert must look like, per ``<source>``.

``elastic`` takes Elastic Security alert documents as they are (``kibana.alert.uuid``
required). Any other source is a mapping file ``sources/<name>.yaml`` that says which of the
sender's fields are the id, time, title and severity; its alerts are turned into documents
with the same ``kibana.alert.*`` fields an Elastic alert has (``kibana.alert.uuid`` is
``<source>:<id>``, so two sources can never collide), plus ``secbot.source`` for
``match.source`` in rules. Validation happens before anything is stored, so the listener can
answer 400 naming the first bad alert and field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from secbot.domain.alert import lookup, parse_timestamp
from secbot.domain.errors import SecBotError
from secbot.domain.source import SIEM_SOURCE as ELASTIC
from secbot.domain.source import SOURCE_FIELD, mapped_uuid

#: The field every pushed (and mapped) alert carries: which intake source it came from.
SEVERITIES = frozenset({"low", "medium", "high", "critical"})
_MAPPING_KEYS = frozenset(
    {"name", "id_field", "time_field", "title_field", "severity_field", "severity_map"}
)


class AlertRejected(SecBotError):
    """One alert of a request is unusable: ``field`` names what is wrong (for the 400)."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


class SourceLoadError(SecBotError):
    """A mapping file is invalid; the message is ``path:line: problem`` per error."""


class IntakeSource(Protocol):
    """Turns one pushed JSON object into the alert document SecBot stores and handles."""

    @property
    def name(self) -> str: ...

    def document(self, raw: Any, received: datetime) -> dict[str, Any]:
        """The alert ``_source`` to store, or :class:`AlertRejected` naming the field."""
        ...


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = lookup(raw, name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        text = str(value).strip()
        return text or None
    return None


@dataclass(frozen=True)
class ElasticSource:
    """Elastic Security alert documents, e.g. from a Kibana Webhook connector rule action.

    A bare ``_source`` or a search hit (``{"_id", "_source"}``) is accepted; the uuid is what
    the poller sees too, so the hand-off's post claim makes push + poll one delivery.
    """

    name: str = ELASTIC

    def document(self, raw: Any, received: datetime) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise AlertRejected("(alert)", "must be a JSON object")
        inner = raw.get("_source")
        source: Mapping[str, Any] = inner if isinstance(inner, Mapping) else raw
        if _text(source, "kibana.alert.uuid") is None:
            raise AlertRejected("kibana.alert.uuid", "required (a non-empty string)")
        doc = dict(source)
        # Always the SIEM's: a pushed document naming another source must not pass for one.
        doc[SOURCE_FIELD] = ELASTIC
        return doc


@dataclass(frozen=True)
class MappedSource:
    """A source described by ``sources/<name>.yaml`` (DESIGN.md §11)."""

    name: str
    id_field: str
    title_field: str | None = None
    time_field: str | None = None
    severity_field: str | None = None
    severity_map: Mapping[str, str] = field(default_factory=dict)

    def document(self, raw: Any, received: datetime) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise AlertRejected("(alert)", "must be a JSON object")
        ident = _text(raw, self.id_field)
        if ident is None:
            raise AlertRejected(self.id_field, "required (the alert id of this source)")
        stamp = received
        if self.time_field is not None:
            value = lookup(raw, self.time_field)
            parsed = parse_timestamp(value) if value is not None else None
            if value is not None and parsed is None:
                raise AlertRejected(self.time_field, "not an ISO-8601 time or epoch millis")
            stamp = parsed or received
        doc = dict(raw)
        doc.update({
            "@timestamp": stamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "kibana.alert.uuid": mapped_uuid(self.name, ident),
            "kibana.alert.workflow_status": "open",
            "kibana.alert.rule.name": self._title(raw),
            "kibana.alert.severity": self._severity(raw),
            SOURCE_FIELD: self.name,
        })
        return doc

    def _title(self, raw: Mapping[str, Any]) -> str:
        title = _text(raw, self.title_field) if self.title_field else None
        return title or self.name

    def _severity(self, raw: Mapping[str, Any]) -> str:
        value = _text(raw, self.severity_field) if self.severity_field else None
        if value is None:
            return "medium"
        mapped = self.severity_map.get(value, value).lower()
        # An unknown severity is shown as the sender said it, never dropped.
        return mapped


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _key_nodes(root: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(root, yaml.MappingNode):
        return {}
    return {str(k.value): v for k, v in root.value if isinstance(k, yaml.ScalarNode)}


def _check_mapping(path: Path, data: Any, nodes: dict[str, yaml.Node]) -> list[str]:
    """Problems of one mapping file, each ``path:line: message``."""
    if not isinstance(data, dict):
        return [f"{path}:1: a source mapping must be a YAML mapping"]
    errors = [f"{path}:{_line(nodes.get(str(k)))}: unknown key {k!r}"
              for k in data if k not in _MAPPING_KEYS]
    if data.get("name") != path.stem:
        errors.append(f"{path}:{_line(nodes.get('name'))}: name must equal the file stem "
                      f"{path.stem!r}")
    if path.stem == ELASTIC:
        errors.append(f"{path}:1: 'elastic' is the built-in source and cannot be mapped")
    for key in ("id_field", "time_field", "title_field", "severity_field"):
        value = data.get(key)
        if (key == "id_field" or value is not None) and not (isinstance(value, str) and value):
            errors.append(f"{path}:{_line(nodes.get(key))}: {key} must be a field name")
    severity_map = data.get("severity_map", {})
    if not isinstance(severity_map, dict):
        errors.append(f"{path}:{_line(nodes.get('severity_map'))}: severity_map must be a "
                      "mapping")
    else:
        for key, value in severity_map.items():
            if str(value).lower() not in SEVERITIES:
                errors.append(f"{path}:{_line(nodes.get('severity_map'))}: severity_map "
                              f"{key!r}: {value!r} is not one of {sorted(SEVERITIES)}")
    return errors


def load_source(path: Path) -> MappedSource:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SourceLoadError(f"{path}:{mark.line + 1 if mark else 1}: invalid YAML") from None
    errors = _check_mapping(path, data, _key_nodes(root) if root is not None else {})
    if errors:
        raise SourceLoadError("\n".join(errors))
    return MappedSource(
        name=data["name"],
        id_field=data["id_field"],
        title_field=data.get("title_field"),
        time_field=data.get("time_field"),
        severity_field=data.get("severity_field"),
        severity_map={str(k): str(v).lower() for k, v in (data.get("severity_map") or {}).items()},
    )


def load_sources(directory: Path | None) -> dict[str, IntakeSource]:
    """``elastic`` plus every ``<directory>/*.yaml``; all errors at once (:class:`SourceLoadError`).

    A missing directory means no mapped sources (``elastic`` alone).
    """
    sources: dict[str, IntakeSource] = {ELASTIC: ElasticSource()}
    if directory is None or not directory.is_dir():
        return sources
    errors: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            mapped = load_source(path)
        except SourceLoadError as exc:
            errors.append(str(exc))
            continue
        sources[mapped.name] = mapped
    if errors:
        raise SourceLoadError("\n".join(errors))
    return sources


__all__ = [
    "ELASTIC",
    "SOURCE_FIELD",
    "AlertRejected",
    "ElasticSource",
    "IntakeSource",
    "MappedSource",
    "SourceLoadError",
    "load_source",
    "load_sources",
]
