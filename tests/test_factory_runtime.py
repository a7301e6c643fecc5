"""Tutorial-style mask factories, run: what each mask blocks before and after the rewrite."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tf_keras")

HERE = Path(__file__).parent


def probe(fixture, factory, which):
    proc = subprocess.run(
        [sys.executable, str(HERE / "runtime" / "factory_probe.py"),
         str(HERE / "fixtures" / fixture / f"{which}.py"), factory],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cross_mask_built_from_target_is_rebuilt_from_source():
    before = probe("fam_factory_target", "create_masks", "before")
    after = probe("fam_factory_target", "create_masks", "after")
    assert before["cross_shape"][-1] == 5 and not before["cross_blocks_source_padding"]
    assert after["cross_shape"][-1] == 7 and after["cross_blocks_source_padding"]


def test_bare_look_ahead_gains_the_target_padding():
    assert not probe("fam_factory_bare_lookahead", "masks_for", "before")["combined_blocks_target_padding"]
    assert probe("fam_factory_bare_lookahead", "masks_for", "after")["combined_blocks_target_padding"]


def test_swapped_slots_crash_with_unequal_lengths_until_swapped_back():
    before = probe("fam_factory_swapped", "create_masks", "before")
    after = probe("fam_factory_swapped", "create_masks", "after")
    assert before["unequal_lengths"].startswith("error")
    assert after["unequal_lengths"] == "ran"
    assert after["source_padding_invariance"] < 1e-5
