"""Sources parsed ahead (engine.load) give the engine exactly what it would build itself: same
findings, messages, positions, rewrites and errors, run after run; the analysis process
(maskfix.analysis_process) gives what the engine gives in this one, and its absence costs
nothing but time."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from maskfix import engine, limits, syntax
from maskfix.cli import main
import multiprocessing
import os

from maskfix.analysis_process import AnalysisProcess

sys.path.insert(0, str(Path(__file__).parent / "metamorphic"))
from transforms import TRANSFORMS  # noqa: E402

from test_prefilter import LAYER_ONLY, caller_of_layer  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
VARIANTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "before.py").exists())


def view(outcomes):
    return {k: (o.error, o.new_source, [(f.code, f.line, f.column, f.message) for f in o.findings],
                sorted(o.needs), o.notes, o.decoders) for k, o in outcomes.items()}


def load_all(files):
    return limits.call_with_deep_stack(lambda: {k: engine.load(k, v) for k, v in files.items()})


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_run_from_loaded_sources_is_the_run_from_text(variant):
    fix = True  # findings and rewrites alike
    files = {"before.py": (FIXTURES / variant / "before.py").read_text()}
    files.update({f"mod_{k}": v for k, v in (TRANSFORMS["sibling_module"](files["before.py"]) or {}).items()
                  if k.endswith(".py")})
    plain = view(engine.run(files, fix=fix))
    loaded = load_all(files)
    assert all(isinstance(v, engine.Loaded) for v in loaded.values())
    # twice from the same trees: the first run forgets the indexes, the second adopts them again
    assert view(engine.run(files, fix=fix, loaded=loaded)) == plain
    assert view(engine.run(files, fix=fix, loaded=loaded)) == plain


def test_fresh_units_share_the_tree_and_its_index_but_nothing_a_run_writes():
    source = (FIXTURES / "book_tf" / "before.py").read_text()
    loaded = load_all({"a.py": source})["a.py"]
    syntax.forget_trees()
    one, two = loaded.fresh(), loaded.fresh()
    assert one.module is two.module is loaded.unit.module
    assert syntax.tree_index(one.module) is loaded.unit.index  # adopted again after being forgotten
    one.imported.add("Other")
    assert "Other" not in two.imported and one.facts is None and two.visible == {}


def test_a_loaded_source_whose_text_changed_is_parsed_again():
    old = (FIXTURES / "book_tf" / "before.py").read_text()
    new = (FIXTURES / "book_tf" / "after.py").read_text()
    loaded = load_all({"a.py": old})
    assert view(engine.run({"a.py": new}, loaded=loaded)) == view(engine.run({"a.py": new}))
    assert view(engine.run({"a.py": new}, loaded=loaded))["a.py"][2] == []


def test_errors_are_loaded_too_and_large_files_are_left_to_the_run():
    loaded = load_all({"bad.py": "def f(:\n", "big.py": "x = 1\n" * 20000})
    assert loaded["big.py"] is None  # sliced by the words of the run's other files
    assert loaded["bad.py"].unit is None and loaded["bad.py"].error.startswith("cannot parse")
    assert view(engine.run({"bad.py": "def f(:\n"}, loaded=loaded)) == view(engine.run({"bad.py": "def f(:\n"}))


def forked() -> AnalysisProcess:
    analysis = AnalysisProcess()
    analysis.fork(multiprocessing.get_context("fork"))
    return analysis


def test_the_analysis_process_gives_what_the_engine_gives_here():
    analysis = forked()
    try:
        for variant in ("book_tf", "kerasio_keras3", "fam_factory_swapped"):
            files = {"a.py": (FIXTURES / variant / "before.py").read_text(), "b.py": "x = 1\n"}
            analysis.start()
            analysis.load("a.py", files["a.py"])  # parsed ahead; b.py is parsed by the run itself
            seen = []
            for fix in (False, True):
                there = analysis.run(files, fix, None, lambda done, total, key: seen.append((done, total, key)))
                assert view(there) == view(engine.run(files, fix=fix))
            assert seen == [(0, 2, "a.py"), (1, 2, "b.py")] * 4  # parsing, then analysing, per run
    finally:
        analysis.close()
    assert not analysis.running and analysis.run({"a.py": "x = 1\n"}, False, None) is None


def test_an_analysis_process_that_is_gone_gives_nothing_and_the_caller_runs_here(tmp_path, capsys, monkeypatch):
    analysis = forked()
    analysis._process.kill()
    analysis._process.join()
    assert analysis.run({"a.py": "x = 1\n"}, False, None) is None and not analysis.running
    analysis.load("a.py", "x = 1\n")  # ignored
    analysis.close()
    # the CLI falls back to its own process: same report
    from maskfix import cli

    shutil.copy(FIXTURES / "book_tf" / "before.py", tmp_path / "book.py")
    main(["check", "--no-cache", str(tmp_path)])
    here = capsys.readouterr().out
    gone = AnalysisProcess()
    gone.fork(multiprocessing.get_context("fork"))
    gone._process.kill()
    gone._process.join()
    monkeypatch.setattr(cli, "AnalysisProcess", lambda: gone)  # as if forked with workers, then crashed
    main(["check", "--no-cache", str(tmp_path)])
    assert capsys.readouterr().out == here and "MF001" in here


def test_an_analysis_process_never_forked_is_harmless():
    analysis = AnalysisProcess()
    analysis.start()
    analysis.load("a.py", "x = 1\n")
    assert not analysis.has("a.py") and analysis.run({"a.py": "x = 1\n"}, False, None) is None
    analysis.close()


def test_workers_and_the_analysis_process_report_what_one_process_does(tmp_path, capsys, monkeypatch):
    # enough files for the workers; a decoder in the middle of the tree, its caller in another
    # module, and a layer module read only because the caller imports it
    for i in range(800):
        folder = tmp_path / f"pkg{i // 100}"
        folder.mkdir(exist_ok=True)
        (folder / f"filler_{i}.py").write_text(f"x = {i}\n")
    (tmp_path / "pkg1" / "layers_mod.py").write_text(LAYER_ONLY)
    (tmp_path / "pkg2" / "train.py").write_text(caller_of_layer())
    shutil.copy(FIXTURES / "book_tf" / "before.py", tmp_path / "pkg3" / "book.py")
    given = []
    loading = AnalysisProcess.load
    monkeypatch.setattr(AnalysisProcess, "load", lambda self, key, source: (
        self.running and given.append(Path(key).name)) or loading(self, key, source))
    outputs = []
    for jobs in ("1", "2"):
        main(["check", "--no-cache", "-j", jobs, str(tmp_path)])
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    # with workers, the parsed files and the module the caller imports were parsed ahead
    assert sorted(given) == ["book.py", "layers_mod.py", "train.py"]
    assert "layers_mod.py:17:" in outputs[0] and "MF010" in outputs[0] and "book.py" in outputs[0]


def test_screen_workers_give_way_to_the_analysis():
    from maskfix import cli

    pool = cli._pool(2)
    try:
        niceness = pool.submit(os.nice, 0).result()
    finally:
        pool.shutdown()
    assert niceness == min(os.nice(0) + cli.WORKER_NICENESS, 19)


def test_an_analysis_that_fails_there_gives_nothing(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("a surprise")

    monkeypatch.setattr(engine, "run", fail)  # before the fork: the process inherits it
    analysis = forked()
    try:
        assert analysis.run({"a.py": "x = 1\n"}, False, None) is None
    finally:
        analysis.close()
