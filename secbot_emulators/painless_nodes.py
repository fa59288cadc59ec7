"""The nodes of the emulator's Painless subset (see :mod:`secbot_emulators.painless`).

Expressions are small objects with ``get`` (and ``set`` for assignable ones); statements are
closures over a scope dict. Values are plain Python: ``dict`` for Map, ``list`` for List.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Scope = dict[str, Any]


class PainlessError(Exception):
    """``kind`` is ``compile error`` or ``runtime error``, as in ES's ``script_exception``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# --- expression nodes -----------------------------------------------------------------------


class Node:
    def get(self, scope: Scope) -> Any:
        raise NotImplementedError

    def set(self, scope: Scope, value: Any) -> None:
        raise PainlessError("compile error", "left side of '=' is not assignable")


class HostObject:
    """A value the script host supplies (a runtime field's ``doc['f']``, a date): it answers
    field reads and method calls itself, raising :class:`PainlessError` for unknown ones."""

    def painless_get(self, key: Any) -> Any:
        raise PainlessError("runtime error", f"cannot access [{key}] of "
                            f"{type(self).__name__}")

    def painless_call(self, method: str, args: list[Any]) -> Any:
        raise PainlessError("runtime error", f"unknown method [{method}/{len(args)}] on "
                            f"{type(self).__name__}")


@dataclass
class Const(Node):
    value: Any

    def get(self, scope: Scope) -> Any:
        return self.value


@dataclass
class Function(Node):
    """A call of a host function by name, e.g. a runtime field's ``emit(value)``."""

    name: str
    args: list[Node]

    def get(self, scope: Scope) -> Any:
        function = scope.get(self.name)
        if not callable(function):
            raise PainlessError("compile error", f"Unknown call [{self.name}] with "
                                f"[{len(self.args)}] arguments.")
        return function(*(arg.get(scope) for arg in self.args))


@dataclass
class Var(Node):
    name: str

    def get(self, scope: Scope) -> Any:
        if self.name not in scope:
            raise PainlessError("compile error", f"cannot resolve symbol [{self.name}]")
        return scope[self.name]

    def set(self, scope: Scope, value: Any) -> None:
        if self.name not in scope:
            raise PainlessError("compile error", f"cannot resolve symbol [{self.name}]")
        scope[self.name] = value


@dataclass
class Item(Node):
    """``target[key]`` or ``target.key``: map entry or list element."""

    target: Node
    key: Node

    def _container(self, scope: Scope) -> Any:
        container = self.target.get(scope)
        if container is None:
            raise PainlessError("runtime error", "cannot access a field of null "
                                "(NullPointerException)")
        if not isinstance(container, (dict, list)):
            raise PainlessError("runtime error", f"cannot access a field of "
                                f"{type(container).__name__}")
        return container

    def get(self, scope: Scope) -> Any:
        target = self.target.get(scope)
        if isinstance(target, HostObject):  # doc values, dates: fields by name
            return target.painless_get(self.key.get(scope))
        container, key = self._container(scope), self.key.get(scope)
        if isinstance(container, list):
            return container[_index(container, key)]
        return container.get(key)

    def set(self, scope: Scope, value: Any) -> None:
        container, key = self._container(scope), self.key.get(scope)
        if isinstance(container, list):
            container[_index(container, key)] = value
        else:
            container[key] = value


def _index(items: list[Any], key: Any) -> int:
    if not isinstance(key, int) or isinstance(key, bool) or not -len(items) <= key < len(items):
        raise PainlessError("runtime error", f"index {key!r} out of bounds for length "
                            f"{len(items)}")
    return key


@dataclass
class Call(Node):
    target: Node
    method: str
    args: list[Node]

    def get(self, scope: Scope) -> Any:
        receiver = self.target.get(scope)
        args = [arg.get(scope) for arg in self.args]
        if isinstance(receiver, HostObject):
            return receiver.painless_call(self.method, args)
        table = _LIST_METHODS if isinstance(receiver, list) else (
            _MAP_METHODS if isinstance(receiver, dict) else {})
        method = table.get((self.method, len(args)))
        if receiver is None:
            raise PainlessError("runtime error", f"cannot call {self.method}() on null "
                                "(NullPointerException)")
        if method is None:
            raise PainlessError("runtime error", f"unknown method [{self.method}/{len(args)}] "
                                f"on {type(receiver).__name__}")
        return method(receiver, *args)


def _list_remove(items: list[Any], key: Any) -> Any:
    return items.pop(_index(items, key))


_LIST_METHODS: dict[tuple[str, int], Callable[..., Any]] = {
    ("add", 1): lambda items, value: items.append(value) or True,
    ("contains", 1): lambda items, value: value in items,
    ("size", 0): len, ("isEmpty", 0): lambda items: not items,
    ("remove", 1): _list_remove,
}
_MAP_METHODS: dict[tuple[str, int], Callable[..., Any]] = {
    ("containsKey", 1): lambda m, key: key in m,
    ("get", 1): lambda m, key: m.get(key),
    ("put", 2): lambda m, key, value: _put(m, key, value),
    ("remove", 1): lambda m, key: m.pop(key, None),
    ("size", 0): len, ("isEmpty", 0): lambda m: not m,
}


def _put(mapping: dict[Any, Any], key: Any, value: Any) -> Any:
    old = mapping.get(key)
    mapping[key] = value
    return old


@dataclass
class Operator(Node):
    op: str
    left: Node
    right: Node | None = None

    def get(self, scope: Scope) -> Any:
        if self.op == "!":
            return not truth(self.left.get(scope))
        left = self.left.get(scope)
        assert self.right is not None
        if self.op == "&&":
            return truth(left) and truth(self.right.get(scope))
        if self.op == "||":
            return truth(left) or truth(self.right.get(scope))
        right = self.right.get(scope)
        if self.op in _ARITHMETIC:
            return _ARITHMETIC[self.op](_number(left), _number(right))
        return (left == right) if self.op == "==" else (left != right)


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b,
    "<": lambda a, b: a < b, ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
}


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PainlessError("runtime error", f"cannot apply an arithmetic or comparison "
                            f"operator to {type(value).__name__}")
    return value


def truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise PainlessError("runtime error", f"cannot cast {type(value).__name__} to boolean")
    return value


# --- statements -----------------------------------------------------------------------------

Statement = Callable[[Scope], None]


def run_all(body: list[Statement], scope: Scope) -> None:
    for statement in body:
        statement(scope)


@dataclass
class Script:
    """A compiled script; :meth:`run` executes it against one document's ``ctx``."""

    body: list[Statement]

    def run(self, ctx: dict[str, Any], params: Mapping[str, Any]) -> None:
        run_all(self.body, {"ctx": ctx, "params": dict(params)})

    def run_in(self, scope: Scope) -> None:
        """Execute with the host's own variables (a runtime field: ``doc``, ``emit``)."""
        run_all(self.body, scope)
