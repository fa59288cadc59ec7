"""Search-time ``runtime_mappings`` for the Elasticsearch emulator (read by aggregations).

A runtime field is ``{"type": "long"|"double"|"keyword"|"boolean"|"date", "script": {"source":
…}}`` (or the script as a bare string). Its script runs per document in the Painless subset
(:mod:`secbot_emulators.painless`) with ES's runtime-field variables:

- ``doc``: the document's fields as doc values — ``doc.containsKey('f')``, ``doc['f'].size()``,
  ``doc['f'].empty``, ``doc['f'].value`` (the first value, sorted as doc values are; an error
  when there is none, as ES raises), ``doc['f'][i]``; a ``date`` field's value answers
  ``toInstant()``, ``toEpochMilli()`` and ``getMillis()``.
- ``emit(value)``: one value of the field (called zero or more times); ``params``.

Only what the emulator maps as a field is in ``doc``: every leaf of the document, dates for
:data:`~secbot_emulators.elastic_query.DATE_FIELDS`. Here, runtime fields are visible to
aggregations (``field`` of ``terms``/``percentiles``…); queries on them are not supported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secbot_emulators.elastic_query import DATE_FIELDS, QueryError, Record, field_values
from secbot_emulators.elastic_values import epoch_millis, parse_date
from secbot_emulators.painless import compile_script
from secbot_emulators.painless_nodes import HostObject, PainlessError, Script

_TYPES = {"long", "double", "keyword", "boolean", "date"}


class _Instant(HostObject):
    """A ``date`` doc value (ZonedDateTime / Instant): epoch milliseconds underneath."""

    def __init__(self, millis: int) -> None:
        self.millis = millis

    def painless_get(self, key: Any) -> Any:
        if key == "millis":
            return self.millis
        return super().painless_get(key)

    def painless_call(self, method: str, args: list[Any]) -> Any:
        if method in ("toInstant",) and not args:
            return self
        if method in ("toEpochMilli", "getMillis") and not args:
            return self.millis
        return super().painless_call(method, args)


class _DocValues(HostObject):
    """``doc['field']``: the field's values, sorted as Lucene keeps doc values."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def painless_get(self, key: Any) -> Any:
        if key == "value":
            if not self.values:
                raise PainlessError("runtime error", "A document doesn't have a value for a "
                                    "field! Use doc[<field>].size()==0 to check if a document "
                                    "is missing a field!")
            return self.values[0]
        if key == "empty":
            return not self.values
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(self.values):
            return self.values[key]
        return super().painless_get(key)

    def painless_call(self, method: str, args: list[Any]) -> Any:
        if method == "size" and not args:
            return len(self.values)
        if method == "isEmpty" and not args:
            return not self.values
        if method == "getValue" and not args:
            return self.painless_get("value")
        return super().painless_call(method, args)


def _leaves(node: Any, prefix: str, out: dict[str, list[Any]]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            _leaves(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(node, list):
        for item in node:
            _leaves(item, prefix, out)
    elif node is not None:
        out.setdefault(prefix, []).append(node)


def _doc(record: Record) -> dict[str, _DocValues]:
    fields: dict[str, list[Any]] = {}
    _leaves(record.source, "", fields)
    doc: dict[str, _DocValues] = {}
    for name, values in fields.items():
        if name in DATE_FIELDS:
            dates = [parse_date(v) if isinstance(v, str) else None for v in values]
            millis = [epoch_millis(d) for d in dates if d is not None]
            millis += [int(v) for v in values if isinstance(v, int) and not isinstance(v, bool)]
            doc[name] = _DocValues([_Instant(m) for m in sorted(millis)])
        else:
            doc[name] = _DocValues(sorted(values, key=lambda v: (str(type(v)), v)))
    return doc


class RuntimeFields:
    """The runtime fields of one search; :meth:`values` reads any field, runtime or not."""

    def __init__(self, mappings: Any) -> None:
        self._fields: dict[str, tuple[str, Script, Mapping[str, Any]]] = {}
        self._cache: dict[tuple[int, str], list[Any]] = {}
        if mappings is None:
            return
        if not isinstance(mappings, Mapping):
            raise QueryError("parsing_exception", "[runtime_mappings] must be an object")
        for name, spec in mappings.items():
            self._fields[str(name)] = _compile(str(name), spec)

    def values(self, record: Record, name: str) -> list[Any]:
        """Every value of ``name`` in ``record``: emitted by its script, else indexed."""
        runtime = self._fields.get(name)
        if runtime is None:
            return field_values(record, name)
        key = (id(record), name)
        if key not in self._cache:
            self._cache[key] = _emit(name, runtime, record)
        return self._cache[key]


def _compile(name: str, spec: Any) -> tuple[str, Script, Mapping[str, Any]]:
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if kind not in _TYPES:
        raise QueryError("mapper_parsing_exception", f"No handler for type [{kind}] declared "
                         f"on runtime field [{name}]")
    script = spec.get("script")
    source = script.get("source") if isinstance(script, Mapping) else script
    if not isinstance(source, str):
        raise QueryError("mapper_parsing_exception", f"runtime field [{name}] needs a script "
                         "here (the emulator has no _source fallback)")
    params = script.get("params", {}) if isinstance(script, Mapping) else {}
    try:
        return str(kind), compile_script(source), params
    except PainlessError as exc:
        raise QueryError("script_exception", f"compile error: {exc.message}") from exc


def _emit(name: str, runtime: tuple[str, Script, Mapping[str, Any]], record: Record
          ) -> list[Any]:
    kind, script, params = runtime
    out: list[Any] = []

    def emit(value: Any) -> None:
        if kind in ("long", "date"):
            value = int(value)
        elif kind == "double":
            value = float(value)
        out.append(value)

    try:
        script.run_in({"doc": _doc(record), "emit": emit, "params": dict(params)})
    except PainlessError as exc:
        raise QueryError("script_exception", f"runtime error in runtime field [{name}]: "
                         f"{exc.message}") from exc
    return out


__all__ = ["RuntimeFields"]
