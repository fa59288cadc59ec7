"""Safe rule expressions (DESIGN.md §6), evaluated with a hardened simpleeval.

    expr = compile_expression('isUserOnCall(IncludedFields["user.email"]) && !false')
    ctx = EvalContext(included_fields=..., alert=alert.frozen, enrichments=...)
    lookups = expr.io_calls(ctx)           # fetch these with their enrichers, concurrently
    ctx = EvalContext(..., resolved={(c.function, c.args): enrichment, ...})
    verdict = expr.decide(ctx)             # Verdict(value, error, unavailable), never raises

Compile once per rule at load (static checks raise :class:`ExpressionSyntaxError`), evaluate
per alert. Any evaluation error means "false" (do not auto-close) with a reason.
"""

from secbot.expressions.errors import (
    EnrichmentUnavailableError,
    ExpressionError,
    ExpressionSyntaxError,
    ExpressionTimeoutError,
)
from secbot.expressions.expression import (
    EvalContext,
    Expression,
    IoCall,
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
    "EnrichmentUnavailableError",
    "EvalContext",
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "ExpressionTimeoutError",
    "IoCall",
    "IoFunction",
    "ProjectDetails",
    "Verdict",
    "compile_expression",
]
