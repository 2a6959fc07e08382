"""Promises the project makes about itself: boundaries, docs that match the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from audit.guideline import RULE_CODES, GuidelineError, parse_guideline
from audit.rules import RULES
from flows.cli import COMMANDS, build_parser
from validators.guideline_source import load_guideline, packaged_profiles, read_guideline_text

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "audit").rglob("*.py")), ids=lambda p: p.name)
def test_audit_core_is_pure(path: Path) -> None:
    """audit/ imports no Prefect, openpyxl, pandera or file/clock helpers."""
    forbidden = {"prefect", "openpyxl", "pandera", "validators", "flows", "report", "os", "pathlib", "time"}
    assert not (_imports(path) & forbidden)
    source = path.read_text(encoding="utf-8")
    for call in ("datetime.now", "date.today", "open("):
        assert call not in source


@pytest.mark.parametrize("path", sorted((ROOT / "audit" / "rules").glob("*.py")), ids=lambda p: p.name)
def test_rule_code_has_no_guideline_numbers(path: Path) -> None:
    """Rule modules compare with numbers read from the guideline, never with numeric literals."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    literals = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, int | float) and not isinstance(n.value, bool)
    ]
    # 0-2 appear only as rounding digits / list positions / the "+1" of "the first cycle past the maximum".
    assert set(literals) <= {0, 1, 2, 100}


def test_rules_table_matches_rule_codes() -> None:
    """RULES lists every rule code once, in RULE_CODES order."""
    assert tuple(code for code, _ in RULES) == RULE_CODES


def _readme_rules() -> dict[str, tuple[str, list[str]]]:
    table: dict[str, tuple[str, list[str]]] = {}
    for line in README.splitlines():
        m = re.match(r"^\| `([A-Z0-9_]+)` \| (high|medium|low) \|[^|]*\| ([^|]*) \|", line)
        if m:
            table[m.group(1)] = (m.group(2), re.findall(r"`([a-z0-9_]+)`", m.group(3)))
    return table


def test_readme_rule_table_agrees_with_profile() -> None:
    """README's rule table has every rule with the profile's severity and parameters."""
    g = load_guideline("mayo-2013")
    table = _readme_rules()
    assert list(table) == list(RULE_CODES)
    for code, (severity, params) in table.items():
        assert severity == g.rules[code].severity, code
        assert params == list(g.rules[code].parameters), code


def test_every_cli_command_and_option_is_documented() -> None:
    """Each CLI command and each `run` option appears in the README."""
    parser = build_parser()
    for command in COMMANDS:
        assert f"ivig-audit {command}" in README, command
    sub = next(a for a in parser._actions if a.dest == "command")
    run = sub.choices["run"]  # type: ignore[attr-defined]
    for action in run._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in README, flag


def test_every_parameter_has_unit_and_source() -> None:
    """Every parameter in every packaged profile has a unit, a section and a known source."""
    for name in packaged_profiles():
        g = load_guideline(name)
        ids = {s.id for s in g.sources}
        for key, p in g.parameters.items():
            assert p.unit, key
            assert p.section, key
            assert p.source in ids, key


def test_profile_missing_parameter_is_refused() -> None:
    """A profile without a required parameter is refused with a message naming it."""
    text, _ = read_guideline_text("mayo-2013")
    broken = re.sub(r"\[parameters\.max_g_per_kg\][^\[]*", "", text)
    with pytest.raises(GuidelineError, match="missing parameters: max_g_per_kg"):
        parse_guideline(broken, "broken.toml")


def test_unknown_profile_name_lists_the_known_ones() -> None:
    """An unknown --guideline value names the packaged profiles."""
    with pytest.raises(GuidelineError, match="mayo-2013"):
        load_guideline("no-such-profile")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    """A profile file that isn't TOML is refused naming the file."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[profile\nname=", encoding="utf-8")
    with pytest.raises(GuidelineError, match=r"bad\.toml: not valid TOML"):
        load_guideline(str(bad))
