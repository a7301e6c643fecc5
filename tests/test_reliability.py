"""Nothing is lost, whatever the input: odd files, links, races, killed runs, foreign packages."""

import ast
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

import maskfix.cli as cli
from maskfix import engine
from maskfix.files import discover, discover_stat, write_atomic
from maskfix.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
# Stable fixable variants and negatives used to populate the trees below.
FIXABLE = ["book_tf", "kerasio_keras3", "kerasio_tf", "raw_mask", "oneline", "upfront", "else_mask",
           "band_part_staticmethod", "tril_module_helper", "causal_only", "comment_dense", "positional_tf"]
NEGATIVE = ["neg_kerashub_style", "neg_text_generator", "neg_captioning", "neg_implicit_masks"]
TMP_NAME = re.compile(r"^\.(?P<source>.+)\.[^.]+\.maskfix$")


def fixture(variant, name="before.py") -> bytes:
    return (FIXTURES / variant / name).read_bytes()


def golden(variant) -> bytes:
    after = FIXTURES / variant / "after.py"
    return after.read_bytes() if after.exists() else fixture(variant)


def snapshot(*roots):
    """Every entry under ``roots`` (links not followed): kind, bits, owner, content or target."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    body = ("link", os.readlink(path))
                elif stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as fh:
                        body = ("file", fh.read())
                else:
                    body = ("other", stat.S_IFMT(st.st_mode))
                out[path] = (body, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err):
    lines = [l for l in err.splitlines() if l.startswith("maskfix: error: ")]
    assert all(l.count("\n") == 0 for l in lines)
    return lines


# --------------------------------------------------------------------------
# one tree with every kind of trouble


DECODER_HINT = "import keras\n\n\nclass A:\n    def __init__(self):\n        self.a = keras.layers.MultiHeadAttention(2, 4)\n\n\n"


def long_chains() -> dict:
    """Valid files whose one long statement is deeper than the analysis walks; each also holds a real MF001."""
    raw = fixture("raw_mask").decode()
    return {
        "chain_plus.py": raw + "\nZ = " + " + ".join(["1"] * 500) + "\n",
        "chain_call.py": raw + "\nZ = f" + "(1)" * 2_000 + "  # a comment\n\n\ndef g():\n    return [" + "[" * 198 + "]" * 198 + "]\n",
        "nested_list.py": raw + "\nZ = " + "[" * 140 + "]" * 140 + "\n",
    }


def huge_chains() -> dict:
    """So long that Python's own parser gives up (CPython 3.11): reported, never handed to LibCST."""
    return {
        "huge_call.py": DECODER_HINT + "Z = f" + "(1)" * 50_000 + "\n",
        "huge_plus.py": DECODER_HINT + "Z = " + " + ".join(["1"] * 100_000) + "\n",
    }


def deep_sources(n: int = 20_000) -> dict:
    """Files that pass both screens and nest ``n`` deep; the decoder hint sends them to the parser."""
    return {
        "deep_not.py": DECODER_HINT + "Z = " + "not " * n + "x\n",
        "deep_minus.py": DECODER_HINT + "Z = " + "-" * n + "x\n",
    }


@pytest.fixture
def messy(tmp_path):
    """A tree mixing fixable files with files maskfix must report and leave alone."""
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    tree.mkdir()
    outside.mkdir()
    raw = fixture("raw_mask")
    expect = {}  # path -> bytes after the run, for files that get fixed
    errors = {}  # path -> expected reason fragment

    for v in FIXABLE[:5]:
        (tree / f"fix_{v}.py").write_bytes(fixture(v))
        expect[tree / f"fix_{v}.py"] = golden(v)
    (tree / "neg.py").write_bytes(fixture("neg_kerashub_style"))

    # encodings, line endings, indentation
    header = "# -*- coding: latin-1 -*-\n# caf\xe9, na\xefve\n".encode("latin-1")
    (tree / "latin.py").write_bytes(header + raw)
    expect[tree / "latin.py"] = header + golden("raw_mask")
    (tree / "bom.py").write_bytes(b"\xef\xbb\xbf" + raw)
    expect[tree / "bom.py"] = b"\xef\xbb\xbf" + golden("raw_mask")
    (tree / "crlf.py").write_bytes(raw.replace(b"\n", b"\r\n"))
    expect[tree / "crlf.py"] = golden("raw_mask").replace(b"\n", b"\r\n")
    (tree / "tabs.py").write_bytes(raw.replace(b"    ", b"\t"))
    expect[tree / "tabs.py"] = golden("raw_mask").replace(b"    ", b"\t")
    lines = raw.split(b"\n")[:-1]
    mixed = b"".join(l + (b"\r\n" if i % 2 else b"\n") for i, l in enumerate(lines))
    (tree / "mixed.py").write_bytes(mixed)
    expect[tree / "mixed.py"] = None  # checked line by line below

    # permissions
    (tree / "script.py").write_bytes(b"#!/usr/bin/env python\n" + raw)
    os.chmod(tree / "script.py", 0o755)
    expect[tree / "script.py"] = b"#!/usr/bin/env python\n" + golden("raw_mask")
    (tree / "readonly.py").write_bytes(raw)
    os.chmod(tree / "readonly.py", 0o444)
    errors[tree / "readonly.py"] = "read-only"
    if os.geteuid() == 0:
        (tree / "owned.py").write_bytes(raw)
        os.chown(tree / "owned.py", 4321, 4321)
        expect[tree / "owned.py"] = golden("raw_mask")

    # files that cannot be handled
    (tree / "py2.py").write_bytes(b"import keras\nprint 'building'\nself.attn = MultiHeadAttention(2)\nexec 'x'\n")
    errors[tree / "py2.py"] = "cannot parse: syntax error at line 2, column 1: Missing parentheses"
    (tree / "noise.py").write_bytes(random.Random(7).randbytes(4096) + b"MultiHeadAttention")
    errors[tree / "noise.py"] = "binary content"
    (tree / "garbled.py").write_bytes(b"x = 1  # \xff\xfe\x80 MultiHeadAttention\n")
    errors[tree / "garbled.py"] = "cannot decode as utf-8"
    (tree / "empty.py").write_bytes(b"")
    (tree / "huge.py").write_bytes(b"".join(b"value_%d = %d * 2\n" % (i, i) for i in range(330_000)))
    assert (tree / "huge.py").stat().st_size > 6_000_000
    (tree / "broken.ipynb").write_bytes(b'{"cells": [{"cell_type": "code", "source": ["layers.MultiHeadAttention('
                                        b'4, 8)\\n"]}], "metadata": {"kernelspec": {"lang')
    errors[tree / "broken.ipynb"] = "invalid notebook"
    os.mkfifo(tree / "pipe.py")
    errors[tree / "pipe.py"] = "not a regular file"
    # valid Python nested deeper than any parser's stack: LibCST's native parser would crash
    for name, text in deep_sources().items():
        (tree / name).write_text(text)
        errors[tree / name] = "cannot parse: expression nested too deeply"

    # links
    os.symlink("loop_b.py", tree / "loop_a.py")
    os.symlink("loop_a.py", tree / "loop_b.py")
    errors[tree / "loop_a.py"] = errors[tree / "loop_b.py"] = "symbolic link loop"
    os.symlink("nowhere.py", tree / "dangling.py")
    errors[tree / "dangling.py"] = "broken symbolic link"
    (outside / "target.py").write_bytes(raw)
    os.symlink(outside / "target.py", tree / "escape.py")  # never followed, never written
    os.symlink(outside, tree / "escape_dir")

    # the code must never run: importing this file would create the marker
    marker = tmp_path / "MARKER"
    trap = f"import pathlib\npathlib.Path({json.dumps(str(marker))}).write_text(\"ran\")\n".encode()
    (tree / "trap.py").write_bytes(trap + raw)
    expect[tree / "trap.py"] = trap + golden("raw_mask")
    (tree / "sitecustomize.py").write_bytes(trap)
    (tree / "conftest.py").write_bytes(trap)

    # a killed earlier run may have left a temporary file: never a source, never touched
    (tree / ".raw.py.k2j4x9.maskfix").write_bytes(raw[: len(raw) // 2])

    # races: removed or changed while the run is going
    for name in ("gone_before_read.py", "gone_before_write.py", "changed.py"):
        (tree / name).write_bytes(raw)
    errors[tree / "gone_before_read.py"] = "file vanished before it could be read"
    errors[tree / "gone_before_write.py"] = "file vanished before the fix could be written"
    errors[tree / "changed.py"] = "file changed while maskfix was running"
    return tree, outside, marker, expect, errors


def _race_hooks(monkeypatch):
    real_read, real_write = cli.read_bytes, cli.write_atomic

    def read(path):
        if Path(path).name == "gone_before_read.py" and os.path.exists(path):
            os.unlink(path)
        return real_read(path)

    def write(path, data, expected):
        if Path(path).name == "gone_before_write.py":
            os.unlink(path)
        elif Path(path).name == "changed.py":
            with open(path, "ab") as fh:
                fh.write(b"# edited meanwhile\n")
        return real_write(path, data, expected)

    monkeypatch.setattr(cli, "read_bytes", read)
    monkeypatch.setattr(cli, "write_atomic", write)


def test_check_reports_every_problem_file_and_touches_nothing(messy, capsys, monkeypatch):
    tree, outside, marker, expect, errors = messy
    monkeypatch.delitem(errors, tree / "gone_before_write.py")
    monkeypatch.delitem(errors, tree / "changed.py")
    monkeypatch.delitem(errors, tree / "readonly.py")
    _race_hooks(monkeypatch)
    before = snapshot(tree, outside)
    code, out, err = run(["check", str(tree)], capsys)
    assert code == 2
    flagged = {line.split(":", 1)[0] for line in out.splitlines()}
    assert flagged == {str(p) for p in expect} | {str(tree / n) for n in ("readonly.py", "gone_before_write.py", "changed.py")}
    _assert_errors(err, errors)
    after = snapshot(tree, outside)
    del before[str(tree / "gone_before_read.py")]
    assert after == before
    assert not marker.exists()


def _assert_errors(err, errors):
    lines = error_lines(err)
    assert len(lines) == len(errors), "\n".join(lines)
    for path, reason in errors.items():
        (line,) = [l for l in lines if l.startswith(f"maskfix: error: {path}: ")]
        assert reason in line, line


def test_rewrite_fixes_what_it_can_and_reports_the_rest(messy, capsys, monkeypatch):
    tree, outside, marker, expect, errors = messy
    _race_hooks(monkeypatch)
    before = snapshot(tree, outside)
    code, out, err = run(["rewrite", str(tree)], capsys)
    assert code == 2
    _assert_errors(err, errors)
    after = snapshot(tree, outside)

    # exactly the fixable files changed; the vanished ones stay gone; nothing was added
    removed = {str(tree / "gone_before_read.py"), str(tree / "gone_before_write.py")}
    assert set(before) - set(after) == removed and set(after) <= set(before)
    changed = {p for p in after if after[p] != before[p]}
    assert changed == {str(p) for p in expect} | {str(tree / "changed.py")}
    assert after[str(tree / "changed.py")][0][1] == fixture("raw_mask") + b"# edited meanwhile\n"
    for path, data in expect.items():
        (kind, content), mode, uid, gid = after[str(path)]
        assert (mode, uid, gid) == before[str(path)][1:], path  # bits and owner kept
        if data is not None:
            assert content == data, path
    assert after[str(tree / "script.py")][1] == 0o755

    # mixed line endings: every kept line keeps its own ending, new lines take the first one's
    mixed = after[str(tree / "mixed.py")][0][1]
    assert mixed.replace(b"\r\n", b"\n") == golden("raw_mask")
    ending = {}
    for line in before[str(tree / "mixed.py")][0][1].splitlines(True):
        ending.setdefault(line.rstrip(b"\r\n"), set()).add(line[len(line.rstrip(b"\r\n")):])
    kept = [l for l in mixed.splitlines(True) if len(ending.get(l.rstrip(b"\r\n"), ())) == 1]
    assert len(kept) >= 8
    assert all(ending[l.rstrip(b"\r\n")] == {l[len(l.rstrip(b"\r\n")):]} for l in kept)
    assert b"\r\n" in mixed and all(l.endswith(b"\n") for l in mixed.splitlines(True))
    assert not marker.exists()
    assert not list(tree.rglob("__pycache__"))

    # the next run fixes only the file edited meanwhile, then nothing changes any more
    monkeypatch.undo()
    again = snapshot(tree, outside)
    code, out, err = run(["rewrite", str(tree)], capsys)
    assert code == 2 and len(error_lines(err)) == len(errors) - 3
    now = snapshot(tree, outside)
    assert {p for p in now if now[p] != again[p]} == {str(tree / "changed.py")}
    again = now
    code, out, err = run(["rewrite", str(tree)], capsys)
    assert code == 2 and snapshot(tree, outside) == again
    fixed = [str(p) for p in expect]
    assert run(["rewrite", *fixed], capsys)[0] == 0
    assert run(["check", *fixed], capsys)[0] == 0
    assert snapshot(tree, outside) == again
    assert not marker.exists()


def test_temporary_files_are_never_sources(tmp_path, capsys):
    source = fixture("raw_mask")
    (tmp_path / "m.py").write_bytes(source)
    stale = tmp_path / ".m.py.abc123.maskfix"
    stale.write_bytes(source)
    assert [p for p, _ in discover([str(tmp_path)])] == [tmp_path / "m.py"]
    code, out, err = run(["rewrite", str(tmp_path)], capsys)
    assert code == 1 and ".maskfix" not in out + err
    assert stale.read_bytes() == source  # ignored, not removed: another run may own it
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.py.abc123.maskfix", "m.py"]


def test_write_failure_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.py"
    path.write_bytes(b"old\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(Exception, match="No space left"):
        write_atomic(path, b"new\n", expected=b"old\n")
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"]


def test_an_internal_error_costs_only_its_own_file(tmp_path, capsys, monkeypatch):
    good, bad = fixture("raw_mask"), fixture("raw_mask").replace(b"class Decoder", b"class Poison")
    (tmp_path / "good.py").write_bytes(good)
    (tmp_path / "bad.py").write_bytes(bad)
    real = engine.analyze_module

    def analyse(module, *args):
        if "Poison" in module.code:
            raise AssertionError("boom")
        return real(module, *args)

    monkeypatch.setattr(engine, "analyze_module", analyse)
    code, out, err = run(["rewrite", str(tmp_path)], capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert line.startswith(f"maskfix: error: {tmp_path / 'bad.py'}: internal error, file skipped: AssertionError: boom")
    assert (tmp_path / "bad.py").read_bytes() == bad
    assert (tmp_path / "good.py").read_bytes() == golden("raw_mask")


def test_symlink_inside_the_tree_is_fixed_once_through_the_link(tmp_path, capsys):
    (tmp_path / "real.py").write_bytes(fixture("raw_mask"))
    os.symlink("real.py", tmp_path / "alias.py")
    code, out, err = run(["rewrite", str(tmp_path)], capsys)
    assert code == 1 and len(out.splitlines()) == 1
    assert os.readlink(tmp_path / "alias.py") == "real.py"
    assert (tmp_path / "real.py").read_bytes() == golden("raw_mask")


# --------------------------------------------------------------------------
# runs killed at random moments


def _killable_tree(root: Path):
    before, after = {}, {}
    for copy in range(2 if os.cpu_count() and os.cpu_count() > 2 else 1):
        folder = root / f"pkg{copy}"
        folder.mkdir(parents=True)
        for v in FIXABLE + NEGATIVE:
            path = folder / f"{v}.py"
            path.write_bytes(fixture(v))
            before[path.relative_to(root)], after[path.relative_to(root)] = fixture(v), golden(v)
    return before, after


def _check_killed_tree(root: Path, before, after):
    for rel in before:
        data = (root / rel).read_bytes()
        assert data in (before[rel], after[rel]), f"{rel} is neither old nor new"
    for path in root.rglob("*"):
        if path.is_file() and (path.relative_to(root) not in before):
            m = TMP_NAME.match(path.name)
            assert m and (path.parent / m.group("source")).exists(), path
    return sum((root / rel).read_bytes() == after[rel] != before[rel] for rel in before)


def test_killed_runs_leave_every_file_old_or_new(tmp_path):
    """SIGKILL ``python -m maskfix rewrite`` at random moments; then finish the job."""
    cmd = [sys.executable, "-m", "maskfix", "rewrite", "-q"]
    base = tmp_path / "base"
    before, after = _killable_tree(base)
    timed = tmp_path / "timed"
    shutil.copytree(base, timed)
    start = time.monotonic()
    assert subprocess.run(cmd + [str(timed)], capture_output=True).returncode == 1
    full = time.monotonic() - start
    assert {rel: (timed / rel).read_bytes() for rel in before} == after

    rng = random.Random(2024)
    states = []
    for i in range(4):
        root = tmp_path / f"run{i}"
        shutil.copytree(base, root)
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        stamps = [f.stat().st_mtime_ns for f in folders]
        proc = subprocess.Popen(cmd + [str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 2:
            time.sleep(rng.uniform(0.3, 1.1) * full)  # anywhere in the run
        else:
            # right inside the writing phase: wait for the first temporary file or replace
            deadline = time.monotonic() + 5 * full + 5
            while proc.poll() is None and time.monotonic() < deadline:
                if [f.stat().st_mtime_ns for f in folders] != stamps:
                    break
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        states.append(_check_killed_tree(root, before, after))
        assert [p for p, _ in discover([str(root)]) if p.name.endswith(".maskfix")] == []
        if i % 3 == 0:  # the next run completes the job
            proc = subprocess.run(cmd + [str(root)], capture_output=True)
            assert proc.returncode in (0, 1), proc.stderr
            assert {rel: (root / rel).read_bytes() for rel in before} == after
    print(f"full run {full:.2f}s; fixed files found after each kill: {states}")


# --------------------------------------------------------------------------
# no false alarms on the real thing


def _site(package: str) -> Path:
    """The folder ``package`` is installed in (a venv may see it from the system site-packages)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return Path(sysconfig.get_paths()["purelib"])
    return Path(list(spec.submodule_search_locations)[0]).parent


SITE = _site("keras")
PACKAGES = ["keras", "tf_keras", "tensorflow", "keras_hub"]


@pytest.mark.slow
def test_no_findings_in_installed_keras_packages(tmp_path):
    """Scan keras, tf_keras, tensorflow and keras_hub sources (5 to 30 s): nothing is flagged."""
    roots = [SITE / p for p in PACKAGES if (SITE / p).is_dir()]
    missing = sorted(set(PACKAGES) - {r.name for r in roots})
    assert not missing, f"install the test extra: {missing}"
    proc = subprocess.run([sys.executable, "-m", "maskfix", "check", "--format", "json", *map(str, roots)],
                          capture_output=True, text=True)
    assert json.loads(proc.stdout) == []
    # No file in these packages is allowed to fail: none is intentionally invalid Python.
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"No problems found in (\d{4,}) files", proc.stderr), proc.stderr

    # keras_hub's TransformerDecoder is the reference for a correct cross-attention mask.  Its
    # attention layers are subclasses of MultiHeadAttention defined elsewhere; give them the plain
    # name so that the analysis examines every one of them, and still expect nothing.
    copy = tmp_path / "keras_hub"
    shutil.copytree(SITE / "keras_hub", copy, ignore=shutil.ignore_patterns("__pycache__"))
    renamed = 0
    for path in copy.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        new = re.sub(r"\b\w+MultiHeadAttention\b", "MultiHeadAttention", text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            renamed += 1
    decoder = copy / "src" / "layers" / "modeling" / "transformer_decoder.py"
    assert renamed > 10 and "MultiHeadAttention(" in decoder.read_text()
    assert engine.check_source(decoder.read_text()) == []
    proc = subprocess.run([sys.executable, "-m", "maskfix", "check", "-q", str(copy)], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


# --------------------------------------------------------------------------
# honest reports: what was not checked or not written is never counted as done


def test_fifo_named_explicitly_is_an_error_not_a_hang(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.py")
    (tmp_path / "good.py").write_bytes(fixture("raw_mask"))
    code, out, err = run(["check", str(tmp_path / "pipe.py"), str(tmp_path / "good.py")], capsys)
    assert code == 2 and "MF001" in out
    assert error_lines(err) == [f"maskfix: error: {tmp_path / 'pipe.py'}: not a regular file"]


def test_missing_file_is_not_counted_as_checked(tmp_path, capsys):
    code, out, err = run(["check", str(tmp_path / "nope.py")], capsys)
    assert code == 2
    assert error_lines(err) == [f"maskfix: error: {tmp_path / 'nope.py'}: no such file or directory"]
    assert "No problems found in 0 files; 1 file could not be checked." in err


def test_empty_folder_warns(tmp_path, capsys):
    for command in ("check", "rewrite"):
        code, out, err = run([command, str(tmp_path)], capsys)
        assert (code, out) == (0, "")
        assert "maskfix: warning: No Python files found under the given path(s)" in err.splitlines()
    assert run(["check", "-q", str(tmp_path)], capsys) == (0, "", "")


def test_a_file_not_written_is_not_reported_fixed(tmp_path, capsys):
    (tmp_path / "ro.py").write_bytes(fixture("raw_mask"))
    os.chmod(tmp_path / "ro.py", 0o444)
    code, out, err = run(["rewrite", str(tmp_path)], capsys)
    assert code == 2 and "(fixed)" not in out
    assert "MF001" in out and "(not fixed: the file was not written)" in out
    assert "Fixed 0 problems in 0 files" in err and "read-only" in err
    assert (tmp_path / "ro.py").read_bytes() == fixture("raw_mask")


# --------------------------------------------------------------------------
# pathological sources: the run survives any single file


def test_deeply_nested_files_are_reported_and_the_others_checked(tmp_path):
    """Before: LibCST's native parser overflowed its stack (exit 139, nothing reported)."""
    for name, text in deep_sources().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "good.py").write_bytes(fixture("raw_mask"))
    for jobs in ("1", "2"):
        proc = subprocess.run([sys.executable, "-m", "maskfix", "check", "-j", jobs, str(tmp_path)],
                              capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert "MF001" in proc.stdout
        assert sorted(error_lines(proc.stderr)) == [
            f"maskfix: error: {tmp_path / name}: cannot parse: expression nested too deeply for Python's own parser"
            for name in ("deep_minus.py", "deep_not.py")
        ]


def test_deep_source_reaching_the_engine_directly_is_an_error():
    out = engine.run({"deep.py": deep_sources(20_000)["deep_not.py"]})["deep.py"]
    assert out.error.startswith("cannot parse: expression nested too deeply")


def test_a_crashing_screening_worker_costs_only_its_file(tmp_path, capsys, monkeypatch):
    real = cli._screen_file

    def screen(path):
        if os.path.basename(path) == "crash.py":
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(path)

    monkeypatch.setattr(cli, "_screen_file", screen)
    monkeypatch.setattr(cli, "PARALLEL_MIN_FILES", 0)
    for i in range(70):  # more than one chunk
        (tmp_path / f"m{i:02d}.py").write_text("x = 1\n")
    (tmp_path / "crash.py").write_text("x = 1\n")
    (tmp_path / "n00.py").write_bytes(fixture("raw_mask"))
    code, out, err = run(["check", "-j", "2", str(tmp_path)], capsys)
    assert code == 2 and "n00.py" in out and "MF001" in out
    assert error_lines(err) == [
        f"maskfix: error: {tmp_path / 'crash.py'}: cannot parse: the process screening it crashed (SIGSEGV)"]
    assert "Found 1 problem" in err


# --------------------------------------------------------------------------
# a decoder and the calls that pass it encoder_padding_mask= are written together or not at all


def _split_project(root: Path) -> tuple:
    layer = fixture("book_tf").split(b"def build(")[0]
    user = (b"from tensorflow import keras\nimport tensorflow as tf\n"
            b"from layers_mod import PositionalEmbedding, TransformerEncoder, TransformerDecoder\n\n"
            b"src = keras.Input(shape=(None,), dtype='int64')\n"
            b"x = PositionalEmbedding(10, 40, 16)(src)\n"
            b"enc = TransformerEncoder(16, 32, 2)(x)\n"
            b"tgt = keras.Input(shape=(None,), dtype='int64')\n"
            b"y = PositionalEmbedding(10, 40, 16)(tgt)\n"
            b"y = TransformerDecoder(16, 32, 2)(y, enc)\n")
    (root / "layers_mod.py").write_bytes(layer)
    (root / "train.py").write_bytes(user)
    return layer, user


@pytest.mark.parametrize("trouble", ["read-only", "changed"])
def test_call_sites_are_not_threaded_when_the_decoder_cannot_be_written(tmp_path, capsys, monkeypatch, trouble):
    layer, user = _split_project(tmp_path)
    (tmp_path / "other.py").write_bytes(fixture("raw_mask"))  # an unrelated fix still lands
    if trouble == "read-only":
        os.chmod(tmp_path / "layers_mod.py", 0o444)
    else:
        real = cli.check_writable

        def edit_then_check(path, expected):
            if Path(path).name == "layers_mod.py":
                with open(path, "ab") as fh:
                    fh.write(b"# edited meanwhile\n")
            return real(path, expected)

        monkeypatch.setattr(cli, "check_writable", edit_then_check)
    code, out, err = run(["rewrite", str(tmp_path)], capsys)
    assert code == 2
    assert (tmp_path / "train.py").read_bytes() == user  # no encoder_padding_mask= for the old signature
    assert (tmp_path / "layers_mod.py").read_bytes().startswith(layer)
    assert (tmp_path / "other.py").read_bytes() == golden("raw_mask")
    lines = error_lines(err)
    assert len(lines) == 2
    assert lines[0].startswith(f"maskfix: error: {tmp_path / 'layers_mod.py'}: ")
    assert lines[1] == (f"maskfix: error: {tmp_path / 'train.py'}: not rewritten: its fix goes with the fix of "
                        f"{tmp_path / 'layers_mod.py'} (a decoder and the calls that pass it "
                        "encoder_padding_mask=), which could not be written")
    assert "encoder_padding_mask threaded" not in out
    assert "Fixed 1 problem in 1 file" in err


def test_a_decoder_and_its_callers_in_other_files_are_written_together(tmp_path, capsys):
    layer, user = _split_project(tmp_path)
    code, out, err = run(["rewrite", str(tmp_path)], capsys)
    assert code == 1, err
    assert b"encoder_padding_mask=None" in (tmp_path / "layers_mod.py").read_bytes()
    assert b"encoder_padding_mask=encoder_padding_mask" in (tmp_path / "train.py").read_bytes()
    assert f"{tmp_path / 'train.py'}: encoder_padding_mask threaded" in out


def test_long_chains_cost_only_their_statement(tmp_path, capsys):
    """Before: "internal error: RecursionError" lost the MF001, or the run took minutes."""
    for name, text in long_chains().items():
        (tmp_path / name).write_text(text)
    code, out, err = run(["check", str(tmp_path)], capsys)
    flagged = sorted(line.split(":", 1)[0] for line in out.splitlines() if "MF001" in line)
    assert flagged == sorted(str(tmp_path / n) for n in long_chains())
    assert sorted(error_lines(err)) == [
        f"maskfix: error: {tmp_path / 'chain_call.py'}: line 16 not analysed: an expression nested more than 200 deep",
        f"maskfix: error: {tmp_path / 'chain_plus.py'}: line 16 not analysed: an expression nested more than 200 deep",
    ]
    assert code == 2

    # the rewrite fixes the rest and keeps the statement it could not analyse byte for byte
    code, out, err = run(["rewrite", str(tmp_path)], capsys)
    assert code == 2 and "Fixed 3 problems in 3 files" in err
    for name, text in long_chains().items():
        new = (tmp_path / name).read_text()
        assert "encoder_padding_mask" in new
        assert new.replace(golden("raw_mask").decode(), "") == text.replace(fixture("raw_mask").decode(), "")
    assert run(["rewrite", str(tmp_path)], capsys)[2].count("Fixed 0 problems") == 1


def test_chains_too_long_for_python_are_reported_quickly(tmp_path, capsys):
    for name, text in huge_chains().items():
        (tmp_path / name).write_text(text)
    code, out, err = run(["check", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert sorted(error_lines(err)) == [
        f"maskfix: error: {tmp_path / name}: cannot parse: expression nested too deeply for Python's own parser"
        for name in sorted(huge_chains())
    ]


def test_a_file_that_takes_too_long_is_stopped_and_the_others_go_on(tmp_path, capsys, monkeypatch):
    from maskfix import limits

    (tmp_path / "good.py").write_bytes(fixture("raw_mask"))
    (tmp_path / "slow.py").write_bytes(fixture("raw_mask").replace(b"class Decoder", b"class Slow"))
    real = engine.analyze_module

    def analyse(module, *args):
        while "Slow" in module.code:  # as if the analysis never ended on this file
            time.sleep(0.01)
        return real(module, *args)

    monkeypatch.setattr(engine, "analyze_module", analyse)
    monkeypatch.setattr(limits, "FILE_SECONDS", 0.5)
    code, out, err = run(["check", str(tmp_path)], capsys)
    assert code == 2 and "good.py" in out and "slow.py" not in out
    assert error_lines(err) == [f"maskfix: error: {tmp_path / 'slow.py'}: analysis stopped after 0.5 s "
                                "(the time allowed per file); file skipped"]


def test_a_statement_set_aside_in_a_notebook_is_located_by_cell(tmp_path, capsys):
    """Before: the line was one of the internal joined program, which the reader never sees."""
    import json

    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Model\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": fixture("raw_mask").decode().splitlines(keepends=True)},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["x = 1\n", "Z = " + " + ".join(["1"] * 500) + "\n"]},
    ]
    nb = {"cells": cells, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "model.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    code, out, err = run(["check", str(path)], capsys)
    assert "MF001" in out
    assert error_lines(err) == [
        f"maskfix: error: {path}: cell 3:line 2 not analysed: an expression nested more than 200 deep"
    ]
    assert code == 2


def test_eleven_deep_statements_are_all_restored_after_a_rewrite():
    """Before: the marker of the 2nd deep statement was a prefix of the 11th's: an internal error."""
    raw = fixture("raw_mask").decode()
    source = raw + "".join(f"\nZ{i} = " + " + ".join(["1"] * 300) + "\n" for i in range(11))
    out = engine.run({"a.py": source}, fix=True)["a.py"]
    assert out.error is None and len(out.not_analysed) == 11
    assert out.new_source.replace(golden("raw_mask").decode(), "") == source.replace(raw, "")


@pytest.mark.parametrize("chain", ["-" * 40 + "x", "not " * 40 + "x", "+".join(["1"] * 40), "f" + "(1)" * 40,
                                   "a" + ".b" * 40, "[" * 40 + "]" * 40, "a" + "[0]" * 40, "lambda:" * 40 + "x",
                                   "{**" * 40 + "x" + "}" * 40, "(x for x in " * 20 + "y" + ")" * 20,
                                   "f'{" + 'f"{' + "x" + '}"' + "}'", "x if y else " * 40 + "z",
                                   "(" * 40 + "x" + ")" * 40, "a<" * 40 + "b", "await (" * 40 + "x" + ")" * 40])
def test_expression_depth_is_bounded_by_its_length(chain):
    """The depth guard skips statements shorter than half its limit: they cannot be that deep."""
    stmt = ast.parse(f"async def f():\n    Z = {chain}\n").body[0].body[0]
    assert _depth(stmt) <= 2 * (stmt.end_col_offset - stmt.col_offset) + 2


def _depth(node, d=0):
    return max([d] + [_depth(c, d + 1) for c in ast.iter_child_nodes(node)])


def test_a_file_analysed_but_for_one_statement_is_counted_as_checked_in_part(tmp_path, capsys):
    """Before: it was counted among the files that could not be checked."""
    (tmp_path / "chain.py").write_text(long_chains()["chain_plus.py"])
    (tmp_path / "broken.py").write_bytes(b"\x00")
    code, out, err = run(["check", str(tmp_path)], capsys)
    assert code == 2 and "MF001" in out
    assert err.splitlines()[-1] == ("Found 1 problem (1 fixable with `maskfix rewrite`); 1 file could not be checked; "
                                    "1 file checked only in part.")
    code, out, err = run(["rewrite", str(tmp_path)], capsys)
    assert err.splitlines()[-1] == "Fixed 1 problem in 1 file; 1 file could not be handled; 1 file handled only in part."


@pytest.mark.parametrize("raw, reason", [
    (b"# -*- coding: bogus -*-\nx = 1\n", "bad encoding declaration"),
    (b"#!/usr/bin/env python\n# coding: nope\nx = 1\n", "bad encoding declaration"),
    (b"x = 1\x00\n", "binary content"),
    (b"x = '\xff'\n", "cannot decode as utf-8"),
])
def test_files_the_prefilter_passes_by_are_still_checked_for_their_encoding(tmp_path, capsys, raw, reason):
    """Plain ASCII files skip decoding; these must not."""
    (tmp_path / "odd.py").write_bytes(raw)
    (tmp_path / "third.py").write_bytes(b"x = 1\n" * 3 + b"# coding: not a cookie on line four\n")
    code, out, err = run(["check", "--no-cache", str(tmp_path)], capsys)
    assert code == 2 and error_lines(err) == [f"maskfix: error: {tmp_path / 'odd.py'}: " + error_lines(err)[0].split(": ", 3)[-1]]
    assert reason in err


def test_a_walk_without_stats_finds_what_a_walk_with_them_finds(tmp_path):
    # without the cache, no signature is needed: a regular file is known by its folder's listing
    (tmp_path / "pkg").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "b.pyi").write_text("y: int\n")
    os.mkfifo(tmp_path / "pipe.py")
    os.symlink("a.py", tmp_path / "alias.py")
    os.symlink("nowhere.py", tmp_path / "dangling.py")
    os.symlink("loop_b.py", tmp_path / "loop_a.py")
    os.symlink("loop_a.py", tmp_path / "loop_b.py")
    with_stats = list(discover_stat([str(tmp_path)]))
    without = list(discover_stat([str(tmp_path)], stat_files=False))
    assert [(p, why, real) for p, why, _, real in without] == [(p, why, real) for p, why, _, real in with_stats]
    assert {os.path.basename(p) for p, why, st, _ in without if why is None and st is None} == {"a.py", "b.pyi"}
    assert {os.path.basename(p): why for p, why, _, _ in without if why} == {
        "pipe.py": "not a regular file", "dangling.py": "broken symbolic link",
        "loop_a.py": "symbolic link loop", "loop_b.py": "symbolic link loop"}
