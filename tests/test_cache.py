"""The screen cache (.maskfix_cache): re-runs skip unchanged files, never trust a changed one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from maskfix import cache, cli, screen

FIXTURES = Path(__file__).parent / "fixtures"
PLAIN = "import os\n\n\ndef join(x):\n    return os.path.join(x, 'y')\n"
# passes the byte prefilter (attention stored on self), then the ast screen rejects it (no cross-attention)
SELF_ONLY = """import keras


class SelfBlock(keras.layers.Layer):
    def __init__(self, dim):
        super().__init__()
        self.mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=dim)

    def call(self, x):
        return x + self.mha(x, x, use_causal_mask=True)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tree of plain files, a negative that takes the ast screen, and a buggy decoder."""
    monkeypatch.setattr(cache, "RACY_SECONDS", 0.0)  # files written just now may be cached
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"plain{i}.py").write_text(PLAIN)
    (src / "negative.py").write_text(SELF_ONLY)
    (src / "decoder.py").write_bytes((FIXTURES / "raw_mask" / "before.py").read_bytes())
    return tmp_path


def check(tmp_path, capsys, *extra):
    code = cli.main(["check", "-j1", "--cache-dir", str(tmp_path / "cache"), *extra, str(tmp_path / "src")])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def reads(monkeypatch):
    seen = []
    real = cli.read_bytes

    def counting(path):
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(cli, "read_bytes", counting)
    return seen


@pytest.fixture
def screens(monkeypatch):
    seen = []
    real = screen.worth_parsing

    def counting(source, keep_tree=False):
        seen.append(source)
        return real(source, keep_tree)

    monkeypatch.setattr(screen, "worth_parsing", counting)
    return seen


def test_a_warm_run_reads_only_the_files_that_may_hold_a_finding(project, capsys, reads, screens):
    (project / "src" / "decoder.py").unlink()
    cold = check(project, capsys)
    assert sorted(reads) == sorted(["negative.py"] + [f"plain{i}.py" for i in range(5)])
    reads.clear()
    screens.clear()
    assert check(project, capsys) == cold and cold[0] == 0
    assert reads == [] and screens == []


def test_a_warm_run_with_a_decoder_screens_nothing_and_still_analyses_it(project, capsys, screens, reads,
                                                                         engine_runs):
    cold = check(project, capsys)
    cold_runs = list(engine_runs)
    screens.clear(), reads.clear()
    warm = check(project, capsys)
    assert warm == cold and cold[0] == 1 and "MF001" in cold[1]
    assert screens == []  # its verdict (to the engine) is known from its signature
    assert cold_runs and engine_runs == cold_runs * 2  # but it is always analysed
    # the decoder is read for the engine; the other files again only to look for its callers
    assert "decoder.py" in reads
    os.utime(project / "src" / "decoder.py")  # a new signature, the same bytes: known by its digest
    assert check(project, capsys) == cold and screens == [] and engine_runs == cold_runs * 3


def test_a_changed_file_is_never_trusted_even_with_its_old_size_and_mtime(project, capsys):
    plain = project / "src" / "plain0.py"
    buggy = (FIXTURES / "raw_mask" / "before.py").read_bytes().replace(b"class Decoder", b"class Plain0")
    plain.write_bytes(buggy.replace(b"MultiHeadAttention", b"MultiHeadAttentiox"))  # cannot match
    check(project, capsys)
    before = os.stat(plain)
    with open(plain, "r+b") as fh:  # same size, same inode
        fh.write(buggy)
    os.utime(plain, ns=(before.st_atime_ns, before.st_mtime_ns))  # as a careless tool might
    assert os.stat(plain).st_size == before.st_size
    code, out, _ = check(project, capsys)
    assert "plain0.py" in out and code == 1


def test_a_touched_file_is_hashed_not_screened_again(project, capsys, screens):
    check(project, capsys)
    assert SELF_ONLY in screens  # the negative took the ast screen
    screens.clear()
    os.utime(project / "src" / "negative.py")  # a new signature, the same bytes
    check(project, capsys)
    assert screens == []  # the negative's verdict came from its digest, the decoder's from its signature


def test_files_changed_within_the_racy_window_are_not_recorded(project, capsys, monkeypatch, reads):
    monkeypatch.setattr(cache, "RACY_SECONDS", 3600.0)
    (project / "src" / "decoder.py").unlink()
    check(project, capsys)
    reads.clear()
    check(project, capsys)
    assert len(reads) == 6


def test_no_cache_neither_reads_nor_writes(project, capsys, reads):
    (project / "src" / "decoder.py").unlink()
    check(project, capsys, "--no-cache")
    assert not (project / "cache").exists()
    check(project, capsys)
    reads.clear()
    check(project, capsys, "--no-cache")
    assert len(reads) == 6


def test_a_damaged_cache_counts_as_empty(project, capsys):
    cold = check(project, capsys)
    for f in (project / "cache").glob("screen-*"):
        f.write_bytes(b"\x00not a cache")
    assert check(project, capsys) == cold
    assert check(project, capsys) == cold


def test_a_cache_that_cannot_be_written_is_skipped(project, capsys):
    (project / "cache").write_text("a file where the folder would go")
    code, out, err = check(project, capsys)
    assert code == 1 and "MF001" in out and "cache" not in err


def test_settings_and_versions_have_their_own_cache(project, capsys, reads):
    (project / "src" / "decoder.py").unlink()
    check(project, capsys)
    reads.clear()
    check(project, capsys, "--select", "MF001")
    assert len(reads) == 6
    assert len(list((project / "cache").glob("screen-*"))) == 2


def test_an_edited_maskfix_does_not_read_the_old_verdicts(project, capsys, reads, monkeypatch):
    from maskfix import cache

    (project / "src" / "decoder.py").unlink()
    check(project, capsys)
    reads.clear()
    check(project, capsys)
    warm = len(reads)
    monkeypatch.setattr(cache, "code_stamp", lambda: "an edited checkout")
    reads.clear()
    check(project, capsys)
    assert len(reads) > warm  # read and screened again, under a cache of its own
    assert len(list((project / "cache").glob("screen-*"))) == 2


def test_the_default_cache_lives_in_the_project_and_ignores_itself(project, monkeypatch, capsys):
    monkeypatch.delenv("MASKFIX_CACHE_DIR", raising=False)
    (project / "pyproject.toml").write_text("[tool.maskfix]\n")
    monkeypatch.chdir(project / "src")
    cli.main(["check", "-j1", "."])
    capsys.readouterr()
    assert (project / ".maskfix_cache" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_concurrent_runs_leave_a_whole_cache(project):
    env = {**os.environ, "MASKFIX_CACHE_DIR": str(project / "cache")}
    cmd = [sys.executable, "-m", "maskfix", "check", str(project / "src")]
    runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outs = [p.communicate() for p in runs]
    assert [p.returncode for p in runs] == [1] * 4 and len({o for o, _ in outs}) == 1
    for f in (project / "cache").glob("screen-*"):
        assert isinstance(__import__("marshal").loads(f.read_bytes()), dict)
    assert not list((project / "cache").glob(".screen-*"))  # no temporary file left behind


@pytest.fixture
def engine_runs(monkeypatch):
    from maskfix import engine

    seen = []
    real = engine.run

    def counting(sources, **kwargs):
        seen.append(sorted(sources))
        return real(sources, **kwargs)

    monkeypatch.setattr(engine, "run", counting)
    return seen


def test_sources_the_engine_found_clean_are_not_analysed_again(project, capsys, engine_runs):
    (project / "src" / "decoder.py").unlink()
    clean = (FIXTURES / "neg_query_and_key_masks" / "before.py").read_bytes()  # passes both screens
    (project / "src" / "clean.py").write_bytes(clean)
    cold = check(project, capsys)
    assert len(engine_runs) == 1
    assert check(project, capsys) == cold and len(engine_runs) == 1
    (project / "src" / "clean.py").write_bytes(clean + b"\n")  # other bytes: analysed again
    check(project, capsys)
    assert len(engine_runs) == 2


def test_a_warm_run_reads_only_the_modules_a_clean_source_imports(project, capsys, reads):
    """The modules a source imports may define a decoder layer; no other file is read again."""
    (project / "src" / "decoder.py").unlink()
    clean = (FIXTURES / "neg_query_and_key_masks" / "before.py").read_bytes()  # passes both screens
    (project / "src" / "clean.py").write_bytes(b"from plain0 import join\n" + clean)
    cold = check(project, capsys)
    reads.clear()
    assert check(project, capsys) == cold and cold[0] == 0
    assert sorted(reads) == ["clean.py", "plain0.py"]


def test_a_run_with_findings_always_reaches_the_engine(project, capsys, engine_runs):
    first = check(project, capsys)
    cold_runs = len(engine_runs)
    assert check(project, capsys) == first and len(engine_runs) == 2 * cold_runs > 0
