"""The flake8 plugin, through the real ``flake8`` command."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
BEFORE = sorted(FIXTURES.glob("*/before.py"))
# line 17 holds the flagged cross-attention call, column 44 its mask
CAUSAL = FIXTURES / "causal_only" / "before.py"
FINDING = ":17:44: MF001 cross-attention over `enc_out`"


def flake8(*args, cwd):
    # --isolated: no user or project configuration changes what is selected
    proc = subprocess.run([sys.executable, "-m", "flake8", "--isolated", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout.splitlines()


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.py"
    shutil.copy(CAUSAL, path)
    return path


def edit_line(path, number, suffix):
    lines = path.read_text().splitlines(True)
    lines[number - 1] = lines[number - 1].rstrip("\n") + suffix + "\n"
    path.write_text("".join(lines))


def test_agrees_with_maskfix_check_on_every_fixture(tmp_path):
    assert len(BEFORE) >= 40
    ours = flake8("--select", "MF", *BEFORE, cwd=tmp_path)
    proc = subprocess.run([sys.executable, "-m", "maskfix", "check", "-q", *map(str, BEFORE)],
                          capture_output=True, text=True)
    theirs = [line.replace(" [*]", "", 1) for line in proc.stdout.splitlines()]
    assert len(theirs) >= 30
    assert sorted(ours) == sorted(theirs)


def test_reports_code_line_and_column(model):
    out = flake8("--select", "MF", "model.py", cwd=model.parent)
    assert len(out) == 1 and out[0].startswith("model.py" + FINDING)


def test_flake8_noqa(model):
    edit_line(model, 17, "  # noqa: E501")  # another code: still reported
    assert len(flake8("--select", "MF", "model.py", cwd=model.parent)) == 1
    shutil.copy(CAUSAL, model)
    edit_line(model, 17, "  # noqa: MF001")
    assert flake8("--select", "MF", "model.py", cwd=model.parent) == []


def test_noqa_on_the_class_line_as_in_maskfix_check(model):
    # maskfix also honours `# noqa` on the class line, away from the reported line
    edit_line(model, 6, "  # noqa: MF001")
    assert flake8("--select", "MF", "model.py", cwd=model.parent) == []


def test_extend_select_and_default_selection(model):
    assert flake8("--select", "W605", "model.py", cwd=model.parent) == []
    out = flake8("--select", "W605", "--extend-select", "MF", "model.py", cwd=model.parent)
    assert [l.split()[1] for l in out] == ["MF001"]
    # with no --select, plugin codes are on by default
    assert any(" MF001 " in l for l in flake8("model.py", cwd=model.parent))


def test_per_file_ignores(model):
    shutil.copy(CAUSAL, model.parent / "other.py")
    out = flake8("--select", "MF", "--per-file-ignores", "model.py:MF001", "model.py", "other.py",
                 cwd=model.parent)
    assert [l.split(":")[0] for l in out] == ["other.py"]


def test_format_and_output_file(model):
    out = flake8("--select", "MF", "--format", "%(code)s|%(row)d|%(col)d|%(path)s", "model.py",
                 cwd=model.parent)
    assert out == ["MF001|17|44|model.py"]
    report = model.parent / "report.txt"
    assert flake8("--select", "MF", "--output-file", report, "model.py", cwd=model.parent) == []
    assert report.read_text().splitlines()[0].startswith("model.py" + FINDING)


def test_syntax_error_is_flake8s_e999_only(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(CAUSAL.read_text() + "\ndef broken(:\n")
    out = flake8("bad.py", cwd=tmp_path)
    assert [l.split()[1] for l in out if " E999 " in l or " MF" in l] == ["E999"]


IMPORTS = (
    "import sys\nfrom flake8.main.cli import main\n"
    "try:\n    main(['--isolated', '--select', 'MF', sys.argv[1]])\n"
    "except SystemExit:\n    pass\n"
    "print(sorted({m.split('.')[0] for m in sys.modules} & {'libcst', 'tensorflow', 'keras'}))\n"
)


@pytest.mark.parametrize("text, imported", [
    ("import os\nprint(os.sep)\n", []),  # fails the byte prefilter
    ("from keras.layers import MultiHeadAttention\nMHA = MultiHeadAttention\n", []),  # fails the ast screen
    (CAUSAL.read_text(), ["libcst"]),
])
def test_libcst_is_imported_only_for_files_that_can_hold_a_finding(tmp_path, text, imported):
    path = tmp_path / "m.py"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-c", IMPORTS, str(path)], capture_output=True, text=True)
    assert proc.stdout.splitlines()[-1] == repr(imported), proc.stderr
