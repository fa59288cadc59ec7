"""Rule message templates: Jinja2 in an immutable sandbox with StrictUndefined.

Every ``{{ … }}`` output is mrkdwn-escaped by ``finalize``, so a template author cannot forget
to escape alert data; the template's own literal text (reviewed in the pull request) is kept.

The sandbox stops attribute escapes but not resource use, so it is bounded like rule
expressions: ``*``, ``**``, ``+`` and ``%`` go through the expressions' size-checked operators
(``{{ 'a' * 10**10 }}`` or ``{{ fields.x * 100000 * 100000 }}`` would otherwise allocate
gigabytes, and constant folding ran such arithmetic while merely compiling), ``~`` is
size-checked too, calls and the padding filters refuse numeric arguments over ``MAX_SIZE``
and format widths of six digits or more, and the output stops at :data:`MAX_OUTPUT`
characters. Results that could grow (``join``, ``replace``, ``format``, ``expandtabs``, as
filters or as string methods, and ``~``) have their length computed from the arguments *before*
they are built, and every ``{% for %}`` of one render draws on one iteration count
(:data:`MAX_LOOP_ITERATIONS`: nested loops multiply). ``compile_template`` also refuses what it
can see: a literal ``range`` over :data:`MAX_LOOP_ITERATIONS`, or nested literal ranges whose
product is. Any limit hit at render time → the default message with a note.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from secbot.domain.errors import SecBotError
from secbot.expressions.errors import ExpressionError
from secbot.expressions.functions import estimated_length
from secbot.expressions.limits import MAX_SIZE
from secbot.expressions.operators import safe_add, safe_mul, safe_pow
from secbot.render.mrkdwn import escape

#: Most characters a rendered template may produce (Slack shows at most 3,000 of them).
MAX_OUTPUT = 100_000
# printf-style and str.format widths/precisions of 100,000 or more: '%099999999d', '{:>999999}'.
_WIDE_PERCENT = re.compile(r"%[-+ #0]*(?:\d{6,}|\d*\.\d{6,})")
_WIDE_BRACE = re.compile(r"\{[^{}]*:[^{}]*\d{6,}[^{}]*\}")
_BOUNDED_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "*": safe_mul, "**": safe_pow, "+": safe_add,
}


class TemplateProblem(SecBotError, ValueError):
    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


# -- growth measured before building, loop steps counted per render ----------------------------

#: Most ``{% for %}`` steps one render may take, all loops together (nested loops multiply).
MAX_LOOP_ITERATIONS = 10_000
_NUMBERS = re.compile(r"\d+")


def _too_long(what: str) -> SecurityError:
    return SecurityError(f"{what} would build more than {MAX_SIZE:,} characters")


def _length(value: Any) -> int:
    return estimated_length(value, MAX_SIZE + 1)


def _grown_join(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    # args: (separator, items) for str.join; the filter's (items, d="") arrive swapped.
    separator, items = args[0], args[1]
    if isinstance(items, str) or not hasattr(items, "__len__"):
        return _length(items)
    count = len(items)
    total = len(str(separator)) * max(count - 1, 0)
    for item in items:
        total += _length(item)
        if total > MAX_SIZE:
            break
    return total


def _grown_replace(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    text, old, new = (str(part) for part in args[:3])
    hits = text.count(old) if old else len(text) + 1
    count = args[3] if len(args) > 3 else kwargs.get("count")
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _grown_format(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    # Upper bound: the format text, every argument, and every width/precision it names.
    text = str(args[0])
    widths = sum(int(digits) for digits in _NUMBERS.findall(text))
    return len(text) + widths + sum(_length(arg) for arg in (*args[1:], *kwargs.values()))


def _grown_tabs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    text = str(args[0])
    size = args[1] if len(args) > 1 else kwargs.get("tabsize", 8)
    return len(text) + text.count("\t") * (size if isinstance(size, int) else 8)


_GROWTH: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], int]] = {
    "join": _grown_join, "replace": _grown_replace, "format": _grown_format,
    "expandtabs": _grown_tabs,
}


def check_growth(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                 method: bool) -> None:
    """Refuse a ``join``/``replace``/``format``/``expandtabs`` whose result would be longer
    than MAX_SIZE, from its arguments (a method's receiver first), before it is built."""
    grown = _GROWTH.get(name)
    args = tuple(arg for arg in args if not isinstance(arg, (EvalContext, Context)))
    if grown is None or not args:
        return
    if name == "join" and not method:  # the filter: value | join(d="")
        args = (args[1] if len(args) > 1 else kwargs.pop("d", ""), args[0])
    try:
        length = grown(args, kwargs)
    except (TypeError, ValueError, IndexError):
        return  # the call itself fails with its own clear error
    if length > MAX_SIZE:
        raise _too_long(f"{name}()")


def counted(context: Context, iterable: Any) -> Iterator[Any]:
    """``iterable``, charging each step to the render's loop count (kept on its context)."""
    for item in iterable:
        steps = context.__dict__.get(_STEPS, 0) + 1
        if steps > MAX_LOOP_ITERATIONS:
            raise SecurityError(f"loops ran more than {MAX_LOOP_ITERATIONS:,} times")
        context.__dict__[_STEPS] = steps
        yield item


_STEPS = "secbot_loop_steps"


def _literal_int(node: nodes.Node) -> int | None:
    """The value of an integer literal, or of ``*``/``**``/``+``/``-`` on them (bounded)."""
    if isinstance(node, nodes.Const):
        return node.value if isinstance(node.value, int) else None
    if isinstance(node, nodes.Neg):
        value = _literal_int(node.node)
        return None if value is None else -value
    if isinstance(node, (nodes.Mul, nodes.Pow, nodes.Add, nodes.Sub)):
        left, right = _literal_int(node.left), _literal_int(node.right)
        if left is None or right is None:
            return None
        operation = _BOUNDED_BINOPS.get(node.operator, lambda a, b: a - b)
        try:
            result = operation(left, right)
        except ExpressionError:
            return None  # too big to fold: the render refuses it with a clear message
        return result if isinstance(result, int) else None
    return None


def _literal_range(node: nodes.Node) -> int | None:
    """Length of ``range(<int literals>)``, if that is what ``node`` is."""
    if not (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name)
            and node.node.name == "range" and node.args and not node.kwargs):
        return None
    bounds = [_literal_int(arg) for arg in node.args]
    if any(bound is None for bound in bounds) or len(bounds) > 3:
        return None
    try:
        return len(range(*bounds))  # type: ignore[arg-type]  # None excluded above
    except (ValueError, OverflowError):
        return None


def check_static(tree: nodes.Template) -> None:
    """Refuse loops whose literal ranges (multiplied through nesting) exceed the loop cap."""
    stack: list[tuple[nodes.Node, int]] = [(tree, 1)]
    while stack:
        node, outer = stack.pop()
        steps = outer
        if isinstance(node, nodes.For):
            length = _literal_range(node.iter)
            steps = outer * (length if length is not None else 1)
            if steps > MAX_LOOP_ITERATIONS:
                raise TemplateProblem(
                    f"template: loops would run {steps:,} times (at most "
                    f"{MAX_LOOP_ITERATIONS:,} per message)", node.lineno)
        elif (length := _literal_range(node)) is not None and length > MAX_LOOP_ITERATIONS:
            raise TemplateProblem(f"template: range of {length:,} items (at most "
                                  f"{MAX_LOOP_ITERATIONS:,})", node.lineno)
        stack.extend((child, steps) for child in node.iter_child_nodes())


def _finalize(value: Any) -> str:
    return escape(value)


def _check_numbers(values: Any) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
            raise SecurityError(f"argument {value} is larger than {MAX_SIZE:,}")


def _check_format(text: Any) -> None:
    if isinstance(text, str) and (_WIDE_PERCENT.search(text) or _WIDE_BRACE.search(text)):
        raise SecurityError("format widths of 100,000 or more are not allowed")


def _bounded_filter(name: str, filter_function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(filter_function)  # keeps jinja's pass_context/... markers
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_numbers((*args, *kwargs.values()))
        if name == "format" and args:
            _check_format(args[0])
        check_growth(name, args, dict(kwargs), method=False)
        return filter_function(*args, **kwargs)

    return bounded


class _BoundedCodeGenerator(CodeGenerator):
    """``a ~ b`` joins through :meth:`_BoundedSandbox.bounded_concat` (Jinja cannot intercept
    it otherwise: ten ``{% set x = x ~ x %}`` lines would build a terabyte)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # {% for x in seq %} runs as {% for x in counted(context, seq) %}: every loop of a
        # render counts its steps on the render's context (see counted()).
        lineno = node.lineno
        iterable = nodes.Call(nodes.EnvironmentAttribute("counted", lineno=lineno),
                              [nodes.ContextReference(lineno=lineno), node.iter], [], None, None,
                              lineno=lineno)
        super().visit_For(nodes.For(node.target, iterable, node.body, node.else_, node.test,
                                    node.recursive, lineno=lineno), frame)


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator

    counted = staticmethod(counted)

    @staticmethod
    def bounded_concat(parts: tuple[Any, ...]) -> str:
        # Measured before str(): str() of a big list would itself be the allocation.
        if sum(estimated_length(part, MAX_SIZE + 1) for part in parts) > MAX_SIZE:
            raise SecurityError(f"'~' would build more than {MAX_SIZE:,} characters")
        return "".join(str(part) for part in parts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        try:
            if operator in _BOUNDED_BINOPS:
                return _BOUNDED_BINOPS[operator](left, right)
        except ExpressionError as exc:
            raise SecurityError(str(exc)) from None
        if operator == "%" and isinstance(left, str):
            _check_format(left)
            _check_numbers(right if isinstance(right, tuple) else (right,))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_numbers((*args, *kwargs.values()))  # 'a'.ljust(10**9), range(10**9)
        receiver = getattr(__obj, "__self__", None)
        if isinstance(receiver, str):  # 'x'.join(big), s.replace('', s): measured first
            check_growth(getattr(__obj, "__name__", ""), (receiver, *args), kwargs, method=True)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if getattr(value, "__name__", None) in ("format", "format_map"):
            _check_format(getattr(value, "__self__", None))  # '{:>999999}'.format(1)
        wrapped = super().wrap_str_format(value)
        text = getattr(value, "__self__", None)
        if wrapped is None or not isinstance(text, str):
            return wrapped
        formatter = wrapped

        def bounded(*args: Any, **kwargs: Any) -> str:
            # '{:99999}' * 1000 passes the width check: the whole result is measured first.
            check_growth("format", (text, *args, *kwargs.values()), {}, method=True)
            return formatter(*args, **kwargs)

        return bounded


@lru_cache(maxsize=1)
def template_environment() -> ImmutableSandboxedEnvironment:
    """The one sandbox all rule templates compile in (pure configuration, no I/O)."""
    env = _BoundedSandbox(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    for name in ("center", "indent", "wordwrap", "format", "truncate", "batch", "slice", "join",
                 "replace"):
        env.filters[name] = _bounded_filter(name, env.filters[name])
    return env


def compile_template(source: str) -> Template:
    """Compile a rule template; raises :class:`TemplateProblem` with the template line."""
    try:
        env = template_environment()
        tree = env.parse(source)
        check_static(tree)
        return env.from_string(tree)
    except TemplateProblem:
        raise
    except TemplateError as exc:
        raise TemplateProblem(f"template: {exc}", getattr(exc, "lineno", None)) from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
        # Constant folding evaluates literal expressions while compiling.
        raise TemplateProblem(f"template: {type(exc).__name__}: {exc}") from exc


def render_template(template: Template, context: dict[str, Any]) -> str:
    """Render; raises :class:`TemplateProblem` (missing field under StrictUndefined, sandbox,
    output over :data:`MAX_OUTPUT` characters)."""
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateProblem(f"template: output longer than {MAX_OUTPUT:,} characters")
            parts.append(chunk)
    except TemplateError as exc:
        raise TemplateProblem(f"template: {exc}") from exc
    except TemplateProblem:
        raise
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
        raise TemplateProblem(f"template: {type(exc).__name__}: {exc}") from exc
    return "".join(parts)
