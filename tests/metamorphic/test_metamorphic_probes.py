"""Layer probes on transformed fixtures: maskfix's rewrite of a transformed decoder passes
every probe (the untransformed originals failing them is shown by tests/test_fixture_probes.py).

One fixture per single-file transformation (rotating over the probed fixtures so that each
transformation meets a different decoder), one worker process per runtime, as in
tests/test_fixture_probes.py, whose table of decoder classes this reuses.
"""

from __future__ import annotations

import importlib.util

import pytest

from harness import FIXTURES, evaluate, transformed  # noqa: E402
from transforms import MAIN, TRANSFORMS  # noqa: E402

from maskfix.verify.runtime import TF_KERAS, Runtime, detect_runtime, missing_modules, run_jobs  # noqa: E402

# Checked without importing: Keras runs in the probe subprocesses, and importing TensorFlow at
# collection would cost every xdist worker seconds of CPU and a gigabyte of memory.
MISSING = missing_modules(TF_KERAS) + missing_modules(Runtime("keras3"))
if MISSING:
    pytest.skip(f"{', '.join(MISSING)} not installed", allow_module_level=True)

# One xdist worker builds this module's shared fixture once (pyproject: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("metamorphic_probes")

_spec = importlib.util.spec_from_file_location("fixture_probes", FIXTURES.parent / "test_fixture_probes.py")
_probes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_probes)
CASES = _probes.CASES


def _selection():
    """[(transform, fixture)]: the first probed fixture, from a rotating start, that the
    transformation applies to, keeps its verdict, and rewrites in one file."""
    names = sorted(CASES)
    out = []
    for i, transform in enumerate(TRANSFORMS):
        for k in range(len(names)):
            fixture = names[(5 * i + k) % len(names)]
            files = transformed(fixture, transform)
            if files is None or list(files) != [MAIN]:
                continue  # checked before the analysis runs: most candidates stop here
            r = evaluate(fixture, transform)
            if r.status == "pass" and r.fixed[MAIN] != r.files[MAIN]:
                out.append((transform, fixture))
                break
    return out


@pytest.fixture(scope="module")
def selection():
    """Chosen when the module's first test runs, not at collection: every xdist worker collects
    every module, and choosing runs the analysis on a few dozen transformed programs."""
    return dict(_selection())


@pytest.fixture(scope="module")
def results(tmp_path_factory, selection):
    """{transform: [probe dicts]} for the rewritten programs, one worker per runtime."""
    tmp = tmp_path_factory.mktemp("metamorphic_probes")
    groups = {}
    for transform, fixture in selection.items():
        r = evaluate(fixture, transform)
        cls, init, modes = CASES[fixture]
        text = r.fixed[MAIN]
        path = tmp / f"{fixture}__{transform}.py"
        path.write_text(text)
        job = {"path": str(path), "tasks": [{"kind": "layer_probes", "layer": cls, "init": init, "modes": modes}]}
        groups.setdefault(detect_runtime(text).label, []).append((transform, job, text))
    out = {}
    for items in groups.values():
        done = run_jobs(detect_runtime(items[0][2]), [job for _, job, _ in items])
        for (key, _, _), job in zip(items, done["jobs"]):
            assert "error" not in job, (key, job.get("error"))
            task = job["tasks"][0]
            assert "error" not in task, (key, task.get("error"))
            out[key] = task["probes"]
    return out


def test_the_selection_covers_most_transformations(selection):
    assert len(selection) >= 10


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_rewrite_of_transformed_decoder_passes_every_probe(selection, results, transform):
    if transform not in selection:
        pytest.skip(f"no probed fixture rewrites in one file under {transform}")
    probes = results[transform]
    assert len(probes) >= 4
    assert all(p["passed"] for p in probes), (selection[transform], _probes._table(probes))
