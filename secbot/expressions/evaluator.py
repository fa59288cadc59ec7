"""The hardened evaluator: simpleeval with per-node deadline, size budgets and whitelists.

simpleeval provides the tree-walking design; we replace the node handlers so that

* the wall-clock deadline is checked before *every* node (a single node is itself bounded:
  operands are size-capped, ``matches`` checks the deadline while scanning);
* every string/collection an operation builds is charged against a per-evaluation budget, so a
  comprehension cannot multiply an allowed allocation into gigabytes;
* names resolve only to the rule's data, calls only to HELPERS / I/O functions / whitelisted
  methods per receiver type, and attributes only to the public fields of I/O results (or keys
  of a mapping, ``alert.host.name``).

One evaluator per thread is reused across evaluations (construction costs more than a whole
evaluation); :func:`evaluate_tree` resets its state each time.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable, Mapping
from time import perf_counter
from types import MappingProxyType
from typing import Any

from simpleeval import EvalWithCompoundTypes

from secbot.expressions.errors import (
    EnrichmentUnavailableError,
    ExpressionError,
    ExpressionTimeoutError,
)
from secbot.expressions.functions import (
    CURRENT_DEADLINE,
    HELPERS,
    MAPPING_METHODS,
    SEQUENCE_METHODS,
    STR_METHODS,
    safe_str,
)
from secbot.expressions.io_functions import IO_FUNCTIONS, PUBLIC_ATTRIBUTES, IoFunction
from secbot.expressions.limits import MAX_ALLOCATION, MAX_INT_BITS, MAX_ITERATIONS, MAX_SIZE
from secbot.expressions.operators import BINARY_OPERATORS, COMPARE_OPERATORS, UNARY_OPERATORS

Resolved = Mapping[tuple[str, tuple[Any, ...]], Any]  # values are secbot.enrich.base.Enrichment
_EMPTY: Mapping[Any, Any] = MappingProxyType({})
_CONVERTED_CACHE_SIZE = 256
_SIZED = frozenset({str, tuple, list, dict, set, frozenset})
_METHOD_TABLES: dict[type, Mapping[str, Callable[..., Any]]] = {
    str: STR_METHODS, MappingProxyType: MAPPING_METHODS, dict: MAPPING_METHODS,
    tuple: SEQUENCE_METHODS, list: SEQUENCE_METHODS,
}
_TYPE_NAMES = {MappingProxyType: "mapping", dict: "mapping", tuple: "list", list: "list",
               type(None): "None", str: "string", int: "number", float: "number", bool: "bool"}


_CONTAINERS = (tuple, list, dict, set, frozenset, MappingProxyType)


def logical_size(value: Any, limit: int = MAX_SIZE) -> int:
    """Items in ``value`` counting a nested container once per reference to it.

    ``[[1] * 10**5] * 10**5`` holds only 200,000 objects, but comparing or sorting it touches
    10**10 items in one uninterruptible C call; this counts it as 10**10. Strings count as one
    item (they compare in linear time). Stops counting once past ``limit``.
    """
    if type(value) not in _CONTAINERS:
        return len(value) if type(value) in _SIZED else 1
    total = 0
    stack = [value]
    while stack:
        current = stack.pop()
        items = current.values() if isinstance(current, Mapping) else current
        total += len(current)
        if total > limit:
            return total
        stack.extend(item for item in items if type(item) in _CONTAINERS)
    return total


def type_name(value: Any) -> str:
    """Friendly name of a value's type for error messages (rule authors are not Pythonistas)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _method_table(receiver: Any) -> Mapping[str, Callable[..., Any]]:
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


def _bind(target: ast.expr, value: Any, scope: dict[str, Any]) -> None:
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
        _bind(element, item, scope)


class HardenedEvaluator(EvalWithCompoundTypes):  # type: ignore[misc]  # simpleeval is untyped
    """Evaluates a statically checked tree (see :mod:`.syntax`) within strict limits."""

    def __init__(self) -> None:
        super().__init__(operators={}, functions={}, names={})
        self.nodes = {
            ast.Constant: self._eval_constant, ast.Name: self._eval_name,
            ast.BoolOp: self._eval_boolop, ast.IfExp: self._eval_ifexp,
            ast.UnaryOp: self._eval_unaryop, ast.BinOp: self._eval_binop,
            ast.Compare: self._eval_compare, ast.Call: self._eval_call,
            ast.Attribute: self._eval_attribute, ast.Subscript: self._eval_subscript,
            ast.List: self._eval_list, ast.Tuple: self._eval_tuple, ast.Set: self._eval_set,
            ast.Dict: self._eval_dict, ast.JoinedStr: self._eval_joinedstr,
            ast.ListComp: self._eval_comprehension, ast.SetComp: self._eval_comprehension,
            ast.GeneratorExp: self._eval_comprehension, ast.DictComp: self._eval_comprehension,
        }
        self.busy = False
        self._env: Mapping[str, Any] = _EMPTY
        self._resolved: Resolved = _EMPTY
        self._timeout = 0.0
        self._deadline = 0.0
        self._allocated = 0
        self._iterations = 0
        self._locals: dict[str, Any] | None = None
        # (id(enrichment), function) -> (enrichment, value); keeping the enrichment alive
        # guarantees its id is not reused while the entry exists.
        self._converted: dict[tuple[int, str], tuple[Any, Any]] = {}

    def run(self, node: ast.expr, env: Mapping[str, Any], resolved: Resolved,
            timeout: float) -> Any:
        """Evaluate ``node`` with the given names and resolved I/O lookups."""
        self.busy = True
        self._env, self._resolved, self._timeout = env, resolved, timeout
        self._deadline = perf_counter() + timeout
        self._allocated = self._iterations = 0
        self._locals = None
        CURRENT_DEADLINE.value = self._deadline
        try:
            return self._eval(node)
        finally:
            CURRENT_DEADLINE.value = None
            # Do not keep the alert alive in a thread-local between evaluations.
            self._env, self._resolved, self._locals = _EMPTY, _EMPTY, None
            self.busy = False

    # -- bookkeeping ---------------------------------------------------------------------------
    def _eval(self, node: ast.AST) -> Any:
        if perf_counter() > self._deadline:
            raise ExpressionTimeoutError(f"expression took longer than {self._timeout:g} s")
        handler = self.nodes.get(type(node))
        if handler is None:  # unreachable after the static checks; kept as a second wall
            raise ExpressionError(f"{type(node).__name__} is not supported")
        return handler(node)

    def _charge(self, size: int) -> None:
        if size > MAX_SIZE:
            raise ExpressionError(f"result would be longer than {MAX_SIZE:,} items")
        self._allocated += size
        if self._allocated > MAX_ALLOCATION:
            raise ExpressionError(f"expression allocates more than {MAX_ALLOCATION:,} items")

    def _checked(self, value: Any) -> Any:
        """Enforce the integer and size limits on a freshly computed value."""
        kind = type(value)
        if kind is int:
            if value.bit_length() > MAX_INT_BITS:
                raise ExpressionError(f"number would be larger than 2**{MAX_INT_BITS}")
        elif kind is str:
            self._charge(len(value))
        elif kind in _SIZED:
            self._charge(logical_size(value))
        return value

    # -- leaves and operators ------------------------------------------------------------------
    @staticmethod
    def _eval_constant(node: ast.Constant) -> Any:
        return node.value

    def _eval_name(self, node: ast.Name) -> Any:
        scope = self._locals
        if scope is not None and node.id in scope:
            return scope[node.id]
        try:
            return self._env[node.id]
        except KeyError:
            raise ExpressionError(f"unknown name {node.id!r}") from None

    def _eval_unaryop(self, node: ast.UnaryOp) -> Any:
        return UNARY_OPERATORS[type(node.op)](self._eval(node.operand))

    def _eval_binop(self, node: ast.BinOp) -> Any:
        left = self._eval(node.left)
        right = self._eval(node.right)
        return self._checked(BINARY_OPERATORS[type(node.op)](left, right))

    def _eval_compare(self, node: ast.Compare) -> Any:
        left = self._eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self._eval(comparator)
            if not COMPARE_OPERATORS[type(op)](left, right):
                return False
            left = right
        return True

    # -- access --------------------------------------------------------------------------------
    def _eval_attribute(self, node: ast.Attribute) -> Any:
        obj = self._eval(node.value)
        name = node.attr
        public = PUBLIC_ATTRIBUTES.get(type(obj))
        if public is not None and name in public:
            return getattr(obj, name)
        if public is None and isinstance(obj, Mapping) and not name.startswith("_"):
            try:
                return obj[name]
            except KeyError:
                raise ExpressionError(f"key {name!r} not found") from None
        raise ExpressionError(f"a {type_name(obj)} has no attribute {name!r}")

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        index = node.slice
        if isinstance(index, ast.Slice):
            bounds = [None if part is None else self._eval(part)
                      for part in (index.lower, index.upper, index.step)]
            return self._checked(container[slice(*bounds)])
        return container[self._eval(index)]

    # -- calls ---------------------------------------------------------------------------------
    def _eval_call(self, node: ast.Call) -> Any:
        func = node.func
        if isinstance(func, ast.Name):
            io_function = IO_FUNCTIONS.get(func.id)
            if io_function is not None:
                return self._call_io(io_function, node)
            target: Callable[..., Any] = HELPERS[func.id]
            receiver: tuple[Any, ...] = ()
        else:
            assert isinstance(func, ast.Attribute)  # guaranteed by the static checks
            obj = self._eval(func.value)
            method = _method_table(obj).get(func.attr)
            if method is None:
                raise ExpressionError(f"a {type_name(obj)} has no method .{func.attr}()")
            target, receiver = method, (obj,)
        args = [self._eval(arg) for arg in node.args]
        kwargs = {str(k.arg): self._eval(k.value) for k in node.keywords}
        result = target(*receiver, *args, **kwargs)
        if receiver and isinstance(receiver[0], str) and isinstance(result, (list, tuple)):
            self._charge(len(receiver[0]))  # split()/partition() copy the receiver's text
        return self._checked(result)

    def _call_io(self, function: IoFunction, node: ast.Call) -> Any:
        args = tuple(self._eval(arg) for arg in node.args)
        try:
            enrichment = self._resolved.get((function.name, args))
        except TypeError:
            raise ExpressionError(f"{function.name}() needs a plain value argument") from None
        if enrichment is None:
            shown = ", ".join(repr(arg)[:80] for arg in args)
            reason = (f"{function.name}() got no value (missing field?)"
                      if all(arg is None for arg in args)
                      else f"{function.name}({shown}) was not looked up")
            raise EnrichmentUnavailableError(function.enricher, reason)
        if not enrichment.available:
            raise EnrichmentUnavailableError(function.enricher, enrichment.error or "unavailable")
        # Converted values are immutable, so they are cached per Enrichment object: the same
        # lookup result is typically evaluated by several expressions of a rule.
        cached = self._converted.get((id(enrichment), function.name))
        if cached is not None and cached[0] is enrichment:
            return cached[1]
        try:
            value = function.convert(enrichment.data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EnrichmentUnavailableError(function.enricher, f"unexpected data: {exc}") from None
        if len(self._converted) >= _CONVERTED_CACHE_SIZE:
            self._converted.clear()
        self._converted[(id(enrichment), function.name)] = (enrichment, value)
        return value

    # -- literals ------------------------------------------------------------------------------
    def _eval_list(self, node: ast.List) -> Any:
        return self._checked([self._eval(element) for element in node.elts])

    def _eval_tuple(self, node: ast.Tuple) -> Any:
        return self._checked(tuple([self._eval(element) for element in node.elts]))

    def _eval_set(self, node: ast.Set) -> Any:
        return self._checked({self._eval(element) for element in node.elts})

    def _eval_dict(self, node: ast.Dict) -> Any:
        return self._checked({self._eval(key): self._eval(value)  # type: ignore[arg-type]
                              for key, value in zip(node.keys, node.values, strict=True)})

    def _eval_joinedstr(self, node: ast.JoinedStr) -> Any:
        parts: list[str] = []
        total = 0
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                text = safe_str(self._eval(part.value))
            else:
                text = str(self._eval(part))
            total += len(text)
            if total > MAX_SIZE:
                raise ExpressionError(f"f-string would be longer than {MAX_SIZE:,} characters")
            parts.append(text)
        return self._checked("".join(parts))

    # -- comprehensions --------------------------------------------------------------------------
    def _eval_comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp
                            | ast.DictComp) -> Any:
        outer = self._locals
        scope: dict[str, Any] = dict(outer) if outer else {}
        result: list[Any] | dict[Any, Any] = {} if isinstance(node, ast.DictComp) else []
        self._locals = scope
        try:
            self._generate(node, 0, scope, result)
        finally:
            self._locals = outer
        if isinstance(node, ast.SetComp):
            return self._checked(set(result))
        return result  # a generator expression is evaluated eagerly, as a list

    def _generate(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
                  index: int, scope: dict[str, Any], result: list[Any] | dict[Any, Any]) -> None:
        generator = node.generators[index]
        for item in self._eval(generator.iter):
            self._iterations += 1
            if self._iterations > MAX_ITERATIONS:
                raise ExpressionError(f"comprehensions ran more than {MAX_ITERATIONS:,} times")
            _bind(generator.target, item, scope)
            if not all(self._eval(condition) for condition in generator.ifs):
                continue
            if index + 1 < len(node.generators):
                self._generate(node, index + 1, scope, result)
            elif isinstance(result, dict):
                assert isinstance(node, ast.DictComp)
                value = self._eval(node.value)
                result[self._eval(node.key)] = value
                self._charge(_element_size(value))
            else:
                assert not isinstance(node, ast.DictComp)
                element = self._eval(node.elt)
                result.append(element)
                self._charge(_element_size(element))


def _element_size(value: Any) -> int:
    """What one more reference to ``value`` inside a collection costs (see logical_size)."""
    return logical_size(value, MAX_ALLOCATION) if type(value) in _CONTAINERS else 1


class _Pool(threading.local):
    evaluator: HardenedEvaluator | None = None


_POOL = _Pool()


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return f"key {exc.args[0]!r} not found"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def evaluate_tree(node: ast.expr, env: Mapping[str, Any], resolved: Resolved,
                  timeout: float) -> Any:
    """Evaluate a checked tree; every failure comes out as :class:`ExpressionError`."""
    evaluator = _POOL.evaluator
    if evaluator is None:
        evaluator = _POOL.evaluator = HardenedEvaluator()
    elif evaluator.busy:  # re-entrant use (not expected): never share state
        evaluator = HardenedEvaluator()
    try:
        return evaluator.run(node, env, resolved, timeout)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("expression is nested too deeply") from None
    except Exception as exc:  # TypeError, KeyError, ZeroDivisionError, MemoryError, …
        raise ExpressionError(_describe(exc)) from exc
