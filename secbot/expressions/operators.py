"""Bounded versions of Python's operators.

Sizes are checked *before* the operation runs, so ``"a" * 10**9`` or ``4000000 ** 4000000`` fail
in microseconds instead of allocating gigabytes or computing for minutes. ``%`` never formats
strings: ``"%099999999d" % 1`` would allocate 100 MB, and printf-style formatting has no use in
a triage expression.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Sized
from typing import Any

from secbot.expressions.errors import ExpressionError
from secbot.expressions.limits import MAX_INT_BITS, MAX_SIZE


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # bool included: True * "a" is a repetition too


def _int_too_big() -> ExpressionError:
    return ExpressionError(f"number would be larger than 2**{MAX_INT_BITS}")


def _size_too_big(what: str) -> ExpressionError:
    return ExpressionError(f"{what} would be longer than {MAX_SIZE:,} items")


def safe_add(left: Any, right: Any) -> Any:
    """``left + right`` refusing strings/lists longer than MAX_SIZE."""
    if (isinstance(left, Sized) and isinstance(right, Sized)
            and len(left) + len(right) > MAX_SIZE):
        raise _size_too_big("concatenation")
    return left + right


def safe_mul(left: Any, right: Any) -> Any:
    """``left * right`` refusing big repetitions and integers over MAX_INT_BITS."""
    if isinstance(left, Sized) and _is_int(right):
        left, right = right, left
    if _is_int(left) and isinstance(right, Sized):
        if left * len(right) > MAX_SIZE:
            raise _size_too_big("repetition")
    elif (_is_int(left) and _is_int(right)
          and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1):
        raise _int_too_big()
    return left * right


def safe_pow(base: Any, exponent: Any) -> Any:
    """``base ** exponent`` refusing integer results over MAX_INT_BITS (estimated first)."""
    if (_is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1
            and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS):
        raise _int_too_big()
    try:
        return base**exponent
    except OverflowError:
        raise ExpressionError("number too large") from None


def safe_mod(left: Any, right: Any) -> Any:
    """Numeric modulo only: ``%`` string formatting is refused."""
    if isinstance(left, (str, bytes)):
        raise ExpressionError("'%' string formatting is not allowed")
    return left % right


def safe_lshift(left: Any, right: Any) -> Any:
    """``left << right`` refusing integer results over MAX_INT_BITS."""
    if _is_int(left) and _is_int(right) and right > 0 and left.bit_length() + right > MAX_INT_BITS:
        raise _int_too_big()
    return left << right


BINARY_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: safe_add,
    ast.Sub: operator.sub,
    ast.Mult: safe_mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: safe_mod,
    ast.Pow: safe_pow,
    ast.LShift: safe_lshift,
    ast.RShift: operator.rshift,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}

UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
}

COMPARE_OPERATORS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda left, right: left in right,
    ast.NotIn: lambda left, right: left not in right,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}

#: Spelling of each operator, for error messages.
OPERATOR_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|",
    ast.BitXor: "^", ast.MatMult: "@",
}
