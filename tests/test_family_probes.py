"""Model probes on the polarity fixtures (MF009): the original attends to padding, the fix does not.

Each fixture defines ``build_model``; the probes run the whole model on token ids, so the masks
are built by the fixture's own helpers exactly as in training.  One worker process per runtime:
the tf.keras fixture under tf_keras, the Keras 3 one under Keras 3.
"""

from pathlib import Path

import pytest

from maskfix.verify.runtime import TF_KERAS, Runtime, detect_runtime, missing_modules, run_jobs  # noqa: E402

# Checked without importing: Keras runs in the probe subprocesses, and importing TensorFlow at
# collection would cost every xdist worker seconds of CPU and a gigabyte of memory.
MISSING = missing_modules(TF_KERAS) + missing_modules(Runtime("keras3"))
if MISSING:
    pytest.skip(f"{', '.join(MISSING)} not installed", allow_module_level=True)

# One xdist worker builds this module's shared fixture once (pyproject: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("family_probes")

FIXTURES = Path(__file__).parent / "fixtures"

# fixture -> the probes its original fails
CASES = {
    "fam_polarity_tutorial_tf": {"padding_gets_no_attention", "source_padding_invariance", "decoder_causality"},
    "fam_polarity_bool_keras3": {"padding_gets_no_attention", "source_padding_invariance", "decoder_causality"},
}


@pytest.fixture(scope="module")
def results():
    """{(fixture, 'before'|'after'): {probe name: probe dict}}, with the runtime each ran on."""
    out = {}
    for fixture in CASES:
        runtime = detect_runtime((FIXTURES / fixture / "before.py").read_text())
        jobs = [{"path": str(FIXTURES / fixture / f"{which}.py"), "tasks": [{"kind": "model_probes"}]}
                for which in ("before", "after")]
        done = run_jobs(runtime, jobs)
        for which, job in zip(("before", "after"), done["jobs"]):
            assert "error" not in job, (fixture, which, job.get("error"))
            task = job["tasks"][0]
            assert "error" not in task, (fixture, which, task.get("traceback", task.get("error")))
            out[(fixture, which)] = (runtime.label, {p["name"]: p for p in task["probes"]})
    return out


def test_both_runtimes_are_covered(results):
    labels = {label for label, _ in results.values()}
    assert "tf_keras" in labels and any(label.startswith("keras3") for label in labels), labels


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_original_attends_to_padding_and_future(results, fixture):
    _, probes = results[(fixture, "before")]
    failed = {name for name, p in probes.items() if not p["passed"]}
    assert failed == CASES[fixture], {n: p["reason"] for n, p in probes.items()}


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_inverted_masks_pass_every_probe(results, fixture):
    _, probes = results[(fixture, "after")]
    assert "padding_gets_no_attention" in probes
    assert all(p["passed"] for p in probes.values()), {n: p["reason"] for n, p in probes.items()}


def test_verify_model_runs_the_model_probes_from_the_command_line(capsys):
    from maskfix.verify import run_verify

    after = FIXTURES / "fam_polarity_tutorial_tf" / "after.py"
    assert run_verify(str(after), model=True) == 0
    out = capsys.readouterr().out
    assert "Probes on the model of build_model" in out and "padding_gets_no_attention  PASS" in out
    assert run_verify(str(after), "DecoderLayer", model=True) == 2
    assert "--model probes build_model as a whole" in capsys.readouterr().err
