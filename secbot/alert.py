"""The alert as Elastic Security stores it, read-only.

Real alert ``_source`` documents mix literal dotted keys (``"kibana.alert.rule.name"``) with
nested ECS objects (``"host": {"name": ...}``), sometimes both for one prefix. :func:`lookup`
resolves a dotted field name through either form; arrays are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

_MISSING: Any = object()
_FAST_MAPPINGS = (dict, MappingProxyType)


def _lookup(node: Any, parts: tuple[str, ...]) -> Any:
    """Resolve ``parts`` in ``node`` trying the longest literal dotted key first at each level."""
    if not parts:
        return node
    # type() first: the ABC isinstance check dominates lookups on the hot path.
    if type(node) not in _FAST_MAPPINGS and not isinstance(node, Mapping):
        return _MISSING
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in node:
            found = _lookup(node[key], parts[cut:])
            if found is not _MISSING:
                return found
    return _MISSING


def lookup(source: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Value of the dotted field ``name`` in ``source`` (literal dotted keys or nested objects)."""
    found = _lookup(source, tuple(name.split(".")))
    return default if found is _MISSING else found


def has_field(source: Mapping[str, Any], name: str) -> bool:
    return _lookup(source, tuple(name.split("."))) is not _MISSING


def freeze(value: Any) -> Any:
    """A deep read-only copy: mappings become ``MappingProxyType``, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Inverse of :func:`freeze`, for JSON serialisation."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 (``Z`` or offset) or epoch millis → aware UTC datetime; None if unparseable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, eq=False)
class Alert(Mapping[str, Any]):
    """One detection alert: its ``_source`` (frozen), ``_id`` and ``_index``.

    It is a read-only ``Mapping`` over the top-level keys of ``_source``; use :meth:`get_field`
    for dotted names. ``uuid`` is ``kibana.alert.uuid`` (falling back to ``_id``).
    """

    source: Mapping[str, Any]
    id: str = ""
    index: str = ""
    _frozen: Mapping[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_frozen", freeze(self.source))
        if not self.id:
            object.__setattr__(self, "id", str(lookup(self.source, "kibana.alert.uuid", "") or ""))

    @classmethod
    def from_hit(cls, hit: Mapping[str, Any]) -> Alert:
        """From an Elasticsearch search hit, or a bare ``_source`` (detected by ``_source``)."""
        if "_source" in hit:
            return cls(
                source=hit["_source"], id=str(hit.get("_id", "")), index=str(hit.get("_index", ""))
            )
        return cls(source=hit)

    # Mapping protocol over the frozen source -------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._frozen[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._frozen)

    def __len__(self) -> int:
        return len(self._frozen)

    @property
    def frozen(self) -> Mapping[str, Any]:
        """The whole ``_source`` as a deep read-only mapping (what expressions see)."""
        return self._frozen

    def get_field(self, name: str, default: Any = None) -> Any:
        """Dotted-name lookup through literal dotted keys and nested objects (frozen values)."""
        return lookup(self._frozen, name, default)

    def has_field(self, name: str) -> bool:
        return has_field(self._frozen, name)

    # Well-known fields ----------------------------------------------------------------
    @property
    def uuid(self) -> str:
        return str(self.get_field("kibana.alert.uuid") or self.id)

    @property
    def timestamp(self) -> datetime | None:
        return parse_timestamp(self.get_field("@timestamp"))

    @property
    def rule_name(self) -> str:
        return str(self.get_field("kibana.alert.rule.name") or "")

    @property
    def rule_id(self) -> str:
        return str(self.get_field("kibana.alert.rule.rule_id") or "")

    @property
    def severity(self) -> str:
        return str(
            self.get_field("kibana.alert.severity")
            or self.get_field("kibana.alert.rule.severity")
            or ""
        )

    @property
    def workflow_status(self) -> str:
        return str(self.get_field("kibana.alert.workflow_status") or "open")

    @property
    def reason(self) -> str:
        return str(self.get_field("kibana.alert.reason") or "")

    def to_json(self) -> dict[str, Any]:
        """The ``_source`` as plain JSON-able data."""
        result: dict[str, Any] = thaw(self._frozen)
        return result
