"""Small value helpers of the evaluator: friendly type names, the method whitelist for a
receiver, and binding comprehension targets."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from secbot.expressions.errors import ExpressionError
from secbot.expressions.functions import MAPPING_METHODS, SEQUENCE_METHODS, STR_METHODS

_EMPTY: Mapping[str, Callable[..., Any]] = MappingProxyType({})
_METHOD_TABLES: dict[type, Mapping[str, Callable[..., Any]]] = {
    str: STR_METHODS, MappingProxyType: MAPPING_METHODS, dict: MAPPING_METHODS,
    tuple: SEQUENCE_METHODS, list: SEQUENCE_METHODS,
}
_TYPE_NAMES = {MappingProxyType: "mapping", dict: "mapping", tuple: "list", list: "list",
               type(None): "None", str: "string", int: "number", float: "number", bool: "bool"}


def type_name(value: Any) -> str:
    """Friendly name of a value's type for error messages (rule authors are not Pythonistas)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def method_table(receiver: Any) -> Mapping[str, Callable[..., Any]]:
    """The methods an expression may call on ``receiver`` (empty when none)."""
    table = _METHOD_TABLES.get(type(receiver))
    if table is not None:
        return table
    if isinstance(receiver, str):
        return STR_METHODS
    if isinstance(receiver, Mapping):
        return MAPPING_METHODS
    if isinstance(receiver, (list, tuple)):
        return SEQUENCE_METHODS
    return _EMPTY


def bind(target: ast.expr, value: Any, scope: dict[str, Any]) -> None:
    """Assign a comprehension item to its target names (``for k, v in ...``)."""
    if isinstance(target, ast.Name):
        scope[target.id] = value
        return
    assert isinstance(target, (ast.Tuple, ast.List))  # guaranteed by the static checks
    try:
        values = tuple(value)
    except TypeError:
        raise ExpressionError(f"cannot unpack a {type_name(value)}") from None
    if len(values) != len(target.elts):
        raise ExpressionError(f"cannot unpack {len(values)} values into {len(target.elts)}")
    for element, item in zip(target.elts, values, strict=True):
        bind(element, item, scope)
