"""Hostile rules (issue #6 item 5): every bad rule gets a clear ``path:line: message``.

* ``tests/hostile/rules/*.yaml``: one schema or YAML problem per file (unknown keys at every
  level, wrong types, missing keys, bad durations/channels/severities/reasons, id ≠ file name,
  duplicate keys, alias bombs, deep nesting, tabs, BOM, bad bytes, empty and non-mapping
  documents…). Each file's ``# expect: <line>: <text>`` lines are exactly the problems
  ``validate_rules`` must report; ``# expect: ok`` means the rule loads.
* ``tests/hostile/expressions.yaml``: expression escape attempts, each tried in ``match.when``,
  ``route.when`` and ``auto_close.when``: refused at load, or a safe error while evaluating.
* ``tests/hostile/templates.yaml``: message-template attacks: refused at load, or the default
  message with a note.
* Generated here: an empty file, a 10 MB file, a file that is a symlink to ``/dev/zero``.

Nothing may crash the loader or take long.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostile_support import ALERT_SECONDS, HOSTILE, Stopwatch, message_problems

from secbot.domain.alert import Alert
from secbot.enrich.engine import EnrichmentEngine
from secbot.pipeline.decision import Decision
from secbot.pipeline.pipeline import Pipeline
from secbot.rules.loader import RuleProblem, validate_rules
from secbot.rules.ruleset import RuleSet
from secbot.store.memory import MemoryStore

RULES = HOSTILE / "rules"
RULE_FILES = sorted(RULES.glob("*.yaml"))
EXPRESSIONS: list[dict[str, str]] = yaml.safe_load(
    (HOSTILE / "expressions.yaml").read_text(encoding="utf-8")
)
TEMPLATES: list[dict[str, str]] = yaml.safe_load(
    (HOSTILE / "templates.yaml").read_text(encoding="utf-8")
)
#: Budget for validating one file (the brief: none hangs).
FILE_SECONDS = 2.0
_EXPECT = re.compile(rb"^# expect: (ok|(\d+): (.*))$", re.MULTILINE)

SIEM_RULE = "Hostile SIEM Rule"
ALERT: dict[str, Any] = {
    "kibana.alert.uuid": "hostile-rule-1",
    "kibana.alert.rule.name": SIEM_RULE,
    "user": {"email": "a@example.com", "roles": ["dev"]},
    "cloud.project.id": "sandbox-tools",
}


def expectations(path: Path) -> list[tuple[int, str]] | None:
    """The file's ``# expect:`` lines as (line, text); None for ``# expect: ok``."""
    data = path.read_bytes()
    if data.startswith(b"\xff\xfe"):  # the UTF-16 file states its expectation in UTF-16
        data = data.decode("utf-16").encode("utf-8")
    data = data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    found = _EXPECT.findall(data)
    assert found, f"{path.name} has no '# expect:' line"
    if found[0][0] == b"ok":
        return None
    return [(int(line), text.decode()) for _, line, text in found]


def validate_alone(path: Path, directory: Path) -> tuple[RuleSet, list[RuleProblem]]:
    """``validate_rules`` on a directory holding only ``path`` (as a copy of its bytes)."""
    directory.mkdir(exist_ok=True)
    shutil.copyfile(path, directory / path.name)
    with Stopwatch() as watch:
        ruleset, problems = validate_rules(directory)
    watch.check(FILE_SECONDS, path.name)
    return ruleset, problems


def assert_well_formed(problem: RuleProblem, path: Path) -> None:
    text = str(problem)
    assert text.startswith(f"{path}:{problem.line}: "), text
    assert problem.line >= 1 and problem.message.strip(), text
    assert "\n" not in text, f"one line per problem: {text!r}"
    assert "Traceback" not in text


# -- one bad rule per file ------------------------------------------------------------------


def test_the_corpus_has_a_file_per_kind_of_problem() -> None:
    stems = {path.stem for path in RULE_FILES}
    for prefix in ("unknown_key_", "missing_", "duration_", "channel_", "severity_", "yaml_",
                   "expression_", "reason_", "fields_", "test_"):
        assert any(stem.startswith(prefix) for stem in stems), prefix
    assert len(RULE_FILES) >= 90
    print(f"\nhostile rule files: {len(RULE_FILES)}, expressions: {len(EXPRESSIONS)} × 3 places,"
          f" templates: {len(TEMPLATES)}", file=sys.stderr)


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.stem for p in RULE_FILES])
def test_each_bad_rule_gets_exactly_its_problems(path: Path, tmp_path: Path) -> None:
    expected = expectations(path)
    copy = tmp_path / "rules" / path.name
    ruleset, problems = validate_alone(path, tmp_path / "rules")
    for problem in problems:
        assert_well_formed(problem, copy)
    if expected is None:
        assert problems == [] and [rule.id for rule in ruleset] == [path.stem]
        return
    assert len(ruleset) == 0
    got = [(p.line, p.message) for p in problems]
    for line, text in expected:
        assert any(g_line == line and text in message for g_line, message in got), (
            f"expected line {line}: {text!r}; got {got}"
        )
    assert len(got) == len(expected), got


def test_the_whole_hostile_directory_at_once() -> None:
    with Stopwatch() as watch:
        ruleset, problems = validate_rules(RULES)
    watch.check(15.0, "the whole directory")
    loaded = {rule.id for rule in ruleset}
    assert loaded == {p.stem for p in RULE_FILES if expectations(p) is None}
    files_with_problems = {p.path.name for p in problems}
    assert files_with_problems == {p.name for p in RULE_FILES if expectations(p) is not None}


def test_cli_validate_lists_every_problem_and_exits_1() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "secbot", "rules", "validate", str(RULES)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    output = result.stdout + result.stderr
    for path in RULE_FILES:
        if expectations(path) is not None:
            assert re.search(rf"{re.escape(str(path))}:\d+: ", output), path.name


# -- generated files -----------------------------------------------------------------------


def _generated(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(file name, expected message) for files too big or too odd to keep in the repository."""
    (tmp_path / "empty.yaml").write_bytes(b"")
    yield "empty.yaml", "a rule file must be a mapping"
    big = b"id: huge\nname: x\nmatch: {rule_name: a}\ndescription: |\n" + b"  " + b"x" * 98 + b"\n"
    (tmp_path / "huge.yaml").write_bytes(big + (b"  " + b"y" * 98 + b"\n") * 100_000)
    yield "huge.yaml", "file is larger than 1,000,000 bytes"
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    yield "zero.yaml", "file is larger than 1,000,000 bytes"
    (tmp_path / "directory.yaml").mkdir()
    yield "directory.yaml", "cannot read"


def test_empty_huge_endless_and_unreadable_files(tmp_path: Path) -> None:
    expected = dict(_generated(tmp_path))
    with Stopwatch() as watch:
        _, problems = validate_rules(tmp_path)
    watch.check(5.0, "generated files")
    got = {p.path.name: p for p in problems}
    assert set(got) == set(expected)
    for name, text in expected.items():
        assert text in got[name].message, got[name]
        assert_well_formed(got[name], tmp_path / name)


def test_duplicate_ids_across_files_are_reported(tmp_path: Path) -> None:
    for name in ("a_rule.yaml", "a_rule.yml"):
        (tmp_path / name).write_text("id: a_rule\nname: x\nmatch: {rule_name: a}\n")
    _, problems = validate_rules(tmp_path)
    assert [p.message for p in problems] == [
        f"duplicate rule id 'a_rule' (also {tmp_path / 'a_rule.yaml'})"
    ]


# -- expression escape attempts, in each place an expression can be -------------------------


def rule_text(place: str, source: str, stem: str = "escape") -> tuple[str, int]:
    """A rule with ``source`` in ``place``; returns the text and the line ``source`` is on."""
    quoted = json.dumps(source)  # a JSON string is a valid YAML double-quoted scalar
    lines = [f"id: {stem}", "name: Expression escape", "match:", f"  rule_name: {SIEM_RULE}"]
    if place == "match":
        lines.append(f"  when: {quoted}")
    lines += ["fields: [user.email, cloud.project.id]", "route:", "  channel: C0RULE"]
    if place == "route":
        lines += ["  when:", f"    - {{if: {quoted}, channel: C0ROUTE}}"]
    if place == "auto_close":
        lines += ["auto_close:", "  reason: false_positive", f"  when: {quoted}"]
    target = {"match": "  when:", "route": "    - {if:", "auto_close": "  when:"}[place]
    line = next(i for i, text in enumerate(lines, 1) if text.startswith(target))
    return "\n".join(lines) + "\n", line


def decide(ruleset: RuleSet) -> Decision:
    """The real pipeline's decision for :data:`ALERT`, within the per-alert budget."""
    pipeline = Pipeline(ruleset, EnrichmentEngine({}), MemoryStore(), default_channel="C0DEF")
    with Stopwatch() as watch:
        decision = asyncio.run(pipeline.process(Alert.from_hit(dict(ALERT))))
    watch.check(ALERT_SECONDS, "pipeline")
    return decision


LOCATIONS = {"match": "match.when", "route": "route.when[0].if", "auto_close": "auto_close.when"}
CASES = [(entry, place) for entry in EXPRESSIONS for place in LOCATIONS]


@pytest.mark.parametrize(("entry", "place"), CASES,
                         ids=[f"{place}:{entry['expr'][:40]}" for entry, place in CASES])
def test_expression_escape_is_refused_or_fails_safely(
    entry: dict[str, str], place: str, tmp_path: Path
) -> None:
    text, line = rule_text(place, entry["expr"])
    path = tmp_path / "escape.yaml"
    path.write_text(text, encoding="utf-8")
    with Stopwatch() as watch:
        ruleset, problems = validate_rules(tmp_path)
    watch.check(FILE_SECONDS, "validate")
    for problem in problems:
        assert_well_formed(problem, path)
    expected = entry.get("reject")
    uses_io = any(name in entry["expr"] for name in ("getProjectDetails(", "isUserOnCall("))
    if place == "match" and expected is None and uses_io:
        expected = "needs enrichment; not allowed in match"
    if expected is not None:
        assert [(p.line, p.message.split(": ", 1)[0]) for p in problems] == [
            (line, LOCATIONS[place])
        ], problems
        assert expected in problems[0].message, problems[0].message
        return
    assert problems == [], problems
    decision = decide(ruleset)
    assert decision.post and not decision.auto_close
    assert message_problems(decision.message) == []
    errors = entry["error"].split(" | ")
    if place == "match" and "budget exceeded" in errors:
        # The rule is stopped, not skipped: it takes the alert, cannot close it, says why.
        assert decision.rule_id == "escape" and decision.channel == "C0RULE"
        assert any(note.startswith("not auto-closed: budget exceeded")
                   and "rule stopped in match.when" in note for note in decision.notes), (
            decision.notes)
    elif place == "match":  # an erroring match does not match: posted as unmatched
        assert decision.rule_id is None and decision.channel == "C0DEF"
    elif place == "route":
        assert decision.channel == "C0RULE"
        assert any("skipped" in note and any(e in note for e in errors)
                   for note in decision.notes), decision.notes
    else:
        assert any(note.startswith("not auto-closed") and any(e in note for e in errors)
                   for note in decision.notes), decision.notes


# -- message templates -------------------------------------------------------------------------


@pytest.mark.parametrize("entry", TEMPLATES, ids=[t["template"][:40] for t in TEMPLATES])
def test_template_attack_is_refused_or_falls_back(entry: dict[str, str], tmp_path: Path) -> None:
    quoted = json.dumps(entry["template"])
    path = tmp_path / "tpl.yaml"
    path.write_text(
        f"id: tpl\nname: Template attack\nmatch: {{rule_name: {SIEM_RULE}}}\n"
        f"fields: [user.email]\nroute: {{channel: C0RULE}}\nmessage:\n  title: {quoted}\n",
        encoding="utf-8",
    )
    with Stopwatch() as watch:
        ruleset, problems = validate_rules(tmp_path)
    watch.check(FILE_SECONDS, "validate")
    if "reject" in entry:
        assert len(problems) == 1 and problems[0].line == 7, problems
        assert_well_formed(problems[0], path)
        assert entry["reject"] in problems[0].message
        return
    assert problems == [], problems
    decision = decide(ruleset)
    assert decision.post and decision.rule_id == "tpl"
    assert message_problems(decision.message) == []
    notes = json.dumps(decision.message)
    assert "message template failed, default shown" in notes
    assert entry["fallback"] in notes, notes
