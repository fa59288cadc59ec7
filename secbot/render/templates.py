"""Rule message templates: Jinja2 in an immutable sandbox with StrictUndefined.

Every ``{{ … }}`` output is mrkdwn-escaped by ``finalize``, so a template author cannot forget
to escape alert data; the template's own literal text (reviewed in the pull request) is kept.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from secbot.render.mrkdwn import escape


class TemplateProblem(ValueError):
    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


def _finalize(value: Any) -> str:
    return escape(value)


@lru_cache(maxsize=1)
def template_environment() -> ImmutableSandboxedEnvironment:
    """The one sandbox all rule templates compile in (pure configuration, no I/O)."""
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def compile_template(source: str) -> Template:
    """Compile a rule template; raises :class:`TemplateProblem` with the template line."""
    try:
        return template_environment().from_string(source)
    except TemplateError as exc:
        raise TemplateProblem(f"template: {exc}", getattr(exc, "lineno", None)) from exc


def render_template(template: Template, context: dict[str, Any]) -> str:
    """Render; raises :class:`TemplateProblem` (missing field under StrictUndefined, sandbox)."""
    try:
        return template.render(context)
    except TemplateError as exc:
        raise TemplateProblem(f"template: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"template: {type(exc).__name__}: {exc}") from exc
