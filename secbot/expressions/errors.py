"""Exceptions raised by rule expressions.

Two families, because callers handle them differently: :class:`ExpressionSyntaxError` is a
mistake in the rule file (found once, at load or by ``rules validate``), while
:class:`ExpressionError` happens while deciding one alert and only means "do not auto-close".
"""

from __future__ import annotations

from secbot.domain.errors import SecBotError


class ExpressionSyntaxError(SecBotError, ValueError):
    """The expression is rejected at compile time (bad syntax or a forbidden construct).

    ``str(e)`` is the human message. ``offset`` is the 0-based character offset in the source
    as written (``None`` when unknown); ``line`` and ``column`` are the same position 1-based,
    so ``rules validate`` can point at ``path:line``.
    """

    def __init__(self, message: str, offset: int | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.source = source

    def __str__(self) -> str:
        return self.message

    @property
    def line(self) -> int | None:
        """1-based line of ``offset`` within the expression source, if known."""
        if self.offset is None or self.source is None:
            return None
        return self.source.count("\n", 0, self.offset) + 1

    @property
    def column(self) -> int | None:
        """1-based column of ``offset`` within its line, if known."""
        if self.offset is None or self.source is None:
            return None
        return self.offset - (self.source.rfind("\n", 0, self.offset) + 1) + 1


class ExpressionError(SecBotError):
    """Evaluation failed: timeout, a resource limit, a type error, a missing key…

    The pipeline treats it as "the expression is false" and notes ``str(e)`` on the alert.
    """


class EnrichmentUnavailableError(ExpressionError):
    """An evaluated I/O function (``getProjectDetails``…) had no data from its enricher."""

    def __init__(self, enricher: str, reason: str) -> None:
        super().__init__(f"{enricher} unavailable: {reason}")
        self.enricher = enricher
        self.reason = reason


class BudgetExceededError(ExpressionError):
    """The alert's evaluation budget (time or work units, see :class:`EvalBudget`) ran out.

    ``str(e)`` starts with "budget exceeded"; every later evaluation with the same budget
    fails the same way, so a rule stopped in ``match.when`` cannot auto-close the alert.
    """


class ExpressionTimeoutError(BudgetExceededError):
    """The evaluations of one alert ran past their time budget."""
