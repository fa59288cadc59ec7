"""One exception hierarchy: every exception class the product defines is a SecBotError, so a
caller can catch "anything SecBot raised on purpose" without catching bugs."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import secbot
from secbot import SecBotError


def _product_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(secbot.__path__, prefix="secbot."):
        if info.name.endswith("__main__"):  # importing it runs the command line
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("secbot."):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


def test_the_package_defines_exceptions_to_check() -> None:
    names = {cls.__name__ for cls in _product_exceptions()}
    # A walk that found nothing would make the next test pass vacuously.
    assert {"StoreUnavailable", "SiemError", "RuleLoadError", "PatternError"} <= names


@pytest.mark.parametrize("cls", _product_exceptions(), ids=lambda c: c.__qualname__)
def test_every_product_exception_is_a_secbot_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, SecBotError), f"{cls.__module__}.{cls.__qualname__}"


def test_existing_builtin_bases_are_kept_for_callers_that_catch_them() -> None:
    from secbot.expressions.errors import ExpressionSyntaxError
    from secbot.expressions.patterns import PatternError
    from secbot.render.templates import TemplateProblem
    from secbot.rules.yamlsource import YamlSyntaxError

    for cls in (PatternError, ExpressionSyntaxError, TemplateProblem, YamlSyntaxError):
        assert issubclass(cls, ValueError)
    with pytest.raises(ValueError):
        raise PatternError("bad pattern")
