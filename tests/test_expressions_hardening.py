"""Expressions are untrusted code: every escape attempt is refused, fast, and changes nothing."""

from __future__ import annotations

import copy
import dataclasses
import re
import time
from typing import Any

import pytest

from secbot.domain.alert import Alert, thaw
from secbot.expressions import (
    EvalBudget,
    EvalContext,
    ExpressionError,
    ExpressionSyntaxError,
    ExpressionTimeoutError,
    compile_expression,
)
from secbot.expressions.limits import MAX_DEPTH, MAX_SOURCE_LENGTH

ALERT_SOURCE: dict[str, Any] = {
    "@timestamp": "2024-05-01T10:00:00Z",
    "kibana.alert.rule.name": "GCP IAM Service Account Key Creation",
    "kibana.alert.uuid": "a1",
    "user": {"email": "mallory@example.com", "roles": ["admin", "dev"]},
    "process": {"command_line": "x" * 5_000},
    "tags": ["cloud"],
}


@pytest.fixture
def alert() -> Alert:
    return Alert.from_hit({"_id": "a1", "_source": copy.deepcopy(ALERT_SOURCE)})


@pytest.fixture
def ctx(alert: Alert) -> EvalContext:
    fields = {"user.email": "mallory@example.com", "big": "y" * 50_000, "n": 7}
    return EvalContext(fields, alert.frozen, {"hr": {"division": "Platform", "tags": ["a"]}})


def evaluate_fast(source: str, ctx: EvalContext, *, timeout: float = 0.25) -> Exception:
    """Compile and evaluate; return the ExpressionError raised, asserting it came quickly."""
    expr = compile_expression(source, timeout=timeout)
    start = time.perf_counter()
    with pytest.raises(ExpressionError) as info:
        expr.evaluate(ctx)
    verdict = expr.decide(dataclasses.replace(ctx, budget=EvalBudget()))  # as the next alert
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{source!r} took {elapsed:.2f} s"
    assert verdict.value is False and verdict.error
    return info.value


# -- rejected at compile time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("().__class__.__bases__[0].__subclasses__()", "dunder access '__class__'"),
        ("alert.__class__", "dunder access '__class__'"),
        ('alert["x"].__len__()', "dunder access '__len__'"),
        ("__import__('os').system('id')", "dunder access '__import__'"),
        ("_private", "private name '_private'"),
        ("alert._frozen", "private attribute '_frozen'"),
        ("[x for _x in alert]", "private name '_x'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("eval('1')", "unknown function 'eval'"),
        ("getattr(alert, 'x')", "unknown function 'getattr'"),
        ("type(alert)", "unknown function 'type'"),
        ("exec", "unknown name 'exec'"),
        ("globals", "unknown name 'globals'"),
        ("os.system('id')", "unknown name 'os'"),
        ("len", "function 'len' must be called"),
        ("any([len])", "function 'len' must be called"),
        ("alert['tags'][0]()", "only named functions and methods can be called"),
        ("lambda: 1", "lambda is not allowed"),
        ("(x := 1)", "assignment (:=) is not allowed"),
        ("[*alert]", "unpacking is not allowed"),
        ("len(*alert)", "unpacking is not allowed"),
        ("dict(**alert)", "'**' unpacking is not allowed"),
        ("{**alert}", "'**' unpacking is not allowed"),
        ("'{}'.format(alert)", "'.format' is not allowed"),
        ("'{x}'.format_map(alert)", "'.format_map' is not allowed"),
        ("f'{alert!r}'", "conversions"),
        ("f'{1:>999999999}'", "format specs are not allowed"),
        ("'%099999999d' % 1", "'%' string formatting is not allowed"),
        ("f'{alert}%s' % 1", "'%' string formatting is not allowed"),
        ("alert.pop('user')", "unknown method '.pop()'"),
        ("alert.clear()", "unknown method '.clear()'"),
        ("alert.update({})", "unknown method '.update()'"),
        ("alert.setdefault('a', 1)", "unknown method '.setdefault()'"),
        ("alert['tags'].append(1)", "unknown method '.append()'"),
        ("alert.copy()", "unknown method '.copy()'"),
        ("'a'.ljust(10**9)", "unknown method '.ljust()'"),
        ("'a'.center(10**9)", "unknown method '.center()'"),
        ("'a'.zfill(10**9)", "unknown method '.zfill()'"),
        ("'a'.encode()", "unknown method '.encode()'"),
        ("[1 for x.y in alert]", "only assign to names"),
        ("[1 async for x in alert]", "not allowed"),
        ("b'bytes'", "bytes literals are not allowed"),
        ("1j", "complex literals are not allowed"),
        ("...", "ellipsis literals are not allowed"),
        ("1 @ 2", "operator '@' is not allowed"),
        ("matches(alert['x'], alert['pattern'])", "string literal as its pattern"),
        ("matches(alert['x'], '(a)\\\\1')", "back-references are not supported"),
        ("matches(alert['x'], '(?=a)')", "lookahead/lookbehind"),
        ("matches(alert['x'], '(?>a)')", "atomic groups"),
        ("matches(alert['x'], 'a*+')", "possessive quantifiers"),
        ("matches(alert['x'], '(a{100}){100}')", "invalid repetition size"),
        ("matches(alert['x'], '(abc|def|ghi){300}')", "too complex"),
        ("matches(alert['x'], '[')", "invalid regular expression"),
        ("[getProjectDetails(p) for p in alert['tags']]", "comprehension variable 'p'"),
        ("isUserOnCall(email=alert['x'])", "exactly 1 argument"),
        ("yield 1", "yield is not allowed"),
        ("import os", "syntax error"),
        ("alert['x'] = 1", "syntax error"),
        ("del alert['x']", "syntax error"),
        ("1; 2", "syntax error"),
        ("", "expression is empty"),
        ("   \n ", "expression is empty"),
        ("1 +" + " 1 +" * (MAX_SOURCE_LENGTH // 4) + " 1", "expression is too long"),
        ("-" * 2_000 + "1", "nested too deeply"),
        ("(" * 30 + "1" + ")" * 30 + "[0]" * (MAX_DEPTH + 1), "nested too deeply"),
        ("[" + ", ".join(["1"] * 1_100) + "]", "too large"),
        ("2" * 1_300, "number larger than"),
        # Literal arithmetic is folded with the bounded operators: abuse is visible statically.
        ("4000000**4000000", "larger than 2**4096"),
        ("9**9**9**9", "larger than 2**4096"),
        ("(10**1000) * (10**1000) * (10**1000) * (10**1000) * (10**1000)", "larger than"),
        ("1 << 100000", "larger than 2**4096"),
        ("'a' * 10**9", "longer than 100,000"),
        ("2 ** 100000 > 0", "larger than 2**4096"),
        ("'a' * 50000 + 'b' * 50001", "concatenation would be longer"),
        ("[1 for a in 'xy' for b in 'xy' for c in 'xy' for d in 'xy']", "nested more than 3"),
        ("[[1 for a in 'x' for b in 'y'] for c in 'z' for d in 'w']", "nested more than 3"),
    ],
)
def test_rejected_at_compile_time(source: str, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match=re.escape(message)):
        compile_expression(source)


def test_compile_rejections_carry_a_position() -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        compile_expression("alert.user.email == 'x' && alert.pop('user')")
    assert info.value.offset == len("alert.user.email == 'x' && alert.")


# -- refused while evaluating, fast --------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("IncludedFields['n'] ** 100000", "larger than 2**4096"),
        ("int('9' * 4000)", "larger than 2**4096"),
        ("IncludedFields['n'] * 10**9 * 'a'", "longer than 100,000"),
        ("IncludedFields['big'] % 1", "'%' string formatting is not allowed"),
        ("[1] * 10**9", "longer than 100,000"),
        ("IncludedFields['big'] + IncludedFields['big'] + IncludedFields['big']", "longer than"),
        ("IncludedFields['big'].replace('', IncludedFields['big'])", "replace() would be longer"),
        ("','.join([IncludedFields['big']] * 3)", "join() would be longer"),
        ("str([IncludedFields['big']] * 3)", "str() would be longer"),
        ("f'{[IncludedFields[\"big\"]] * 3}'", "str() would be longer"),
        ("round(1, -10**9)", "ndigits must be an integer"),
        ("sum([[1] * 100] * 100, [])", "sum() only adds numbers"),
        ("sum([[1] * 10000] * 10000, [])", "longer than 100,000"),
        ("[[1] * 10**5] * 10**5 == [[1] * 10**5] * 10**5", "longer than 100,000"),
        ("[1 for x in IncludedFields['big']]", "comprehensions ran more than 10,000"),
        ("[[1 for y in 'abcdefghij' * 200] for x in 'abcdefghij' * 200]", "more than 10,000"),
        ("[IncludedFields['big'] + 'x' for x in 'a' * 100]", "allocates more than"),
        ("[alert.process.command_line.split('x') for t in 'a' * 1000]", "allocates more than"),
        ("matches(IncludedFields['big'], 'y$')", "longer than 10,000 characters"),
        ("alert['missing']", "key 'missing' not found"),
        ("alert.missing", "key 'missing' not found"),
        ("1 / 0", "ZeroDivisionError"),
        ("alert.user.email.nothing", "has no attribute 'nothing'"),
        ("alert['tags'].keys()", "has no method .keys()"),
        ("getProjectDetails('p').Labels", "gcp_project unavailable"),
    ],
)
def test_refused_at_evaluation_quickly(source: str, message: str, ctx: EvalContext) -> None:
    error = evaluate_fast(source, ctx)
    assert message in str(error)


def test_wall_clock_deadline(ctx: EvalContext) -> None:
    # matches() checks the deadline too, not only the evaluator between nodes.
    source = (
        "[matches(IncludedFields['big'][:9999], '(y|yy)*z') for i in 'abcdefghijklmnopqrstuvwxyz']"
    )
    error = evaluate_fast(source, ctx, timeout=0.0001)
    assert isinstance(error, ExpressionTimeoutError)
    assert "took longer than" in str(error)


def test_deadline_is_checked_between_nodes(ctx: EvalContext) -> None:
    source = "len([[x == y for y in 'abcdefghij' * 9] for x in 'abcdefghij' * 10]) > 0"
    assert compile_expression(source, timeout=1.0).evaluate(ctx) is True
    error = evaluate_fast(source, dataclasses.replace(ctx, budget=EvalBudget()), timeout=0.0001)
    assert isinstance(error, ExpressionTimeoutError)


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [
        (".*foo.*bar", "foo" * 3_333),  # ~50 s with re.search
        ("\\\\d+\\\\d+x", "1" * 9_999),  # cubic with re
        ("(a|a)*b", "a" * 9_999),  # exponential with re
        ("(\\\\w+\\\\s?)+$", "a" * 9_998 + "!"),  # the textbook ReDoS
        ("(x+x+)+y", "x" * 9_999),
    ],
)
def test_regular_expressions_run_in_linear_time(pattern: str, subject: str) -> None:
    ctx = EvalContext({"s": subject}, {}, {})
    expr = compile_expression(f"matches(IncludedFields['s'], '{pattern}')", timeout=2.0)
    start = time.perf_counter()
    assert expr.decide(ctx).error is None
    assert time.perf_counter() - start < 1.0


# -- read-only data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "alert.clear()",
        "alert.pop('user')",
        "alert.update({'x': 1})",
        "alert.setdefault('x', 1)",
        "alert['x'] = 1",
        "alert.user.roles.append('root')",
        "alert.user.roles.extend(['root'])",
        "alert.user.roles.clear()",
        "alert.tags.sort()",
        "enrichments.hr.tags.append('x')",
        "IncludedFields.popitem()",
        "alert.__setitem__('x', 1)",
        "alert.__dict__",
        "alert.__class__.__init__",
        "[alert.user.roles.append(1) for x in 'a']",
        "alert.user.roles.__iadd__(['root'])",
        "alert.values()[0].clear()",
    ],
)
def test_mutation_attempts_fail_and_alert_is_unchanged(
    source: str, alert: Alert, ctx: EvalContext
) -> None:
    before = copy.deepcopy(thaw(alert.frozen))
    try:
        expr = compile_expression(source)
    except ExpressionSyntaxError:
        pass
    else:
        with pytest.raises(ExpressionError):
            expr.evaluate(ctx)
    assert thaw(alert.frozen) == before == ALERT_SOURCE
    assert thaw(ctx.enrichments) == {"hr": {"division": "Platform", "tags": ["a"]}}


def test_plain_dicts_in_the_context_are_frozen() -> None:
    source = {"user": {"roles": ["dev"]}}
    ctx = EvalContext({"f": ["a"]}, source, {"hr": {"x": [1]}})
    assert compile_expression("alert.user.roles").evaluate(ctx) == ("dev",)
    with pytest.raises(TypeError):
        ctx.alert["user"]["roles"] += ("root",)
    assert source == {"user": {"roles": ["dev"]}}


def test_comprehension_results_are_private_copies(ctx: EvalContext) -> None:
    expr = compile_expression("[r for r in alert.user.roles] + list(alert.user.roles)")
    assert expr.evaluate(ctx) == ["admin", "dev", "admin", "dev"]
    assert ctx.alert["user"]["roles"] == ("admin", "dev")


def test_decide_never_raises_even_on_odd_values(ctx: EvalContext) -> None:
    for source in (
        "alert",
        "alert.user",
        "enrichments",
        "IncludedFields['n'] / 2",
        "[]",
        "{}",
        "null",
        "''",
    ):
        verdict = compile_expression(source).decide(ctx)
        assert verdict.error is None
        assert isinstance(verdict.value, bool)
