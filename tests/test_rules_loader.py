"""Rule files: shipped rules load; every kind of mistake is reported as path:line: message."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from shipped import shipped_rules

from secbot.rules.loader import RuleLoadError, load_rules, validate_rules
from secbot.rules.schema import rule_json_schema

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"

GOOD = """\
id: {id}
name: Example
match:
  rule_name: Example rule
fields: [user.email]
dedup: {{key: [user.email], window: 2h}}
route: {{channel: C0EXAMPLE}}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(directory: Path) -> list[str]:
    _, problems = validate_rules(directory)
    return [str(p) for p in problems]


def test_shipped_rules_load_and_each_has_positive_and_negative_tests() -> None:
    rules = shipped_rules()
    assert len(rules) >= 5
    for rule in rules:
        assert rule.id == rule.path.stem
        expects = [t.expect for t in rule.rule.tests]
        assert any(e.matched is True for e in expects), rule.id
        assert any(e.matched is False or e.auto_close is False for e in expects), rule.id


def test_good_rule_loads(tmp_path: Path) -> None:
    write(tmp_path, "example", GOOD.format(id="example"))
    rules = load_rules(tmp_path)
    assert rules[0].rule.dedup is not None and rules[0].rule.dedup.window == 7200


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (GOOD.format(id="r") + "colour: blue\n", 8, "unknown key 'colour'"),
        (GOOD.format(id="r").replace("window: 2h", "window: two hours"), 6, "not a duration"),
        (GOOD.format(id="r").replace("window: 2h", "window: 0s"), 6, "must be positive"),
        (GOOD.format(id="other"), 1, "must equal the file name 'r'"),
        (
            GOOD.format(id="r") + "enrich: [gcp_project, crystal_ball]\n",
            8,
            "unknown enricher 'crystal_ball'",
        ),
        (GOOD.format(id="r") + "auto_close:\n  when: alert.__class__\n", 9, "auto_close.when"),
        (GOOD.format(id="r") + "auto_close:\n  when: exec('1')\n", 9, "exec"),
        (
            GOOD.format(id="r") + "auto_close:\n  when: 'IncludedFields[\"a\"] =='\n",
            9,
            "auto_close.when",
        ),
        (GOOD.format(id="r") + "auto_close: {when: 'true', reason: ''}\n", 8, "reason"),
        (GOOD.format(id="r") + "message: {title: '{{ fields[ }}'}\n", 8, "template"),
        (GOOD.format(id="r") + "severity: urgent\n", 8, "severity"),
        (GOOD.format(id="r").replace("C0EXAMPLE", "general"), 7, "channel"),
        (GOOD.format(id="r").replace("  rule_name: Example rule\n", "  {}\n"), 3, "match"),
        ("id: r\nname: [unclosed\n", 2, "YAML"),
        ("id: r\nid: r\nname: x\nmatch: {rule_name: x}\n", 2, "duplicate key 'id'"),
        (GOOD.format(id="r").replace("name: Example\n", ""), 1, "name: Field required"),
    ],
)
def test_problem_is_reported_with_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = write(tmp_path, "r", text)
    problems = problems_of(tmp_path)
    assert problems, "expected a problem"
    assert any(p.startswith(f"{path}:{line}: ") and fragment in p for p in problems), problems


def test_io_function_in_match_when_is_rejected(tmp_path: Path) -> None:
    text = GOOD.format(id="r").replace(
        "  rule_name: Example rule\n", '  when: isUserOnCall(IncludedFields["user.email"])\n'
    )
    write(tmp_path, "r", text)
    assert any("not allowed in match" in p for p in problems_of(tmp_path))


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a", GOOD.format(id="a"))
    write(tmp_path, "b", GOOD.format(id="a"))
    problems = problems_of(tmp_path)
    assert any("must equal the file name" in p for p in problems)


def test_one_broken_file_means_no_rule_set(tmp_path: Path) -> None:
    write(tmp_path, "good", GOOD.format(id="good"))
    write(tmp_path, "bad", GOOD.format(id="bad") + "oops: 1\n")
    with pytest.raises(RuleLoadError) as info:
        load_rules(tmp_path)
    assert len(info.value.problems) == 1 and "bad.yaml:8:" in str(info.value)


def test_json_schema_describes_the_format() -> None:
    schema = rule_json_schema()
    assert {"id", "name", "match"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    json.dumps(schema)


def test_too_many_fields_is_an_error_naming_the_count_and_the_limit(tmp_path: Path) -> None:
    """Hundreds of fields used to push the status block out of the message (issue 10)."""
    names = ", ".join(f"field.n{i}" for i in range(300))
    write(
        tmp_path, "big", GOOD.format(id="big").replace("fields: [user.email]", f"fields: [{names}]")
    )
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{tmp_path / 'big.yaml'}:5: fields")
    assert "300 names listed, at most 50 allowed" in problem
    fifty = ", ".join(f"field.n{i}" for i in range(50))
    write(
        tmp_path, "big", GOOD.format(id="big").replace("fields: [user.email]", f"fields: [{fifty}]")
    )
    assert problems_of(tmp_path) == []
