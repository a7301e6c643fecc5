"""The decoder-mask family fixtures, run: each original breaks or leaks source padding, each
rewrite runs and ignores it (tests/runtime/source_padding_probe.py), on tf_keras and Keras 3."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maskfix.verify.runtime import Runtime, missing_modules

# One xdist worker builds this module's shared fixture once (pyproject: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("family_runtime")

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"

TF_KERAS = {"TF_USE_LEGACY_KERAS": "1"}
KERAS3 = {"TF_USE_LEGACY_KERAS": "0", "KERAS_BACKEND": "tensorflow"}

# fixture -> (function to run, runtime)
CASES = {
    "fam_submodel_callers_tf": ("sample", TF_KERAS),
    "fam_submodel_callers_keras3": ("greedy_translate", KERAS3),
    "fam_layer_swapped_tf": ("train_step", TF_KERAS),
    "fam_stack_swapped_keras3": ("train_step", KERAS3),
    "fam_gen_path_target_tf": ("translate", TF_KERAS),
    "fam_gen_method_keras3": ("greedy", KERAS3),
    "fam_implicit_submodel_tf": ("greedy", TF_KERAS),
    "fam_implicit_submodel_keras3": ("greedy", KERAS3),
}


@pytest.fixture(scope="module")
def probed():
    """{(fixture, 'before'|'after'): result}, one process per runtime."""
    missing = missing_modules(Runtime("tf_keras")) + missing_modules(Runtime("keras3"))  # not imported here
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    out = {}
    for env in (TF_KERAS, KERAS3):
        keys = [(f, w) for f, (_, e) in CASES.items() if e is env for w in ("before", "after")]
        proc = subprocess.run(
            [sys.executable, str(HERE / "runtime" / "source_padding_probe.py"),
             *(f"{FIXTURES / f / w}.py:{CASES[f][0]}" for f, w in keys)],
            capture_output=True, text=True, timeout=600, env={**os.environ, **env},
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        out.update(zip(keys, lines))
    return out


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_original_breaks_or_reads_source_padding(probed, fixture):
    before = probed[(fixture, "before")]
    assert not (before["ran"] and before["same"]), before


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_rewrite_runs_and_ignores_source_padding(probed, fixture):
    after = probed[(fixture, "after")]
    assert after["ran"] and after["same"], after

