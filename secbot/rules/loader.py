"""Loading ``rules/*.yaml``: every problem reported as ``path:line: message``, or a RuleSet.

SecBot never starts with a broken rule set: :func:`load_rules` raises unless all files load.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from secbot.domain.errors import SecBotError
from secbot.enrich.catalog import BUILTIN_ENRICHERS
from secbot.expressions import IO_FUNCTIONS, ExpressionSyntaxError, compile_expression
from secbot.render.templates import TemplateProblem, compile_template
from secbot.rules.ruleset import (
    CompiledRule,
    EscalationChoice,
    ResponseChoice,
    RouteChoice,
    RuleSet,
)
from secbot.rules.schema import Rule
from secbot.rules.yamlsource import Loc, YamlDocument, YamlSyntaxError, load_yaml


@dataclass(frozen=True)
class RuleProblem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class RuleLoadError(SecBotError):
    """The rule set has problems; ``problems`` lists each with its file and line."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _loc_text(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _schema_problems(doc: YamlDocument, exc: ValidationError) -> list[RuleProblem]:
    out = []
    for err in exc.errors():
        loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        # pydantic reports union members ("str", "list[str]"); keep only real keys.
        loc = tuple(
            p for p in loc if p not in ("str", "list[str]", "function-after[_at_least_one()]")
        )
        where = _loc_text(loc) or "rule"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {str(loc[-1])!r}"
        elif (
            "input" in err
            and err["type"] not in ("missing",)
            and not isinstance(err["input"], (dict, list))
        ):
            msg = f"{msg} (got {err['input']!r})"
        out.append(RuleProblem(doc.path, doc.line_of(loc), f"{where}: {msg}"))
    return out


class _Compiler:
    """Compiles one validated rule, collecting problems instead of stopping at the first."""

    def __init__(self, doc: YamlDocument, rule: Rule, timeout: float,
                 destinations: frozenset[str] | None = None,
                 lists: Mapping[str, frozenset[str]] | None = None) -> None:
        self.doc, self.rule, self.timeout = doc, rule, timeout
        self.destinations = destinations
        # No lists given means none exist: an inList naming one is a load error here, not a
        # quiet evaluation error on every alert later.
        self.lists = lists if lists is not None else MappingProxyType({})
        self.problems: list[RuleProblem] = []

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(RuleProblem(self.doc.path, self.doc.line_of(loc), message))

    def expression(self, source: str | None, loc: Loc, *, allow_io: bool = True) -> Any:
        if source is None:
            return None
        try:
            expr = compile_expression(source, timeout=self.timeout, lists=self.lists)
        except ExpressionSyntaxError as exc:
            self.problem(loc, f"{_loc_text(loc)}: {exc}")
            return None
        if not allow_io and expr.io_functions():
            names = ", ".join(sorted(expr.io_functions()))
            self.problem(loc, f"{_loc_text(loc)}: {names} needs enrichment; not allowed in match")
        return expr

    def template(self, source: str | None, loc: Loc) -> Any:
        if source is None:
            return None
        try:
            return compile_template(source)
        except TemplateProblem as exc:
            line = self.doc.line_of(loc) + (exc.lineno - 1 if exc.lineno else 0)
            if loc in self.doc.block_scalars:
                line += 1  # the template's first line is the one after "key: |"
            self.problems.append(RuleProblem(self.doc.path, line, f"{_loc_text(loc)}: {exc}"))
            return None

    def compile(self) -> CompiledRule:
        rule = self.rule
        if rule.id != self.doc.path.stem:
            self.problem(("id",), f"id {rule.id!r} must equal the file name {self.doc.path.stem!r}")
        for i, name in enumerate(rule.enrich):
            if name not in BUILTIN_ENRICHERS:
                known = ", ".join(sorted(BUILTIN_ENRICHERS))
                self.problem(
                    ("enrich", i), f"enrich[{i}]: unknown enricher {name!r} (known: {known})"
                )
        routes = []
        for i, choice in enumerate(rule.route.when if rule.route else []):
            expr = self.expression(choice.if_, ("route", "when", i, "if"))
            if expr is not None:
                routes.append(RouteChoice(expr, choice.channel))
        auto = rule.auto_close
        message = rule.message
        return CompiledRule(
            escalations=self._escalations(),
            responses=self._responses(),
            question=self.template(rule.ask.question if rule.ask else None, ("ask", "question")),
            rule=rule,
            path=self.doc.path,
            match_when=self.expression(rule.match.when, ("match", "when"), allow_io=False),
            routes=tuple(routes),
            auto_close=self.expression(auto.when if auto else None, ("auto_close", "when")),
            title=self.template(message.title if message else None, ("message", "title")),
            body=self.template(message.body if message else None, ("message", "body")),
        )


    def _escalations(self) -> tuple[EscalationChoice, ...]:
        found = []
        for i, entry in enumerate(self.rule.escalate):
            self._check_destinations(i, entry.destinations())
            expr = self.expression(entry.if_, ("escalate", i, "if"))
            if expr is not None:
                found.append(EscalationChoice(expr, entry))
        return tuple(found)

    def _check_destinations(self, index: int, names: tuple[str, ...]) -> None:
        if self.destinations is None:
            return
        for name in names:
            if name not in self.destinations:
                known = ", ".join(sorted(self.destinations)) or "none"
                self.problem(("escalate", index),
                             f"escalate[{index}]: destination {name!r} is not configured "
                             f"(configured: {known})")

    def _responses(self) -> tuple[ResponseChoice, ...]:
        found = []
        for i, entry in enumerate(self.rule.respond):
            expr = self.expression(entry.when, ("respond", i, "when"))
            if entry.when is None or expr is not None:
                found.append(ResponseChoice(expr, entry))
        return tuple(found)


def load_rule_file(
    path: Path, *, timeout: float = 0.25, destinations: frozenset[str] | None = None,
    lists: Mapping[str, frozenset[str]] | None = None,
) -> tuple[CompiledRule | None, list[RuleProblem]]:
    """One file → its compiled rule (None when it has problems) and the problems.

    ``destinations``: the destination names ``escalate`` may use (None: not checked).
    ``lists``: the named lists (:mod:`secbot.rules.lists`) bound to the rule's expressions
    for ``inList``; a list name not among them is a problem (None: no lists)."""
    try:
        doc = load_yaml(path)
    except YamlSyntaxError as exc:
        return None, [RuleProblem(path, exc.line, exc.message)]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [RuleProblem(path, 1, f"cannot read: {exc}")]
    if not isinstance(doc.data, dict):
        return None, [RuleProblem(path, 1, "a rule file must be a mapping (id, name, match, …)")]
    try:
        rule = Rule.model_validate(doc.data)
    except ValidationError as exc:
        return None, _schema_problems(doc, exc)
    compiler = _Compiler(doc, rule, timeout, destinations, lists)
    compiled = compiler.compile()
    return (None if compiler.problems else compiled), compiler.problems


def rule_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def validate_rules(
    directory: Path, *, timeout: float = 0.25, destinations: frozenset[str] | None = None,
    lists: Mapping[str, frozenset[str]] | None = None,
) -> tuple[RuleSet, list[RuleProblem]]:
    """Load every rule file; returns what loaded and every problem found (sorted by file)."""
    if not directory.is_dir():
        return RuleSet(()), [RuleProblem(directory, 0, "rules directory does not exist")]
    compiled: list[CompiledRule] = []
    problems: list[RuleProblem] = []
    seen: dict[str, Path] = {}
    for path in rule_files(directory):
        rule, found = load_rule_file(path, timeout=timeout, destinations=destinations,
                                     lists=lists)
        problems.extend(found)
        if rule is None:
            continue
        if rule.id in seen:
            problems.append(
                RuleProblem(path, 1, f"duplicate rule id {rule.id!r} (also {seen[rule.id]})")
            )
            continue
        seen[rule.id] = path
        compiled.append(rule)
    return RuleSet(tuple(compiled)), problems


def load_rules(
    directory: Path, *, timeout: float = 0.25, destinations: frozenset[str] | None = None,
    lists: Mapping[str, frozenset[str]] | None = None,
) -> RuleSet:
    """The rule set, or :class:`RuleLoadError` listing every problem. Never half a rule set."""
    ruleset, problems = validate_rules(directory, timeout=timeout, destinations=destinations,
                                       lists=lists)
    if problems:
        raise RuleLoadError(problems)
    return ruleset


__all__ = [
    "IO_FUNCTIONS",
    "RuleLoadError",
    "RuleProblem",
    "load_rule_file",
    "load_rules",
    "validate_rules",
]
