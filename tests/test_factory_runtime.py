"""Tutorial-style mask factories, run: what each mask blocks before and after the rewrite."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from maskfix.verify.runtime import TF_KERAS, missing_modules

# Checked without importing: Keras runs in the probe subprocesses, and importing TensorFlow at
# collection would cost every xdist worker seconds of CPU and a gigabyte of memory.
MISSING = missing_modules(TF_KERAS)
if MISSING:
    pytest.skip(f"{', '.join(MISSING)} not installed", allow_module_level=True)

# One xdist worker builds this module's shared fixture once (pyproject: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("factory_runtime")

HERE = Path(__file__).parent


CASES = [("fam_factory_target", "create_masks"), ("fam_factory_bare_lookahead", "masks_for"),
         ("fam_factory_swapped", "create_masks")]


@pytest.fixture(scope="module")
def probed():
    """{(fixture, which): results}, all from one process."""
    keys = [(f, w, name) for f, name in CASES for w in ("before", "after")]
    proc = subprocess.run(
        [sys.executable, str(HERE / "runtime" / "factory_probe.py"),
         *(f"{HERE / 'fixtures' / f / w}.py:{name}" for f, w, name in keys)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {(f, w): r for (f, w, _), r in zip(keys, lines)}


def test_cross_mask_built_from_target_is_rebuilt_from_source(probed):
    before, after = probed[("fam_factory_target", "before")], probed[("fam_factory_target", "after")]
    assert before["cross_shape"][-1] == 5 and not before["cross_blocks_source_padding"]
    assert after["cross_shape"][-1] == 7 and after["cross_blocks_source_padding"]


def test_bare_look_ahead_gains_the_target_padding(probed):
    assert not probed[("fam_factory_bare_lookahead", "before")]["combined_blocks_target_padding"]
    assert probed[("fam_factory_bare_lookahead", "after")]["combined_blocks_target_padding"]


def test_swapped_slots_crash_with_unequal_lengths_until_swapped_back(probed):
    before, after = probed[("fam_factory_swapped", "before")], probed[("fam_factory_swapped", "after")]
    assert before["unequal_lengths"].startswith("error")
    assert after["unequal_lengths"] == "ran"
    assert after["source_padding_invariance"] < 1e-5
