"""Parsing and static checks: everything that can be rejected before any alert is seen.

An expression is translated (:mod:`.tokens`), parsed once with :func:`ast.parse`, bounded in
size and depth, and then walked by a whitelist checker: only the node types, names, functions
and methods listed here are accepted, so ``rules validate`` reports dunder access, unknown
functions and syntax errors with a position, and the evaluator never sees anything else.
"""

from __future__ import annotations

import ast
import difflib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from secbot.expressions.errors import ExpressionError, ExpressionSyntaxError
from secbot.expressions.functions import HELPERS, LIST_FUNCTIONS, METHOD_NAMES
from secbot.expressions.io_functions import IO_FUNCTIONS
from secbot.expressions.limits import (
    MAX_COMPREHENSION_DEPTH,
    MAX_DEPTH,
    MAX_INT_BITS,
    MAX_NODES,
    MAX_SOURCE_LENGTH,
)
from secbot.expressions.operators import (
    BINARY_OPERATORS,
    COMPARE_OPERATORS,
    OPERATOR_SYMBOLS,
    UNARY_OPERATORS,
)
from secbot.expressions.patterns import PatternError, compile_pattern
from secbot.expressions.tokens import Translation, translate

#: Top-level names an expression can read.
ENV_NAMES: frozenset[str] = frozenset({"IncludedFields", "alert", "enrichments"})
FUNCTION_NAMES: frozenset[str] = frozenset(HELPERS) | frozenset(IO_FUNCTIONS)
_BLOCKED_ATTRIBUTES = {"format", "format_map"}
_CONSTANT_TYPES = (str, int, float, bool, type(None))
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_DESCRIPTIONS: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda", ast.NamedExpr: "assignment (:=)", ast.Starred: "* unpacking",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.Slice: "a slice here",
}


@dataclass(frozen=True)
class Parsed:
    """A checked expression tree and what the evaluator needs to know about it."""

    tree: ast.expr
    io_calls: tuple[ast.Call, ...]   # every call to an I/O function, in source order
    #: every list an ``inList`` call names: (name, offset in the source as written)
    list_names: tuple[tuple[str, int | None], ...] = ()


class _Checker:
    """Whitelist walk over the tree; raises ExpressionSyntaxError at the first violation."""

    def __init__(self, translation: Translation, source: str) -> None:
        self.translation = translation
        self.source = source
        self.scopes: list[set[str]] = []   # comprehension variables, innermost last
        self.loops = 0                      # 'for' clauses around the node being checked
        self.folded: dict[int, object] = {}  # id(BinOp) -> its literal value (None: not literal)
        self.io_calls: list[ast.Call] = []
        self.list_names: list[tuple[str, int | None]] = []

    # -- errors ----------------------------------------------------------------------------
    def fail(self, message: str, node: ast.AST | None = None) -> ExpressionSyntaxError:
        """An error located at ``node`` (at the attribute name for ``x.attr``)."""
        offset = None
        if isinstance(node, ast.Attribute) and node.end_lineno is not None:
            offset = self.position(node.end_lineno, node.end_col_offset or 0) - len(node.attr)
        elif isinstance(node, (ast.expr, ast.keyword)):
            offset = self.position(node.lineno, node.col_offset)
        return ExpressionSyntaxError(message, offset, self.source)

    def position(self, lineno: int, byte_col: int) -> int:
        """Original source offset of an AST position (AST columns count UTF-8 bytes)."""
        line = self.translation.text.split("\n")[lineno - 1]
        column = len(line.encode("utf-8")[:byte_col].decode("utf-8", "replace"))
        return self.translation.offset_of(lineno, column)

    # -- dispatch ---------------------------------------------------------------------------
    def check(self, node: ast.AST) -> None:
        method = getattr(self, "check_" + type(node).__name__, None)
        if method is None:
            what = _DESCRIPTIONS.get(type(node), type(node).__name__)
            raise self.fail(f"{what} is not allowed in expressions", node)
        method(node)

    def check_all(self, nodes: list[ast.expr]) -> None:
        for child in nodes:
            self.check(child)

    # -- operators ---------------------------------------------------------------------------
    def check_BoolOp(self, node: ast.BoolOp) -> None:
        self.check_all(node.values)

    def check_BinOp(self, node: ast.BinOp) -> None:
        if type(node.op) not in BINARY_OPERATORS:
            symbol = OPERATOR_SYMBOLS.get(type(node.op), type(node.op).__name__)
            raise self.fail(f"operator '{symbol}' is not allowed", node)
        if isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant, ast.JoinedStr)) \
                and isinstance(getattr(node.left, "value", ""), str):
            raise self.fail("'%' string formatting is not allowed (use + or f-strings)", node)
        self.check(node.left)
        self.check(node.right)
        try:  # literal abuse ('a' * 10**9, 9 ** 99999) is refused here already
            self.folded[id(node)] = _fold(node, self.folded)
        except ExpressionError as exc:
            raise self.fail(str(exc), node) from None

    def check_UnaryOp(self, node: ast.UnaryOp) -> None:
        if type(node.op) not in UNARY_OPERATORS:
            raise self.fail("this unary operator is not allowed", node)
        self.check(node.operand)

    def check_Compare(self, node: ast.Compare) -> None:
        if any(type(op) not in COMPARE_OPERATORS for op in node.ops):
            raise self.fail("this comparison is not allowed", node)
        self.check(node.left)
        self.check_all(node.comparators)

    def check_IfExp(self, node: ast.IfExp) -> None:
        self.check_all([node.test, node.body, node.orelse])

    # -- values --------------------------------------------------------------------------------
    def check_Constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, _CONSTANT_TYPES):
            raise self.fail(f"{type(node.value).__name__} literals are not allowed", node)
        if isinstance(node.value, int) and node.value.bit_length() > MAX_INT_BITS:
            raise self.fail(f"number larger than 2**{MAX_INT_BITS}", node)

    def check_Name(self, node: ast.Name) -> None:
        name = node.id
        if name.startswith("_"):
            raise self.fail(_underscore_message("name", name), node)
        if any(name in scope for scope in self.scopes) or name in ENV_NAMES:
            return
        if name in FUNCTION_NAMES:
            raise self.fail(f"function '{name}' must be called, e.g. {name}(...)", node)
        hint = difflib.get_close_matches(name, sorted(ENV_NAMES | FUNCTION_NAMES), n=1)
        suffix = f"; did you mean '{hint[0]}'?" if hint else (
            "; available: IncludedFields, alert, enrichments")
        raise self.fail(f"unknown name '{name}'{suffix}", node)

    def check_Attribute(self, node: ast.Attribute) -> None:
        self.check(node.value)  # left to right: report the first problem as written
        self.check_attribute_name(node)

    def check_attribute_name(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            raise self.fail(_underscore_message("attribute", node.attr), node)
        if node.attr in _BLOCKED_ATTRIBUTES:
            raise self.fail(f"'.{node.attr}' is not allowed (use + or f-strings)", node)

    def check_Subscript(self, node: ast.Subscript) -> None:
        self.check(node.value)
        if isinstance(node.slice, ast.Slice):
            for part in (node.slice.lower, node.slice.upper, node.slice.step):
                if part is not None:
                    self.check(part)
        else:
            self.check(node.slice)

    def check_List(self, node: ast.List) -> None:
        self.check_all(node.elts)

    def check_Tuple(self, node: ast.Tuple) -> None:
        self.check_all(node.elts)

    def check_Set(self, node: ast.Set) -> None:
        self.check_all(node.elts)

    def check_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise self.fail("'**' unpacking is not allowed", value)
            self.check(key)
            self.check(value)

    def check_JoinedStr(self, node: ast.JoinedStr) -> None:
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                if part.conversion != -1:
                    raise self.fail("f-string conversions (!r, !s, !a) are not allowed", part)
                if part.format_spec is not None:
                    raise self.fail("f-string format specs are not allowed", part)
                self.check(part.value)
            else:
                self.check(part)

    # -- calls ---------------------------------------------------------------------------------
    def check_Call(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.fail("'**' unpacking is not allowed", keyword.value)
            if keyword.arg.startswith("_"):
                raise self.fail(_underscore_message("keyword", keyword.arg), keyword.value)
        func = node.func
        if isinstance(func, ast.Name):
            self.check_function_call(func.id, node)
        elif isinstance(func, ast.Attribute):
            self.check(func.value)
            self.check_attribute_name(func)
            if func.attr not in METHOD_NAMES:
                raise self.fail(f"unknown method '.{func.attr}()'", func)
        else:
            raise self.fail("only named functions and methods can be called", node)
        self.check_all(node.args)
        for keyword in node.keywords:
            self.check(keyword.value)

    def check_function_call(self, name: str, node: ast.Call) -> None:
        if name.startswith("_"):
            raise self.fail(_underscore_message("function", name), node.func)
        if name in IO_FUNCTIONS:
            self.check_io_call(name, node)
        elif name not in HELPERS:
            hint = difflib.get_close_matches(name, sorted(FUNCTION_NAMES), n=1)
            suffix = f"; did you mean '{hint[0]}'?" if hint else ""
            raise self.fail(f"unknown function '{name}'{suffix}", node.func)
        if name == "matches":
            self.check_matches(node)
        if name in LIST_FUNCTIONS:
            self.check_list_call(name, node)

    def check_list_call(self, name: str, node: ast.Call) -> None:
        if node.keywords or len(node.args) != 2:
            raise self.fail(f'{name}() takes exactly 2 arguments: {name}(value, "list")', node)
        listed = node.args[1]
        if not (isinstance(listed, ast.Constant) and isinstance(listed.value, str)):
            # A literal name is checked against the loaded lists at load, and alert data
            # can never choose which list is consulted.
            raise self.fail(f"{name}() needs a string literal as its list name", node)
        self.list_names.append((listed.value, self.fail("", listed).offset))

    def check_io_call(self, name: str, node: ast.Call) -> None:
        function = IO_FUNCTIONS[name]
        if node.keywords or len(node.args) != function.arity:
            raise self.fail(f"{name}() takes exactly {function.arity} argument", node)
        local = {n.id for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.Name)
                 and any(n.id in scope for scope in self.scopes)}
        if local:
            # Its argument must be computable before evaluation, when lookups are done.
            raise self.fail(f"{name}() cannot use the comprehension variable "
                            f"'{sorted(local)[0]}'", node)
        self.io_calls.append(node)

    def check_matches(self, node: ast.Call) -> None:
        regex = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "regex"), None)
        if not (isinstance(regex, ast.Constant) and isinstance(regex.value, str)):
            # A literal pattern is vetted here, and alert data can never choose the pattern.
            raise self.fail("matches() needs a string literal as its pattern", node)
        try:
            compile_pattern(regex.value)
        except PatternError as exc:
            raise self.fail(f"matches(): {exc}", regex) from None

    # -- comprehensions -------------------------------------------------------------------------
    def check_comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp
                            | ast.DictComp) -> None:
        scope: set[str] = set()
        self.scopes.append(scope)
        self.loops += len(node.generators)
        if self.loops > MAX_COMPREHENSION_DEPTH:
            # Each nested 'for' multiplies the work; deeper nesting is never needed for triage.
            raise self.fail(f"comprehensions nested more than {MAX_COMPREHENSION_DEPTH} "
                            "'for' clauses deep", node)
        try:
            for generator in node.generators:
                if generator.is_async:
                    raise self.fail("async comprehensions are not allowed", node)
                self.check(generator.iter)
                scope.update(self.target_names(generator.target))
                self.check_all(generator.ifs)
            if isinstance(node, ast.DictComp):
                self.check_all([node.key, node.value])
            else:
                self.check(node.elt)
        finally:
            self.scopes.pop()
            self.loops -= len(node.generators)

    check_ListComp = check_SetComp = check_GeneratorExp = check_DictComp = check_comprehension

    def target_names(self, target: ast.expr) -> Iterator[str]:
        if isinstance(target, ast.Name):
            if target.id.startswith("_"):
                raise self.fail(_underscore_message("name", target.id), target)
            yield target.id
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                yield from self.target_names(element)
        else:
            raise self.fail("a comprehension can only assign to names", target)


def _fold(node: ast.expr, folded: dict[int, object]) -> object:
    """The value of an operator tree over literals, computed with the bounded operators
    (raising their ExpressionError when too big); None when anything is not a literal.
    ``folded`` holds the values of the operator nodes below, so each is computed once."""
    if isinstance(node, ast.Constant):
        return node.value
    if id(node) in folded:
        return folded[id(node)]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = _fold(node.operand, folded)
        return -operand if isinstance(operand, (int, float)) else None
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY_OPERATORS:
        left, right = _fold(node.left, folded), _fold(node.right, folded)
        if left is None or right is None:
            return None
        try:
            return BINARY_OPERATORS[type(node.op)](left, right)
        except ExpressionError:
            raise
        except (ArithmeticError, TypeError, ValueError):
            return None  # 1 / 0 and the like fail at evaluation, with their own message
    return None


def _underscore_message(kind: str, name: str) -> str:
    if name.startswith("__"):
        return f"dunder access '{name}' is not allowed"
    return f"private {kind} '{name}' is not allowed (names starting with '_' are reserved)"


def _check_shape(tree: ast.AST, fail: _Checker) -> None:
    """Node count and depth, iteratively (a recursive walk could itself overflow)."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise fail.fail(f"expression is too large (more than {MAX_NODES} syntax nodes)")
        if depth > MAX_DEPTH:
            raise fail.fail(f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                            node)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node)
                     if not isinstance(child, ast.expr_context))


def _syntax_error(exc: SyntaxError, translation: Translation, source: str
                  ) -> ExpressionSyntaxError:
    offset = None
    if exc.lineno is not None and exc.offset is not None:
        offset = translation.offset_of(exc.lineno, max(exc.offset - 1, 0))
    reason = exc.msg or "invalid syntax"
    return ExpressionSyntaxError(f"syntax error: {reason}", offset, source)


def _check_characters(source: str) -> None:
    """Refuse invisible characters: control characters and bidirectional/format marks.

    They have no business in a rule, can make a reviewer read something other than what runs
    ("Trojan Source"), and odd line separators would confuse position reporting. A string that
    needs one can spell it as an escape (``"\\u202e"``).
    """
    for offset, char in enumerate(source):
        if char in "\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise ExpressionSyntaxError(
                f"invisible character U+{ord(char):04X} is not allowed (write it as an escape "
                f"like \\u{ord(char):04x} inside a string)", offset, source)


def parse(source: str) -> Parsed:
    """Translate, parse and statically check ``source``; raises ExpressionSyntaxError."""
    if not isinstance(source, str):
        raise ExpressionSyntaxError("expression must be a string")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionSyntaxError(
            f"expression is too long ({len(source):,} characters, limit {MAX_SOURCE_LENGTH:,})")
    if not source.strip():
        raise ExpressionSyntaxError("expression is empty", 0, source)
    _check_characters(source)
    translation = translate(source)
    try:
        module = ast.parse(translation.text, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(exc, translation, source) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionSyntaxError("expression is nested too deeply", None, source) from None
    checker = _Checker(translation, source)
    _check_shape(module.body, checker)
    checker.check(module.body)
    return Parsed(module.body, tuple(checker.io_calls), tuple(checker.list_names))
