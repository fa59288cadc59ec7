"""The hardened evaluator: simpleeval with the alert's budget, size limits and whitelists.

simpleeval provides the tree-walking design; we replace the node handlers so that

* every node, and every builtin/operator in proportion to the size it touches (charged before
  it runs, see :mod:`.costs`), draws work units from the alert's :class:`EvalBudget`, and the
  budget's deadline is checked before every node (``matches`` checks it while scanning);
* every string/collection an operation builds is charged against a per-evaluation allocation
  limit, so a comprehension cannot multiply an allowed allocation into gigabytes;
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
from time import thread_time
from types import MappingProxyType
from typing import Any

from simpleeval import EvalWithCompoundTypes

from secbot.expressions.budget import EvalBudget
from secbot.expressions.costs import (
    CONTAINERS,
    SIZED,
    binop_cost,
    call_cost,
    compare_cost,
    logical_size,
    slice_cost,
)
from secbot.expressions.errors import (
    EnrichmentUnavailableError,
    ExpressionError,
    ExpressionTimeoutError,
)
from secbot.expressions.functions import CURRENT_DEADLINE, CURRENT_LISTS, HELPERS, safe_str
from secbot.expressions.io_functions import IO_FUNCTIONS, PUBLIC_ATTRIBUTES, IoFunction
from secbot.expressions.limits import (
    MAX_ALLOCATION,
    MAX_INT_BITS,
    MAX_ITERATIONS,
    MAX_SIZE,
    NODE_COST,
)
from secbot.expressions.operators import BINARY_OPERATORS, COMPARE_OPERATORS, UNARY_OPERATORS
from secbot.expressions.values import bind, method_table, type_name

Resolved = Mapping[tuple[str, tuple[Any, ...]], Any]  # values are secbot.enrich.base.Enrichment
_EMPTY: Mapping[Any, Any] = MappingProxyType({})
_CONVERTED_CACHE_SIZE = 256
_SIZE_CACHE_SIZE = 1024
# Largest logical size counted exactly when pricing a call (alert data may exceed MAX_SIZE).
_MEASURE_LIMIT = 10 * MAX_SIZE


#: Nodes evaluated between two reads of the CPU clock.
CLOCK_EVERY = 32

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
        self._budget = EvalBudget()
        self._deadline = 0.0
        self._work = self._work_limit = self._nodes = 0
        # id(value) -> (value, logical size): keeping the value alive keeps its id unique.
        self._sizes: dict[int, tuple[Any, int]] = {}
        self._allocated = 0
        self._iterations = 0
        self._locals: dict[str, Any] | None = None
        # (id(enrichment), function) -> (enrichment, value); keeping the enrichment alive
        # guarantees its id is not reused while the entry exists.
        self._converted: dict[tuple[int, str], tuple[Any, Any]] = {}

    def run(self, node: ast.expr, env: Mapping[str, Any], resolved: Resolved,
            budget: EvalBudget, lists: Mapping[str, frozenset[str]] | None = None) -> Any:
        """Evaluate ``node`` with the given names and resolved I/O lookups, drawing on
        ``budget`` (raises :class:`BudgetExceededError` at once if it already ran out);
        ``lists`` are the named lists ``inList`` sees."""
        self._deadline, self._work_limit = budget.start()
        self.busy = True
        self._env, self._resolved, self._budget = env, resolved, budget
        self._work = self._allocated = self._iterations = self._nodes = 0
        self._locals = None
        CURRENT_DEADLINE.value = self._deadline
        outer_lists, CURRENT_LISTS.value = CURRENT_LISTS.value, lists
        try:
            return self._eval(node)
        except ExpressionTimeoutError:
            raise budget.out_of_time() from None  # matches() saw the deadline: record it
        finally:
            budget.stop(self._work)
            CURRENT_DEADLINE.value = None
            CURRENT_LISTS.value = outer_lists
            # Do not keep the alert alive in a thread-local between evaluations.
            self._env, self._resolved, self._locals = _EMPTY, _EMPTY, None
            self._sizes.clear()
            self.busy = False

    # -- bookkeeping ---------------------------------------------------------------------------
    def _eval(self, node: ast.AST) -> Any:
        self._spend(NODE_COST)
        # The clock is the thread's CPU time, a system call (~0.7 µs): read it every
        # CLOCK_EVERY nodes. Work units bound what runs between two reads.
        self._nodes += 1
        if not self._nodes % CLOCK_EVERY and thread_time() > self._deadline:
            raise self._budget.out_of_time()
        handler = self.nodes.get(type(node))
        if handler is None:  # unreachable after the static checks; kept as a second wall
            raise ExpressionError(f"{type(node).__name__} is not supported")
        return handler(node)

    def _measure(self, value: Any, limit: int = _MEASURE_LIMIT) -> int:
        """Characters of a string, logical size of a container (cached per value), else 1.

        Counting stops past ``limit``: counting costs about as much as touching the items.
        """
        kind = type(value)
        if kind is str:
            return len(value)
        if kind not in CONTAINERS:
            return 1
        cached = self._sizes.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1]
        size = logical_size(value, limit)
        if size <= limit:  # an exact count
            if len(self._sizes) >= _SIZE_CACHE_SIZE:
                self._sizes.clear()
            self._sizes[id(value)] = (value, size)
        return size

    def _spend(self, units: int) -> None:
        """Charge ``units`` of work to the alert's budget: called *before* the work."""
        self._work += units
        if self._work > self._work_limit:
            raise self._budget.out_of_work()

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
        elif kind in SIZED:
            self._charge(self._measure(value, MAX_SIZE))
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
        self._spend(binop_cost(node.op, left, right))
        return self._checked(BINARY_OPERATORS[type(node.op)](left, right))

    def _eval_compare(self, node: ast.Compare) -> Any:
        left = self._eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self._eval(comparator)
            self._spend(compare_cost(op, left, right, self._measure))
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
            bounds = slice(*[None if part is None else self._eval(part)
                             for part in (index.lower, index.upper, index.step)])
            self._spend(slice_cost(container, bounds))
            return self._checked(container[bounds])
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
            name = func.id
        else:
            assert isinstance(func, ast.Attribute)  # guaranteed by the static checks
            obj = self._eval(func.value)
            method = method_table(obj).get(func.attr)
            if method is None:
                raise ExpressionError(f"a {type_name(obj)} has no method .{func.attr}()")
            name, target, receiver = func.attr, method, (obj,)
        args = [self._eval(arg) for arg in node.args]
        kwargs = {str(k.arg): self._eval(k.value) for k in node.keywords}
        self._spend(call_cost(name, (*receiver, *args, *kwargs.values()), method=bool(receiver),
                              measure=self._measure))
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
            self._spend(len(text))
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
            self._spend(NODE_COST)  # the loop step itself, besides the nodes it evaluates
            self._iterations += 1
            if self._iterations > MAX_ITERATIONS:
                raise ExpressionError(f"comprehensions ran more than {MAX_ITERATIONS:,} times")
            bind(generator.target, item, scope)
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
    return logical_size(value, MAX_ALLOCATION) if type(value) in CONTAINERS else 1


class _Pool(threading.local):
    evaluator: HardenedEvaluator | None = None


_POOL = _Pool()


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return f"key {exc.args[0]!r} not found"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def evaluate_tree(node: ast.expr, env: Mapping[str, Any], resolved: Resolved,
                  budget: EvalBudget, lists: Mapping[str, frozenset[str]] | None = None) -> Any:
    """Evaluate a checked tree within ``budget``; every failure comes out as
    :class:`ExpressionError` (:class:`BudgetExceededError` when the budget ran out)."""
    evaluator = _POOL.evaluator
    if evaluator is None:
        evaluator = _POOL.evaluator = HardenedEvaluator()
    elif evaluator.busy:  # re-entrant use (not expected): never share state
        evaluator = HardenedEvaluator()
    try:
        return evaluator.run(node, env, resolved, budget, lists)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("expression is nested too deeply") from None
    except Exception as exc:  # TypeError, KeyError, ZeroDivisionError, MemoryError, …
        raise ExpressionError(_describe(exc)) from exc
