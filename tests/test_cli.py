"""The command line, driven in-process and as ``python -m maskfix``."""

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maskfix.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


def run(argv, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    shutil.copy(FIXTURES / "book_tf" / "before.py", tmp_path / "pkg" / "model.py")
    shutil.copy(FIXTURES / "neg_kerashub_style" / "before.py", tmp_path / "pkg" / "ok.py")
    (tmp_path / "pkg" / "plain.py").write_text("print('hello')\n")
    return tmp_path


def test_check_reports_path_line_col_code_and_exits_1(tree, capsys):
    code, out, err = run(["check", str(tree)], capsys)
    assert code == 1
    path = tree / "pkg" / "model.py"
    assert out.splitlines() == [f"{path}:93:13: MF001 [*] " + out.split(" [*] ", 1)[1].strip()]
    assert "Found 1 problem (1 fixable" in err


def test_the_engine_runs_again_only_for_files_the_first_run_made_worth_reading(tree, capsys, monkeypatch):
    """The files the screen set aside are read once the parsed ones are known; the engine runs
    again only when one of them is taken (here: one that calls the decoder of model.py)."""
    from maskfix import engine

    runs = []
    real = engine.run

    def counted(sources, *args, **kwargs):
        runs.append(sorted(Path(k).name for k in sources))
        return real(sources, *args, **kwargs)

    monkeypatch.setattr(engine, "run", counted)
    code, out, err = run(["check", "--no-cache", str(tree)], capsys)
    assert code == 1 and runs == [["model.py", "ok.py"]]  # plain.py, set aside, names no decoder

    runs.clear()
    (tree / "pkg" / "use.py").write_text(
        "from pkg.model import TransformerDecoder\n\n\ndef decode(x, enc):\n"
        "    return TransformerDecoder(16, 32, 2)(x, enc)\n")
    code, out, err = run(["check", "--no-cache", str(tree)], capsys)
    assert code == 1 and runs == [["model.py", "ok.py"], ["model.py", "ok.py", "use.py"]]


def test_clean_tree_exits_0(tree, capsys):
    (tree / "pkg" / "model.py").unlink()
    code, out, err = run(["check", str(tree)], capsys)
    assert (code, out) == (0, "")
    assert "No problems found in 2 files" in err


def test_exit_zero_and_quiet(tree, capsys):
    code, out, err = run(["check", "--exit-zero", "-q", str(tree)], capsys)
    assert code == 0 and "MF001" in out and err == ""


def test_unreadable_file_is_reported_and_others_still_checked(tree, capsys):
    (tree / "pkg" / "broken.py").write_text("import keras\nclass Decoder(:\n    self.attn = MultiHeadAttention(2)\n")
    (tree / "pkg" / "binary.py").write_bytes(b"\x00\x01\x02MultiHeadAttention")
    code, out, err = run(["check", str(tree)], capsys)
    assert code == 2
    assert "MF001" in out
    lines = [l for l in err.splitlines() if "error" in l]
    assert any("broken.py: cannot parse: syntax error" in l for l in lines)
    assert any("binary.py: binary content" in l for l in lines)
    assert all(l.startswith("maskfix: error: ") for l in lines)


def test_missing_path_is_an_error(tmp_path, capsys):
    code, out, err = run(["check", str(tmp_path / "nope.py")], capsys)
    assert code == 2 and "no such file or directory" in err


def test_rewrite_diff_writes_nothing(tree, capsys):
    before = (tree / "pkg" / "model.py").read_bytes()
    code, out, err = run(["rewrite", "--diff", str(tree)], capsys)
    assert code == 1
    assert out.startswith(f"--- a/{tree / 'pkg' / 'model.py'}")
    assert "+    def call(self, inputs, encoder_outputs, mask=None, encoder_padding_mask=None):" in out
    assert (tree / "pkg" / "model.py").read_bytes() == before
    assert "Would fix 1 problem in 1 file" in err


def test_rewrite_fixes_in_place_then_nothing_left(tree, capsys):
    target = tree / "pkg" / "model.py"
    os.chmod(target, 0o640)
    code, out, err = run(["rewrite", str(tree)], capsys)
    assert code == 1 and "(fixed)" in out
    assert f"{target}: encoder_padding_mask threaded: pad id 0 read from the embedding's compute_mask" in out
    assert target.read_text() == (FIXTURES / "book_tf" / "after.py").read_text()
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]
    code, out, err = run(["rewrite", str(tree)], capsys)
    assert code == 0 and out == ""
    code, out, err = run(["check", str(tree)], capsys)
    assert code == 0


def test_rewrite_reports_manual_work(tmp_path, capsys):
    shutil.copy(FIXTURES / "unresolved_call_site" / "before.py", tmp_path / "m.py")
    code, out, err = run(["rewrite", str(tmp_path)], capsys)
    assert code == 1
    assert "MF002" in out and "needs manual work" in out
    assert "1 problem needs manual work" in err


def test_stdin_check_and_rewrite(capsys, monkeypatch):
    source = (FIXTURES / "raw_mask" / "before.py").read_text()
    code, out, err = run(["check", "-", "--stdin-filename", "src/dec.py"], capsys, source, monkeypatch)
    assert code == 1 and out.startswith("src/dec.py:14:53: MF001")
    code, out, err = run(["rewrite", "-"], capsys, source, monkeypatch)
    assert out == (FIXTURES / "raw_mask" / "after.py").read_text()
    code, out, err = run(["rewrite", "--diff", "-"], capsys, source, monkeypatch)
    assert code == 1 and out.startswith("--- a/-")


def test_json_format(tree, capsys):
    code, out, err = run(["check", "--format", "json", str(tree)], capsys)
    (item,) = json.loads(out)
    assert item["code"] == "MF001" and item["location"] == {"row": 93, "column": 13}
    assert item["fix"]["applicability"] == "safe"
    diff = item["fix"]["diff"]
    assert diff.startswith(f"--- a/{tree / 'pkg' / 'model.py'}")
    assert "+            attention_mask=cross_attention_mask," in diff
    assert (tree / "pkg" / "model.py").read_text() == (FIXTURES / "book_tf" / "before.py").read_text()


def test_sarif_format_is_2_1_0(tree, capsys):
    code, out, err = run(["check", "--format", "sarif", str(tree)], capsys)
    doc = json.loads(out)
    assert doc["version"] == "2.1.0"
    run_ = doc["runs"][0]
    assert run_["tool"]["driver"]["name"] == "maskfix"
    assert {r["id"] for r in run_["tool"]["driver"]["rules"]} >= {"MF001", "MF002"}
    (result,) = run_["results"]
    assert result["ruleId"] == "MF001"
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 93, "startColumn": 13}


def test_github_format(tree, capsys):
    code, out, err = run(["check", "--format", "github", str(tree)], capsys)
    assert out.startswith("::error title=maskfix (MF001),file=")
    assert ",line=93,col=13::MF001 " in out


def test_select_filters_codes(tmp_path, capsys):
    shutil.copy(FIXTURES / "unresolved_call_site" / "before.py", tmp_path / "m.py")
    code, out, err = run(["check", "--select", "MF002", str(tmp_path)], capsys)
    assert code == 1 and "MF002" in out and "MF001" not in out


def test_pyproject_exclude(tree, capsys):
    (tree / "pyproject.toml").write_text('[tool.maskfix]\nexclude = ["pkg/model.py"]\n')
    code, out, err = run(["check", str(tree)], capsys)
    assert code == 0
    code, out, err = run(["check", "--exclude", "nothing", str(tree)], capsys)
    assert code == 1  # the command line wins


def test_skips_virtualenvs_and_git(tree, capsys):
    for d in (".git", "venv", ".venv", "node_modules", "build"):
        (tree / d).mkdir()
        shutil.copy(FIXTURES / "book_tf" / "before.py", tree / d / "x.py")
    (tree / "myenv").mkdir()
    (tree / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    shutil.copy(FIXTURES / "book_tf" / "before.py", tree / "myenv" / "x.py")
    code, out, err = run(["check", str(tree)], capsys)
    assert len(out.splitlines()) == 1


def test_python_dash_m(tree):
    proc = subprocess.run([sys.executable, "-m", "maskfix", "check", str(tree)], capture_output=True, text=True)
    assert proc.returncode == 1 and "MF001" in proc.stdout


def test_linting_does_not_import_keras_or_tensorflow(tree):
    code = (
        "import sys\nfrom maskfix.cli import main\n"
        f"main(['check', '-q', {str(tree)!r}])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'tf_keras', 'torch', 'jax')]\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_a_pre_commit_check_imports_nothing_it_does_not_use(tree):
    """A check of a few files without the cache, one of them with a finding: no worker pool, no
    hashing (OpenSSL), no ctypes (the file timer's only when a file runs out of time), no layout
    of new code (a rewrite's)."""
    code = (
        "import sys\nfrom maskfix.cli import main\n"
        f"main(['check', '--no-cache', '-q', '--exit-zero', {str(tree / 'pkg' / 'model.py')!r}, "
        f"{str(tree / 'pkg' / 'plain.py')!r}])\n"
        "print(sorted(m for m in ('multiprocessing', 'hashlib', 'ctypes', 'maskfix.layout', 'libcst') "
        "if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "MF001" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "['libcst']"


def test_config_extend_exclude_and_select(tree, capsys):
    shutil.copy(FIXTURES / "unresolved_call_site" / "before.py", tree / "pkg" / "manual.py")
    (tree / "pyproject.toml").write_text('[tool.maskfix]\nextend-exclude = ["model.py"]\nselect = ["MF002"]\n')
    code, out, err = run(["check", str(tree)], capsys)
    assert code == 1
    assert [l.split(": ")[1].split()[0] for l in out.splitlines()] == ["MF002"]
    assert "model.py" not in out
    code, out, err = run(["check", "--select", "MF001", str(tree)], capsys)
    assert "MF001" in out and "MF002" not in out and "model.py" not in out


def test_progress_line_only_on_a_terminal(monkeypatch):
    from maskfix import cli

    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock = iter([0.0, 1.0, 2.0, 3.0])
    monkeypatch.setattr(cli.time, "monotonic", lambda: next(clock))
    monkeypatch.delenv("CI", raising=False)
    fake = Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    progress = cli._Progress(enabled=True)
    progress.tick(10)
    progress.done()
    assert "maskfix: 10 files read" in fake.getvalue() and fake.getvalue().endswith("\r\x1b[K")

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe: nothing
    assert not cli._Progress(enabled=True).enabled
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(sys, "stderr", Tty())
    assert not cli._Progress(enabled=True).enabled


def test_progress_line_stays_up_while_a_slow_file_is_analysed(tmp_path, monkeypatch):
    """Before: the line was erased when reading ended, so a long analysis showed nothing."""
    from maskfix import cli, engine

    class Tty(io.StringIO):
        def isatty(self):
            return True

    (tmp_path / "big.py").write_bytes((FIXTURES / "raw_mask" / "before.py").read_bytes())
    real = engine.analyze_module

    def slow(module, *args):
        time.sleep(0.6)  # well past the delay below
        return real(module, *args)

    monkeypatch.setattr(engine, "analyze_module", slow)
    monkeypatch.setattr(cli._Progress, "DELAY", 0.2)
    monkeypatch.delenv("CI", raising=False)
    fake = Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    assert cli.main(["check", str(tmp_path)]) == 1
    text = fake.getvalue()
    assert f"\rmaskfix: analysing 1/1: {tmp_path / 'big.py'}\x1b[K" in text
    assert text.index("analysing") < text.index("\r\x1b[K") < text.index("Found 1 problem")
