"""Rules as objects: each rule's own examples, selection in check and rewrite, the README table."""

import re
import shutil
from pathlib import Path

import pytest

from maskfix import cli, codes, engine
from maskfix.rules import RULES, active_rules

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = [(code, kind, i) for code, rule in RULES.items()
            for kind in ("VALID", "INVALID") for i in range(len(getattr(rule, kind)))]


def codes_in(source, select=None):
    out = engine.run({"m.py": source}, select=select)["m.py"]
    assert out.error is None, out.error
    return [f.code for f in out.findings]


def test_every_rule_has_examples_and_one_module():
    assert list(RULES) == sorted(RULES) and all(re.fullmatch(r"MF\d{3}", c) for c in RULES)
    assert {f"MF00{i}" for i in range(1, 9)} <= set(RULES)
    for code, rule in RULES.items():
        assert rule.VALID and rule.INVALID, code
        assert type(rule).__module__.startswith(f"maskfix.rules.{code.lower()}_")
        assert rule.name and rule.summary and rule.description and rule.fixed and rule.explanation


@pytest.mark.parametrize("code,kind,i", EXAMPLES)
def test_rule_examples(code, kind, i):
    rule = RULES[code]
    source = getattr(rule, kind)[i]
    compile(source, f"{code}-{kind}-{i}", "exec")
    found = codes_in(source)
    if kind == "INVALID":
        assert code in found
    else:
        assert code not in found


@pytest.mark.parametrize("code", [c for c, r in RULES.items() if r.fixed.startswith("yes")])
def test_each_fix_removes_its_finding_and_touches_nothing_else(code):
    for source in RULES[code].INVALID:
        out = engine.run({"m.py": source}, fix=True, select=[code])["m.py"]
        assert out.new_source and out.new_source != source
        assert code not in codes_in(out.new_source)


def test_codes_come_from_the_rule_modules():
    assert list(codes.CODES) == list(RULES)
    for code, info in codes.CODES.items():
        assert info["name"] == RULES[code].name
        assert info["summary"] == RULES[code].summary
        assert info["explanation"] == RULES[code].explanation


def test_readme_codes_table_matches_the_rules():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Codes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if re.match(r"\| MF\d{3} \|", line)]
    expected = [f"| {code} | {rule.description} | {rule.fixed} |" for code, rule in RULES.items()]
    assert rows == expected


def test_selected_rules_pull_in_what_they_follow_up_on():
    assert [r.code for r in active_rules(["MF002"])] == ["MF001", "MF002"]
    assert [r.code for r in active_rules(["MF00"])] == [c for c in RULES if c.startswith("MF00")]
    assert [r.code for r in active_rules(["MF"])] == list(RULES)
    assert [r.code for r in active_rules(["mf007"])] == ["MF007"]


# A decoder with MF001 and an embedding with MF007 in one file.
BOTH = RULES["MF007"].INVALID[0] + "\n\n" + RULES["MF001"].INVALID[0].split("\n\n\n", 1)[1]


def test_select_chooses_what_rewrite_fixes():
    assert codes_in(BOTH) == ["MF007", "MF001"]
    only = engine.run({"m.py": BOTH}, fix=True, select=["MF007"])["m.py"]
    assert [f.code for f in only.findings] == ["MF007"]
    assert "if mask is None:\n            return None" not in only.new_source
    assert "encoder_padding_mask" not in only.new_source  # the decoder is left alone
    assert codes_in(only.new_source) == ["MF001"]
    unthreaded = engine.run({"m.py": RULES["MF002"].INVALID[0]}, fix=True, select=["MF002"])["m.py"]
    assert [f.code for f in unthreaded.findings] == ["MF002"] and unthreaded.new_source is None


def test_cli_rewrite_select_and_config_select(tmp_path, capsys):
    path = tmp_path / "m.py"
    path.write_text(BOTH)
    assert cli.main(["rewrite", "--select", "MF007", str(path)]) == 1
    assert "encoder_padding_mask" not in path.read_text() and "return None" not in path.read_text()
    path = tmp_path / "configured" / "m.py"  # a folder whose configuration was never read
    path.parent.mkdir()
    path.write_text(BOTH)
    (path.parent / "pyproject.toml").write_text('[tool.maskfix]\nselect = ["MF007"]\n')
    assert cli.main(["rewrite", str(path)]) == 1
    assert "encoder_padding_mask" not in path.read_text()
    capsys.readouterr()


def test_unselected_rule_leaves_golden_fixture_unchanged(tmp_path, capsys):
    shutil.copy(FIXTURES / "book_tf" / "before.py", tmp_path / "m.py")
    before = (tmp_path / "m.py").read_bytes()
    assert cli.main(["rewrite", "--select", "MF004", str(tmp_path)]) == 0
    assert (tmp_path / "m.py").read_bytes() == before
    capsys.readouterr()
