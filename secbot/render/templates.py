"""Rule message templates: Jinja2 in an immutable sandbox with StrictUndefined.

Every ``{{ … }}`` output is mrkdwn-escaped by ``finalize``, so a template author cannot forget
to escape alert data; the template's own literal text (reviewed in the pull request) is kept.

The sandbox stops attribute escapes but not resource use, so it is bounded like rule
expressions: ``*``, ``**``, ``+`` and ``%`` go through the expressions' size-checked operators
(``{{ 'a' * 10**10 }}`` or ``{{ fields.x * 100000 * 100000 }}`` would otherwise allocate
gigabytes, and constant folding ran such arithmetic while merely compiling), ``~`` is
size-checked too, calls and the padding filters refuse numeric arguments over ``MAX_SIZE``
and format widths of six digits or more, and the output stops at :data:`MAX_OUTPUT`
characters. Not bounded: the CPU time of nested loops (Jinja caps each ``range`` at 100,000),
which review of the template has to catch.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from secbot.domain.errors import SecBotError
from secbot.expressions.errors import ExpressionError
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


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator

    @staticmethod
    def bounded_concat(parts: tuple[Any, ...]) -> str:
        texts = [str(part) for part in parts]
        if sum(len(text) for text in texts) > MAX_SIZE:
            raise SecurityError(f"'~' would build more than {MAX_SIZE:,} characters")
        return "".join(texts)

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
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if getattr(value, "__name__", None) in ("format", "format_map"):
            _check_format(getattr(value, "__self__", None))  # '{:>999999}'.format(1)
        return super().wrap_str_format(value)


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
    for name in ("center", "indent", "wordwrap", "format", "truncate", "batch", "slice"):
        env.filters[name] = _bounded_filter(name, env.filters[name])
    return env


def compile_template(source: str) -> Template:
    """Compile a rule template; raises :class:`TemplateProblem` with the template line."""
    try:
        return template_environment().from_string(source)
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
