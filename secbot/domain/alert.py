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

#: Deepest nesting kept by :func:`freeze`. Real alerts nest a few levels (Elasticsearch maps 20
#: at most by default); a hostile document nested thousands deep would otherwise make every
#: recursive consumer (freeze, thaw, ``json.dumps``, ``repr``, rendering) hit RecursionError.
MAX_NESTING = 64
#: What stands in for a subtree deeper than :data:`MAX_NESTING`.
TOO_DEEP = f"[nested deeper than {MAX_NESTING} levels: not shown]"
#: Longest dotted name :func:`lookup` resolves (ECS names are far shorter). Resolution tries
#: every split of the name at each level, so an unbounded name (e.g. built from alert data in
#: ``lookup(alert, …)``) would cost quadratic time in one uninterruptible call.
MAX_NAME_LENGTH = 1_024
MAX_NAME_PARTS = 128


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


def _parts(name: str) -> tuple[str, ...] | None:
    if len(name) > MAX_NAME_LENGTH or name.count(".") >= MAX_NAME_PARTS:
        return None
    return tuple(name.split("."))


def lookup(source: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Value of the dotted field ``name`` in ``source`` (literal dotted keys or nested objects).

    Names longer than :data:`MAX_NAME_LENGTH` or with more than :data:`MAX_NAME_PARTS` parts
    are never found.
    """
    parts = _parts(name)
    found = _MISSING if parts is None else _lookup(source, parts)
    return default if found is _MISSING else found


def has_field(source: Mapping[str, Any], name: str) -> bool:
    parts = _parts(name)
    return parts is not None and _lookup(source, parts) is not _MISSING


# Exact-type checks first: the ABC isinstance check dominates on 100k-item alerts.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_mapping(value: Any) -> bool:
    return type(value) in _FAST_MAPPINGS or isinstance(value, Mapping)


def freeze(value: Any, _depth: int = 0) -> Any:
    """A deep read-only copy: mappings become ``MappingProxyType``, lists become tuples.

    Collections nested deeper than :data:`MAX_NESTING` are replaced by :data:`TOO_DEEP`.
    """
    if type(value) in _SCALARS:
        return value
    if _is_mapping(value):
        if _depth >= MAX_NESTING:
            return TOO_DEEP
        return MappingProxyType({str(k): freeze(v, _depth + 1) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        if _depth >= MAX_NESTING:
            return TOO_DEEP
        return tuple([freeze(v, _depth + 1) for v in value])
    return value


def thaw(value: Any, _depth: int = 0) -> Any:
    """Inverse of :func:`freeze`, for JSON serialisation (same nesting bound)."""
    if type(value) in _SCALARS:
        return value
    if _is_mapping(value):
        if _depth >= MAX_NESTING:
            return TOO_DEEP
        return {k: thaw(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, tuple):
        if _depth >= MAX_NESTING:
            return TOO_DEEP
        return [thaw(v, _depth + 1) for v in value]
    return value


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 (``Z`` or offset) or epoch millis → aware UTC datetime; None if unparseable."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        if not isinstance(value, str) or not value:
            return None
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        parsed = datetime.fromisoformat(text)
        # Normalised to UTC here, so comparing two stamps can never overflow later.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):  # garbage, NaN, years outside 1..9999
        return None


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
            # From the frozen copy: str() of the raw value recurses once per nesting level.
            object.__setattr__(self, "id", str(lookup(self._frozen, "kibana.alert.uuid", "") or ""))

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
