"""Safe rule expressions (DESIGN.md §6), evaluated with a hardened simpleeval.

    expr = compile_expression('isUserOnCall(IncludedFields["user.email"]) && !false')
    ctx = EvalContext(included_fields=..., alert=alert.frozen, enrichments=...)
    lookups = expr.io_calls(ctx)           # fetch these with their enrichers, concurrently
    ctx = dataclasses.replace(ctx, resolved={(c.function, c.args): enrichment, ...})
    verdict = expr.decide(ctx)             # Verdict(value, error, unavailable), never raises

Compile once per rule at load (static checks raise :class:`ExpressionSyntaxError`), evaluate
per alert. Any evaluation error means "false" (do not auto-close) with a reason. Every
evaluation of one alert draws on one :class:`EvalBudget` (``EvalContext.budget``); when it runs
out the error says "budget exceeded …".
"""

from secbot.expressions.budget import EvalBudget
from secbot.expressions.errors import (
    BudgetExceededError,
    EnrichmentUnavailableError,
    ExpressionError,
    ExpressionSyntaxError,
    ExpressionTimeoutError,
)
from secbot.expressions.expression import (
    EvalContext,
    Expression,
    IoCall,
    StoppedExpression,
    Verdict,
    compile_expression,
)
from secbot.expressions.functions import HELPERS
from secbot.expressions.io_functions import IO_FUNCTIONS, IoFunction, ProjectDetails
from secbot.expressions.syntax import ENV_NAMES

__all__ = [
    "ENV_NAMES",
    "HELPERS",
    "IO_FUNCTIONS",
    "BudgetExceededError",
    "EnrichmentUnavailableError",
    "EvalBudget",
    "EvalContext",
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "ExpressionTimeoutError",
    "IoCall",
    "IoFunction",
    "ProjectDetails",
    "StoppedExpression",
    "Verdict",
    "compile_expression",
]
