"""The compiled :class:`Expression` and the values passed in and out of it."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from secbot.domain.alert import freeze
from secbot.domain.enrichment import Enrichment
from secbot.expressions.budget import EvalBudget
from secbot.expressions.errors import (
    BudgetExceededError,
    EnrichmentUnavailableError,
    ExpressionError,
    ExpressionSyntaxError,
)
from secbot.expressions.evaluator import evaluate_tree
from secbot.expressions.io_functions import IO_FUNCTIONS
from secbot.expressions.limits import DEFAULT_TIMEOUT
from secbot.expressions.syntax import parse


def _read_only(value: Mapping[str, Any]) -> Mapping[str, Any]:
    # MappingProxyType is what freeze() produces (and Alert.frozen is): trusted as deep-frozen,
    # which keeps building a context cheap for the common case.
    if isinstance(value, MappingProxyType):
        return value
    frozen: Mapping[str, Any] = freeze(value)
    return frozen


@dataclass(frozen=True)
class EvalContext:
    """Everything an expression can see for one alert.

    ``included_fields``, ``alert`` and ``enrichments`` are made deep read-only on construction
    (mappings become ``MappingProxyType``, lists tuples). ``resolved`` holds the I/O lookups
    the pipeline made for :meth:`Expression.io_calls`, keyed by ``(function name, args)``.
    ``budget`` is the alert's one :class:`EvalBudget`: every evaluation in this context (I/O
    arguments, auto_close, routes) draws from it, and ``dataclasses.replace`` keeps it. Build
    one context per alert, passing the budget its ``match.when`` used, and reuse it for all of
    the rule's expressions; a context reused across alerts would share one budget.
    """

    included_fields: Mapping[str, Any]
    alert: Mapping[str, Any]
    enrichments: Mapping[str, Mapping[str, Any]]
    resolved: Mapping[tuple[str, tuple[Any, ...]], Enrichment] = field(default_factory=dict)
    budget: EvalBudget = field(default_factory=EvalBudget, compare=False)
    _env: Mapping[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("included_fields", "alert", "enrichments"):
            object.__setattr__(self, name, _read_only(getattr(self, name)))
        env = {"IncludedFields": self.included_fields, "alert": self.alert,
               "enrichments": self.enrichments}
        object.__setattr__(self, "_env", MappingProxyType(env))

    @property
    def names(self) -> Mapping[str, Any]:
        """The top-level names as the expression sees them."""
        return self._env


@dataclass(frozen=True)
class IoCall:
    """One I/O lookup an expression would make: ``getProjectDetails("prod-1")``."""

    function: str
    enricher: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Verdict:
    """The outcome of :meth:`Expression.decide`: never an exception.

    ``value`` is False whenever ``error`` is set; ``unavailable`` names the enrichers whose
    data an evaluated call needed but did not get (the alert message says why). An error
    starting with "budget exceeded" means the alert's :class:`EvalBudget` ran out.
    """

    value: bool
    error: str | None
    unavailable: tuple[str, ...] = ()


_IO_ARG_TYPES = (str, int, float)


class Expression:
    """A rule expression, parsed and checked once, evaluated many times.

    Create with :func:`compile_expression`.
    """

    __slots__ = ("_io_nodes", "_list_names", "_lists", "_timeout", "_tree", "source")

    def __init__(self, source: str, tree: ast.expr, io_nodes: tuple[ast.Call, ...],
                 timeout: float, lists: Mapping[str, frozenset[str]] | None = None,
                 list_names: tuple[str, ...] = ()) -> None:
        self.source = source
        self._tree = tree
        self._io_nodes = io_nodes
        self._timeout = timeout
        self._lists = lists
        self._list_names = list_names

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def io_functions(self) -> frozenset[str]:
        """Names of the I/O functions called anywhere in the expression (static)."""
        return frozenset(node.func.id for node in self._io_nodes
                         if isinstance(node.func, ast.Name))

    def list_names(self) -> frozenset[str]:
        """Names of the named lists ``inList`` calls consult (static: always literals)."""
        return frozenset(self._list_names)

    def io_calls(self, ctx: EvalContext) -> list[IoCall]:
        """The I/O lookups to make before :meth:`evaluate`, in source order, deduplicated.

        Arguments are evaluated in ``ctx`` without I/O. A call is skipped when its arguments
        cannot be evaluated (an error, or they depend on an I/O call not yet in
        ``ctx.resolved``: resolve these, then ask again) or are not plain values (None for a
        missing field). Calls in both branches of ``||`` are listed: fetching both
        concurrently is cheaper than discovering the second one late. Every argument draws
        on ``ctx.budget``; once it ran out, no further call is listed (the decision that
        follows fails with "budget exceeded" and nothing is auto-closed).
        """
        calls: list[IoCall] = []
        for node in self._io_nodes:
            assert isinstance(node.func, ast.Name)
            function = IO_FUNCTIONS[node.func.id]
            try:
                args = tuple(self._run(arg, ctx) for arg in node.args)
            except BudgetExceededError:
                break
            except ExpressionError:
                continue
            if not all(isinstance(arg, _IO_ARG_TYPES) for arg in args):
                continue
            call = IoCall(function.name, function.enricher, args)
            if call not in calls:
                calls.append(call)
        return calls

    def evaluate(self, ctx: EvalContext) -> Any:
        """The expression's value in ``ctx``; raises :class:`ExpressionError` on any failure
        (including :class:`EnrichmentUnavailableError` for an evaluated, unresolved call, and
        :class:`BudgetExceededError` when ``ctx.budget`` ran out)."""
        return self._run(self._tree, ctx)

    def _run(self, node: ast.expr, ctx: EvalContext) -> Any:
        ctx.budget.adopt(self._timeout)
        return evaluate_tree(node, ctx.names, ctx.resolved, ctx.budget, self._lists)

    def decide(self, ctx: EvalContext) -> Verdict:
        """Truthiness of the expression, or ``Verdict(False, why)``: never raises."""
        try:
            return Verdict(bool(self._run(self._tree, ctx)), None)
        except EnrichmentUnavailableError as exc:
            return Verdict(False, str(exc), (exc.enricher,))
        except ExpressionError as exc:
            return Verdict(False, str(exc) or type(exc).__name__)
        except Exception as exc:  # defensive: a decision must never take the pipeline down
            return Verdict(False, f"internal error: {type(exc).__name__}: {exc}")


class StoppedExpression(Expression):
    """Takes the place of ``auto_close`` on a rule stopped for the alert at hand (its
    ``match.when`` ran out of budget, so whether the rule even applies is unknown): never
    true, looks nothing up, and its verdict's error says why (the message shows it)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        super().__init__("false", ast.Constant(False), (), DEFAULT_TIMEOUT)
        self.reason = reason

    def __repr__(self) -> str:
        return f"StoppedExpression({self.reason!r})"

    def io_calls(self, ctx: EvalContext) -> list[IoCall]:
        return []

    def evaluate(self, ctx: EvalContext) -> Any:
        raise BudgetExceededError(self.reason)

    def decide(self, ctx: EvalContext) -> Verdict:
        return Verdict(False, self.reason)


def compile_expression(source: str, *, timeout: float = DEFAULT_TIMEOUT,
                       lists: Mapping[str, frozenset[str]] | None = None) -> Expression:
    """Parse and statically check ``source`` once.

    expr-lang spellings (``&&``, ``||``, ``!``, ``true``/``false``/``null``) are accepted.
    Raises :class:`ExpressionSyntaxError` (with ``offset``/``line``/``column``) for syntax
    errors, forbidden constructs, unknown names/functions/methods and size limits. ``timeout``
    is the wall-clock budget of each evaluation, in seconds. ``lists`` are the named lists
    (``lists/<name>.txt``) ``inList`` consults: bound to the expression, and an ``inList``
    naming a list not among them is an error here (None: not checked, and such a call fails
    at evaluation).
    """
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    parsed = parse(source)
    for name, offset in parsed.list_names:
        if lists is not None and name not in lists:
            known = ", ".join(sorted(lists)) or "none"
            raise ExpressionSyntaxError(
                f"inList(): unknown list {name!r} (lists: {known})", offset, source)
    names = tuple(dict.fromkeys(name for name, _ in parsed.list_names))
    return Expression(source, parsed.tree, parsed.io_calls, timeout, lists, names)
