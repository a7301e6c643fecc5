"""Command-line usage: configuration mistakes, standard input, code selection, ``maskfix rules``."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maskfix import codes
from maskfix.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
BUGGY = FIXTURES / "book_tf" / "before.py"


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def maskfix(*args, stdin=b"", cwd=None):
    """``python -m maskfix`` with bytes on stdin, as an editor runs it."""
    return subprocess.run([sys.executable, "-m", "maskfix", *args], input=stdin, cwd=cwd,
                          capture_output=True, timeout=120)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A project: pyproject.toml, a buggy model and a vendored copy of it; the working folder."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "third_party").mkdir()
    shutil.copy(BUGGY, tmp_path / "pkg" / "model.py")
    shutil.copy(BUGGY, tmp_path / "third_party" / "vendored.py")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def flagged(out: str):
    return sorted({line.split(":")[0] for line in out.splitlines() if " MF00" in line})


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("maskfix: error: ")]
    assert len(lines) == 1, err
    return lines[0]


# -- configuration mistakes are errors ------------------------------------------------------


@pytest.mark.parametrize("table, reason", [
    ('[tool.maskfix\nselect = ["MF001"]\n', "invalid TOML"),
    ('[tool.maskfix]\nexlude = ["third_party"]\n', "unknown key 'exlude' in [tool.maskfix] (did you mean 'exclude'?)"),
    ('[tool.maskfix]\nselect = "MF002"\n', "select must be a list of strings"),
    ('[tool.maskfix]\nexclude = "third_party"\n', "exclude must be a list of strings"),
    ('[tool.maskfix]\nselect = ["XYZ"]\n', "unknown code 'XYZ' in [tool.maskfix] select"),
    ('[tool.maskfix]\nignore = ["MF9"]\n', "unknown code 'MF9' in [tool.maskfix] ignore"),
    ("[tool]\nmaskfix = 3\n", "tool.maskfix must be a table"),
])
@pytest.mark.parametrize("command", ["check", "rewrite"])
def test_config_mistakes_are_errors(tree, capsys, table, reason, command):
    (tree / "pyproject.toml").write_text(table)
    before = (tree / "pkg" / "model.py").read_bytes()
    code, out, err = run([command, "pkg"], capsys)
    assert code == 2 and out == ""
    line = one_error(err)
    assert line.startswith(f"maskfix: error: {tree / 'pyproject.toml'}: ") and reason in line
    assert (tree / "pkg" / "model.py").read_bytes() == before


def test_a_pyproject_without_our_table_is_not_ours_to_judge(tree, capsys):
    """Another tool's broken pyproject.toml neither stops maskfix nor hides an outer table."""
    (tree / "third_party" / "pyproject.toml").write_text("[project\nname = 'vendored'\n")
    code, out, err = run(["check", "third_party/vendored.py"], capsys)
    assert code == 1 and "error" not in err and "MF001" in out, (out, err)
    (tree / "pyproject.toml").write_text('[tool.maskfix]\nignore = ["MF001"]\n')
    code, out, err = run(["check", "third_party/vendored.py"], capsys)
    assert code == 0 and "error" not in err and "MF001" not in out, (out, err)


def test_unknown_code_on_the_command_line_is_an_error(tree, capsys):
    for option in ("--select", "--ignore"):
        code, out, err = run(["check", option, "XYZ", "pkg"], capsys)
        assert code == 2 and out == ""
        assert f"unknown code 'XYZ' in {option}" in one_error(err)
    code, out, err = run(["check", "--select", "mf00", "pkg"], capsys)  # a prefix, any case
    assert code == 1 and "MF001" in out


def test_toml_reader_is_declared_for_old_pythons():
    """tomllib exists from Python 3.11; before that the configuration needs tomli."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.9"
    deps = [d.replace(" ", "") for d in project["dependencies"]]
    assert any(d.startswith("tomli") and "python_version<'3.11'" in d.replace('"', "'") for d in deps), deps


@pytest.mark.parametrize("pattern", ["third_party", "third_party/", "./third_party", "./third_party/",
                                     "third_party/*", "ABS", "ABS/", "third_party/vendored.py"])
def test_exclude_forms_on_the_command_line(tree, capsys, pattern):
    pattern = pattern.replace("ABS", str(tree / "third_party"))
    code, out, err = run(["check", "--exclude", pattern, "."], capsys)
    assert code == 1 and flagged(out) == [os.path.join("pkg", "model.py")], (pattern, out)


@pytest.mark.parametrize("pattern", ["third_party/", "./third_party", "ABS"])
def test_exclude_forms_in_the_configuration_are_relative_to_it(tree, capsys, pattern, monkeypatch):
    pattern = pattern.replace("ABS", str(tree / "third_party"))
    (tree / "pyproject.toml").write_text(f'[tool.maskfix]\nexclude = ["{pattern}"]\n')
    monkeypatch.chdir(tree / "pkg")  # anchored at the pyproject.toml, not the working folder
    code, out, err = run(["check", str(tree)], capsys)
    assert code == 1 and flagged(out) == [str(tree / "pkg" / "model.py")], (pattern, out)


def test_relative_exclude_is_anchored_not_matched_anywhere(tree, capsys):
    (tree / "pkg" / "third_party").mkdir()
    shutil.copy(BUGGY, tree / "pkg" / "third_party" / "deep.py")
    code, out, err = run(["check", "--exclude", "./third_party", "."], capsys)
    assert flagged(out) == [os.path.join("pkg", "model.py"), os.path.join("pkg", "third_party", "deep.py")]
    code, out, err = run(["check", "--exclude", "third_party", "."], capsys)  # a bare name: anywhere
    assert flagged(out) == [os.path.join("pkg", "model.py")]


# -- standard input ----------------------------------------------------------------------------


def test_rewrite_stdin_echoes_undecodable_input_unchanged(tmp_path):
    data = b"from tensorflow import keras\nname = '\xff\xfe'\r\n"
    proc = maskfix("rewrite", "-", stdin=data, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == data  # an editor replacing its buffer with stdout keeps the text
    assert proc.stderr.decode().startswith("maskfix: error: -: cannot decode as utf-8")


def test_rewrite_stdin_echoes_input_that_cannot_be_parsed(tmp_path):
    data = BUGGY.read_bytes() + b"\nclass Broken(:\n    pass\n"
    proc = maskfix("rewrite", "-", "--stdin-filename", "model.py", stdin=data, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == data
    assert "maskfix: error: model.py: cannot parse" in proc.stderr.decode()


def test_rewrite_stdin_echoes_input_on_a_configuration_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.maskfix]\nexlude = []\n")
    data = BUGGY.read_bytes()
    proc = maskfix("rewrite", "-", stdin=data, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == data
    assert "unknown key 'exlude'" in proc.stderr.decode()


def test_rewrite_stdin_without_changes_is_byte_identical(tmp_path):
    data = b"\xef\xbb\xbfimport os\r\nx = 1\r\n"
    proc = maskfix("rewrite", "-", stdin=data, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == data


def test_check_stdin_together_with_files(tree, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BUGGY.read_bytes())))
    code, out, err = run(["check", "-", "--stdin-filename", "editor.py", "pkg/model.py"], capsys)
    assert code == 1
    assert flagged(out) == ["editor.py", "pkg/model.py"]


def test_rewrite_stdin_with_files_is_a_clear_error(tree):
    proc = maskfix("rewrite", "-", "pkg/model.py", stdin=b"x = 1\n", cwd=tree)
    assert proc.returncode == 2
    assert "cannot be combined with other paths" in proc.stderr.decode()
    assert proc.stdout == b"x = 1\n"  # still handed back
    assert (tree / "pkg" / "model.py").read_bytes() == BUGGY.read_bytes()


def test_stdin_filename_needs_stdin(tree, capsys):
    code, out, err = run(["check", "--stdin-filename", "x.py", "pkg"], capsys)
    assert code == 2 and "--stdin-filename names standard input" in one_error(err)
    # With no path at all it means standard input, as in ruff.
    proc = maskfix("check", "--stdin-filename", "src/x.py", stdin=BUGGY.read_bytes(), cwd=tree)
    assert proc.returncode == 1 and proc.stdout.decode().startswith("src/x.py:93:13: MF001")


# -- options, rules, summaries ---------------------------------------------------------------


def test_format_has_help():
    proc = maskfix("check", "--help")
    text = " ".join(proc.stdout.decode().split())
    assert "--format {github,json,sarif,text}" in text
    assert "sarif: SARIF 2.1.0" in text and "github: GitHub Actions annotations" in text


def test_ignore_drops_the_code_from_check_and_rewrite(tree, capsys):
    code, out, err = run(["check", "--ignore", "MF001", "pkg"], capsys)
    assert (code, out) == (0, "")
    code, out, err = run(["rewrite", "--ignore", "MF001,MF003", "pkg"], capsys)
    assert code == 0
    assert (tree / "pkg" / "model.py").read_bytes() == BUGGY.read_bytes()
    (tree / "pyproject.toml").write_text('[tool.maskfix]\nignore = ["MF001"]\n')
    code, out, err = run(["check", "pkg"], capsys)
    assert (code, out) == (0, "")
    code, out, err = run(["check", "--select", "MF001", "pkg"], capsys)
    assert code == 1  # --select replaces the configured choice, ignore included, as in ruff
    code, out, err = run(["check", "--select", "MF001", "--ignore", "MF001", "pkg"], capsys)
    assert (code, out) == (0, "")


def test_path_defaults_to_the_working_folder(tree, capsys):
    code, out, err = run(["check"], capsys)
    assert code == 1
    assert flagged(out) == [os.path.join("pkg", "model.py"), os.path.join("third_party", "vendored.py")]


def test_summaries_use_singular_for_one(tree, capsys):
    (tree / "third_party" / "vendored.py").unlink()
    code, out, err = run(["rewrite", "--diff", "pkg"], capsys)
    assert err.strip() == "Would fix 1 problem in 1 file."
    (tree / "pkg" / "broken.py").write_bytes(b"\x00")
    code, out, err = run(["check", "pkg"], capsys)
    assert err.splitlines()[-1] == "Found 1 problem (1 fixable with `maskfix rewrite`); 1 file could not be checked."
    (tree / "pkg" / "broken.py").unlink()
    code, out, err = run(["rewrite", "pkg"], capsys)
    assert err.strip() == "Fixed 1 problem in 1 file."
    code, out, err = run(["check", "pkg"], capsys)
    assert err.strip() == "No problems found in 1 file."


@pytest.mark.parametrize("where", ["closing", "argument", "call"])
def test_noqa_on_any_line_of_the_flagged_call(tree, capsys, where):
    lines = BUGGY.read_text().splitlines(True)
    index = {"closing": 93, "argument": 92, "call": 88}[where]  # 0-based lines of the cross-attention call
    assert lines[88].strip().startswith("attention_output_2 = self.attention_2(") and lines[93].strip() == ")"
    lines[index] = lines[index].rstrip("\n") + "  # noqa: MF001\n"
    (tree / "pkg" / "model.py").write_text("".join(lines))
    code, out, err = run(["check", "pkg"], capsys)
    assert (code, out) == (0, "")
    code, out, err = run(["rewrite", "pkg"], capsys)
    assert code == 0 and (tree / "pkg" / "model.py").read_text() == "".join(lines)


def test_noqa_inside_the_class_body_does_not_silence_the_class(tree, capsys):
    lines = BUGGY.read_text().splitlines(True)
    lines[86] = lines[86].rstrip("\n") + "  # noqa: MF001\n"  # the self-attention call, not the flagged one
    (tree / "pkg" / "model.py").write_text("".join(lines))
    code, out, err = run(["check", "pkg"], capsys)
    assert code == 1 and "MF001" in out


def test_rules_lists_every_code(capsys):
    code, out, err = run(["rules"], capsys)
    assert code == 0
    rows = out.splitlines()
    assert [r.split()[0] for r in rows] == list(codes.CODES)
    for row, (code_, info) in zip(rows, codes.CODES.items()):
        assert info["name"] in row and row.endswith(info["summary"])


def test_rules_explains_one_code(capsys):
    code, out, err = run(["rules", "mf003"], capsys)
    assert code == 0
    assert out.startswith("MF003 (causal-cross-attention)\n")
    assert codes.CODES["MF003"]["explanation"] in out and "Before:" in out and "After" in out
    code, out, err = run(["rules", "MF999"], capsys)
    assert code == 2 and out == "" and "unknown code 'MF999'" in one_error(err)


def test_every_code_has_an_explanation_with_before_and_after():
    for code, info in codes.CODES.items():
        assert set(info) >= {"name", "summary", "explanation"}, code
        assert "Before:" in info["explanation"] and "After" in info["explanation"], code


def test_known_codes_are_the_rule_modules():
    assert codes.known_codes() == list(codes.CODES)


def test_shipped_codes_page_is_generated_from_codes():
    """Regenerate with ``python -m maskfix.codes --write``."""
    shipped = (ROOT / "maskfix" / "docs" / "codes.md").read_text(encoding="utf-8")
    assert shipped == codes.codes_page()
    for code in codes.CODES:
        assert f"\n## {code}\n" in shipped  # the anchor help_uri() points at
        assert codes.help_uri(code).endswith(f"codes.md#{code.lower()}")


def test_progress_line_says_one_file(monkeypatch):
    import io

    from maskfix import cli

    class Tty(io.StringIO):
        def isatty(self):
            return True

    fake = Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    monkeypatch.delenv("CI", raising=False)
    progress = cli._Progress(True)
    progress.start -= 10
    progress.tick(1)
    assert "maskfix: 1 file read" in fake.getvalue()


def test_stdin_named_like_a_file_on_the_command_line_is_checked_too(tmp_path):
    """Before: the file replaced standard input under the same name, and its finding was lost."""
    buggy = (Path(__file__).parent / "fixtures" / "raw_mask" / "before.py").read_bytes()
    (tmp_path / "x.py").write_bytes(b"# the file on disk\n" + buggy)
    proc = maskfix("check", "--no-cache", "-", "x.py", "--stdin-filename", "x.py", stdin=buggy, cwd=tmp_path)
    lines = proc.stdout.decode().splitlines()
    assert proc.returncode == 1 and [line.split(":")[1] for line in lines if "MF001" in line] == ["14", "15"]
