"""Named lists (``lists/<name>.txt``) and ``inList``: loading, validation with path:line, the
comparison rules, and how rules see them (bound at load; an unknown list is a load error)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from secbot.expressions import EvalContext, ExpressionSyntaxError, compile_expression
from secbot.rules.lists import (
    MAX_LIST_BYTES,
    MAX_LIST_VALUES,
    NamedLists,
    lists_dir_beside,
    load_lists,
    validate_lists,
)
from secbot.rules.loader import RuleLoadError, validate_rules

REPO = Path(__file__).resolve().parents[1]


def write(directory: Path, name: str, text: str | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems_of(directory: Path) -> list[str]:
    return [str(p) for p in validate_lists(directory)[1]]


def ctx(**fields: object) -> EvalContext:
    return EvalContext(included_fields=fields, alert={}, enrichments={})


def test_shipped_lists_load_and_hold_the_demo_people_and_hosts() -> None:
    lists = load_lists(REPO / "lists")
    assert set(lists) >= {"vips", "admins", "domain_controllers"}
    assert lists.contains("vips", "Carol@Example.com")
    assert lists.contains("domain_controllers", "DC01.corp.example.com")
    assert not lists.contains("vips", "alice@example.com")


def test_comments_blank_lines_and_case(tmp_path: Path) -> None:
    write(tmp_path, "vips.txt", "# the VIPs\n\n  CEO@Example.com  \ncfo@example.com # finance\n"
                                "\t# indented comment\n")
    lists = load_lists(tmp_path)
    assert lists["vips"] == frozenset({"ceo@example.com", "cfo@example.com"})


def test_a_missing_directory_is_no_lists() -> None:
    assert validate_lists(Path("/nonexistent/lists")) == (NamedLists(), [])


def test_other_files_are_not_lists(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "not a list")
    write(tmp_path, "vips.txt", "a@example.com\n")
    assert set(load_lists(tmp_path)) == {"vips"}


@pytest.mark.parametrize("name", ["VIPs.txt", "my list.txt", "-x.txt", "vips.TXT"])
def test_a_bad_file_name_is_an_error_with_its_path(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, "a@example.com\n")
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:1: list file name")


def test_an_empty_list_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "vips.txt", "# nobody yet\n\n")
    assert problems_of(tmp_path) == [
        f"{path}:1: list is empty (no values, only comments or blank lines); delete the file "
        "instead"]


def test_a_duplicate_names_both_lines_whatever_the_case(tmp_path: Path) -> None:
    path = write(tmp_path, "vips.txt", "ceo@example.com\n# x\nCEO@example.com\n")
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:3: duplicate value 'CEO@example.com' (also line 1")


def test_whitespace_inside_a_value_and_invisible_characters(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.txt", "dc01 dc02\nok\ndc\u202e03\n")
    assert [p.split(": ", 1)[0] for p in problems_of(tmp_path)] == [f"{path}:1", f"{path}:3"]


def test_too_many_values_or_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "a", "many.txt",
                 "".join(f"h{i}\n" for i in range(MAX_LIST_VALUES + 1)))
    [problem] = problems_of(tmp_path / "a")
    assert problem == f"{path}:{MAX_LIST_VALUES + 1}: list has more than {MAX_LIST_VALUES:,} values"
    big = write(tmp_path / "b", "big.txt", "x" * (MAX_LIST_BYTES + 1))
    [problem] = problems_of(tmp_path / "b")
    assert problem.startswith(f"{big}:1: list file is too large")


def test_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "vips.txt", b"\xff\xfe a\n")
    assert problems_of(tmp_path) == [f"{path}:1: cannot read: not UTF-8 text"]


def test_load_lists_raises_with_every_problem(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "")
    write(tmp_path, "B.txt", "x\n")
    with pytest.raises(RuleLoadError) as raised:
        load_lists(tmp_path)
    assert len(raised.value.problems) == 2


# -- inList ------------------------------------------------------------------------------------

LISTS = NamedLists({"vips": frozenset({"ceo@example.com"}), "ports": frozenset({"22"})})


@pytest.mark.parametrize(("value", "expected"), [
    ("ceo@example.com", True),
    (" CEO@EXAMPLE.COM ", True),
    ("cfo@example.com", False),
    (["x@example.com", "Ceo@example.com"], True),  # an ECS array: any element
    (None, False),
    (22, False),  # numbers compare as text, against their own list
])
def test_in_list_compares_trimmed_and_case_folded(value: object, expected: bool) -> None:
    expr = compile_expression('inList(IncludedFields["v"], "vips")', lists=LISTS)
    assert expr.decide(ctx(v=value)).value is expected
    assert compile_expression('inList(22, "ports")', lists=LISTS).decide(ctx()).value


def test_an_unknown_literal_list_is_a_compile_error() -> None:
    with pytest.raises(ExpressionSyntaxError, match=r"unknown list 'vip' \(lists: ports, vips\)"):
        compile_expression('inList(IncludedFields["v"], "vip")', lists=LISTS)


@pytest.mark.parametrize("source", ['inList(IncludedFields["v"], alert["which"])',
                                    'inList(IncludedFields["v"])',
                                    'inList(IncludedFields["v"], name="vips")'])
def test_the_list_name_must_be_a_literal_second_argument(source: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match="inList"):
        compile_expression(source, lists=LISTS)


def test_without_lists_bound_an_evaluated_in_list_errors_and_is_false() -> None:
    verdict = compile_expression('inList("a", "vips")').decide(ctx())
    assert verdict.value is False
    assert verdict.error == "inList(): unknown list 'vips' (lists: none loaded)"


def test_rules_naming_an_unknown_list_fail_to_load_with_path_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rule = write(rules, "vip.yaml", """id: vip
name: VIP
match: {rule_name: X}
fields: [user.email]
escalate:
  - if: 'inList(IncludedFields["user.email"], "vipz")'
    page: pagerduty
""")
    _, problems = validate_rules(rules, lists=LISTS)
    assert [str(p) for p in problems] == [
        f"{rule}:6: escalate[0].if: inList(): unknown list 'vipz' (lists: ports, vips)"]
    ruleset, problems = validate_rules(rules, lists=NamedLists({"vipz": frozenset({"a"})}))
    assert problems == [] and len(ruleset) == 1


def secbot(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secbot", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_rules_validate_reports_list_problems_and_unknown_lists(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    bad = write(lists, "vips.txt", "a@example.com\nA@example.com\n")
    rules = tmp_path / "rules"
    rule = write(rules, "vip.yaml", """id: vip
name: VIP
match:
  rule_name: X
route: {channel: C0X}
auto_close:
  when: 'inList(alert["user.email"], "admins")'
""")
    result = secbot("rules", "validate", str(rules), "--lists", str(lists))
    assert result.returncode == 1
    assert f"{bad}:2: duplicate value 'A@example.com' (also line 1" in result.stdout
    assert f"{rule}:7: auto_close.when: inList(): unknown list 'admins'" in result.stdout


def test_rules_validate_and_test_pass_on_the_shipped_rules_and_lists() -> None:
    result = secbot("rules", "validate", "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 lists OK" in result.stdout
    tested = secbot("rules", "test", "rules")
    assert tested.returncode == 0, tested.stdout
    assert tested.stdout.strip().endswith(" 0 failed")


def test_a_relative_lists_dir_missing_here_is_found_beside_the_rules(tmp_path: Path) -> None:
    assert lists_dir_beside(Path("lists"), REPO / "rules") in (Path("lists"), REPO / "lists")
    assert lists_dir_beside(Path("no-such-lists"), REPO / "rules") == Path("no-such-lists")
    assert lists_dir_beside(tmp_path / "x", REPO / "rules") == tmp_path / "x"  # absolute: as is
    result = secbot("rules", "validate", str(REPO / "rules"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 lists OK" in result.stdout
