"""Property tests: whatever a rule author (or attacker) writes, expressions fail safely and fast."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from secbot.domain.enrichment import Enrichment
from secbot.expressions import (
    EvalBudget,
    EvalContext,
    ExpressionError,
    ExpressionSyntaxError,
    Verdict,
    compile_expression,
)
from secbot.expressions.patterns import compile_pattern, search

CTX = EvalContext(
    {
        "user.email": "a@example.com",
        "cloud.project.id": "prod-1",
        "n": 3,
        "ip": ["10.0.0.1"],
        "big": "z" * 20_000,
    },
    {
        "host": {"name": "web-1", "ip": ["10.0.0.1", "::1"]},
        "tags": ["x", "y"],
        "kibana.alert.rule.name": "Rule",
    },
    {"hr": {"division": "Platform"}},
    {
        ("getProjectDetails", ("prod-1",)): Enrichment.ok(
            "gcp_project", {"project_id": "prod-1", "labels": {"instance-type": "internal"}}
        ),
        ("isUserOnCall", ("a@example.com",)): Enrichment.unavailable("oncall", "timeout"),
    },
)


def fresh_ctx() -> EvalContext:
    """CTX for one more alert: every example is an alert of its own, with its own budget
    (a shared one runs out after a few hundred examples and turns every result into an error)."""
    return replace(CTX, budget=EvalBudget())

SETTINGS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

# -- a grammar of expression-ish source text -----------------------------------------------------

LEAVES = st.one_of(
    st.integers(min_value=-3, max_value=12).map(str),
    st.sampled_from(
        [
            "0",
            "2",
            "4000000",
            "10**9",
            "99999999999999999999",
            "1.5",
            "1e308",
            "true",
            "false",
            "null",
            "True",
            "None",
        ]
    ),
    st.text(alphabet="ab%d{}!&|\\'\" .", max_size=6).map(repr),
    st.sampled_from(
        [
            'IncludedFields["user.email"]',
            'IncludedFields["n"]',
            'IncludedFields["ip"]',
            'IncludedFields["big"]',
            'IncludedFields["missing"]',
            "IncludedFields",
            "alert",
            "alert.host",
            "alert.host.name",
            'alert["tags"]',
            "enrichments",
            "enrichments.hr",
            "x",
            "_x",
            "__import__",
            "foo",
            "len",
            "[]",
            "{}",
            "[1, 2]",
            '{"a": 1}',
        ]
    ),
)
BINARY = [
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "==",
    "!=",
    "<",
    ">=",
    "&&",
    "||",
    "and",
    "or",
    "in",
    "not in",
    "&",
    "|",
    "^",
    "<<",
    ">>",
    "is",
    "@",
    "=",
    ":=",
]
UNARY = ["!", "not ", "-", "~", "+", "*", "**", "lambda: "]
FUNCTIONS = [
    "len",
    "lower",
    "upper",
    "str",
    "int",
    "float",
    "bool",
    "min",
    "max",
    "sum",
    "round",
    "abs",
    "sorted",
    "list",
    "set",
    "tuple",
    "any",
    "all",
    "contains",
    "startswith",
    "cidr_match",
    "lookup",
    "getProjectDetails",
    "isUserOnCall",
    "eval",
    "open",
    "getattr",
    "__import__",
    "type",
    "print",
]
ATTRIBUTES = [
    "lower()",
    "upper()",
    "split()",
    "strip()",
    "replace('a', 'bb')",
    "keys()",
    "items()",
    "get('a')",
    "count('a')",
    "join(['a'])",
    "startswith('a')",
    "name",
    "Labels",
    "State",
    "host",
    "__class__",
    "format(1)",
    "pop()",
    "clear()",
    "_x",
]


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY), children).map(" ".join),
        st.tuples(st.sampled_from(UNARY), children).map("".join),
        st.tuples(st.sampled_from(FUNCTIONS), st.lists(children, max_size=2)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
        st.tuples(children, st.sampled_from(ATTRIBUTES)).map(lambda t: f"({t[0]}).{t[1]}"),
        st.tuples(children, children).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.tuples(children, children).map(lambda t: f"({t[0]})[{t[1]}:]"),
        st.tuples(children, children, children).map(
            lambda t: f"[{t[0]} for x in {t[1]} if {t[2]}]"
        ),
        st.tuples(children, children).map(lambda t: f"{{x: {t[0]} for x in {t[1]}}}"),
        st.tuples(children, children, children).map(lambda t: f"{t[0]} if {t[1]} else {t[2]}"),
        children.map(lambda c: f"f'{{{c}}}'"),
        st.tuples(children, st.text(alphabet="^$.*+?()[]|\\ab{}1", max_size=6)).map(
            lambda t: f"matches({t[0]}, {t[1]!r})"
        ),
        children.map(lambda c: f"({c})"),
        st.lists(children, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    )


EXPRESSIONS = st.recursive(LEAVES, _combine, max_leaves=12)
TOKEN_SOUP = st.lists(
    st.sampled_from(
        BINARY
        + UNARY
        + FUNCTIONS
        + [
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            ".",
            "'",
            '"',
            "\n",
            "#",
            "alert",
            "IncludedFields",
            "1",
            "'s'",
            "for",
            "in",
            "if",
            "else",
            "__class__",
            "f'",
            "\\",
        ]
    ),
    max_size=25,
).map(" ".join)


def _exercise(source: str) -> None:
    """Compile, evaluate, decide and list I/O calls; only the documented errors may escape."""
    start = time.perf_counter()
    try:
        expr = compile_expression(source)
    except ExpressionSyntaxError as exc:
        assert str(exc)
        assert exc.offset is None or 0 <= exc.offset <= len(source)
        return
    ctx = fresh_ctx()  # one alert: one budget for its evaluations
    try:
        expr.evaluate(ctx)
    except ExpressionError as exc:
        assert str(exc)
    verdict = expr.decide(ctx)
    assert isinstance(verdict, Verdict) and isinstance(verdict.value, bool)
    assert verdict.value is False or verdict.error is None
    assert isinstance(expr.io_calls(ctx), list)
    assert expr.io_functions() <= {"getProjectDetails", "isUserOnCall"}
    assert time.perf_counter() - start < 1.0, source


@SETTINGS
@given(EXPRESSIONS)
def test_grammar_expressions_fail_safely(source: str) -> None:
    _exercise(source)


@settings(deadline=None, max_examples=200)
@given(TOKEN_SOUP)
def test_token_soup_fails_safely(source: str) -> None:
    _exercise(source)


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=60))
def test_arbitrary_text_fails_safely(source: str) -> None:
    _exercise(source)


def test_context_is_unchanged_by_all_of_that() -> None:
    assert CTX.alert["tags"] == ("x", "y")
    assert dict(CTX.enrichments["hr"]) == {"division": "Platform"}


# -- semantics: same answers as Python / expr-lang -----------------------------------------------

ARITH_LEAVES = st.integers(min_value=-20, max_value=20).map(str)


def _arith(children: st.SearchStrategy[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
    """(expr-lang spelling, Python spelling) pairs of the same expression."""
    ops = [
        ("+", "+"),
        ("-", "-"),
        ("*", "*"),
        ("//", "//"),
        ("%", "%"),
        ("==", "=="),
        ("!=", "!="),
        ("<", "<"),
        ("&&", "and"),
        ("||", "or"),
        ("and", "and"),
    ]
    return st.one_of(
        st.tuples(children, st.sampled_from(ops), children).map(
            lambda t: (f"({t[0][0]}) {t[1][0]} ({t[2][0]})", f"({t[0][1]}) {t[1][1]} ({t[2][1]})")
        ),
        children.map(lambda c: (f"!({c[0]})", f"(not ({c[1]}))")),
        children.map(lambda c: (f"-({c[0]})", f"-({c[1]})")),
    )


@settings(deadline=None, max_examples=300)
@given(st.recursive(ARITH_LEAVES.map(lambda s: (s, s)), _arith, max_leaves=10))
def test_same_result_as_python(pair: tuple[str, str]) -> None:
    exprlang, python = pair
    try:
        expected: Any = eval(python, {"__builtins__": {}})  # generated from a safe grammar
    except ZeroDivisionError:
        expected = ZeroDivisionError
    try:
        actual: Any = compile_expression(exprlang).evaluate(fresh_ctx())
    except ExpressionError as exc:
        assume("larger than" not in str(exc))  # our integer cap, not a semantic difference
        actual = ZeroDivisionError if "ZeroDivisionError" in str(exc) else exc
    assert actual == expected


# -- the linear-time regex engine agrees with re -------------------------------------------------

# The subset where RE2 and Python's re agree: RE2's \w, \d, \s, \b are ASCII-only, its $ does
# not match before a final newline, and it has no \Z (README: matches() uses RE2 syntax).
REGEX_ATOMS = st.sampled_from(
    [
        "a",
        "b",
        "A",
        "1",
        ".",
        "[ab]",
        "[^a]",
        "[a-c1]",
        "\\d",
        "\\w",
        "\\W",
        "\\s",
        "\\b",
        "^",
        "$",
        "\\A",
        " ",
        "\\.",
    ]
)


def _regex(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, children).map("".join),
        st.tuples(children, children).map(lambda t: f"(?:{t[0]}|{t[1]})"),
        st.tuples(children, st.sampled_from(["*", "+", "?", "*?", "{2}", "{0,2}", "{1,}"])).map(
            lambda t: f"(?:{t[0]}){t[1]}"
        ),
        children.map(lambda c: f"({c})"),
    )


@settings(deadline=None, max_examples=500)
@given(
    st.sampled_from(["", "(?i)", "(?s)"]),
    st.recursive(REGEX_ATOMS, _regex, max_leaves=6),
    st.text(alphabet="aAb1 _.", max_size=10),
)
def test_regex_engine_agrees_with_re(flags: str, pattern: str, text: str) -> None:
    pattern = flags + pattern
    expected = re.search(pattern, text) is not None
    assert search(compile_pattern(pattern), text, time.perf_counter() + 5) == expected
