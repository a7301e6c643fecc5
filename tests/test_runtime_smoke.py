"""Rewritten fixtures build, run with source length != target length, and mask padding.

One process per runtime, since Keras picks its runtime at import.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from maskfix.verify.runtime import TF_KERAS, Runtime, missing_modules

# Checked without importing: Keras runs in the probe subprocesses, and importing TensorFlow at
# collection would cost every xdist worker seconds of CPU and a gigabyte of memory.
MISSING = missing_modules(TF_KERAS) + missing_modules(Runtime("keras3"))
if MISSING:
    pytest.skip(f"{', '.join(MISSING)} not installed", allow_module_level=True)

# One xdist worker builds this module's shared fixture once (pyproject: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("runtime_smoke")

HERE = Path(__file__).parent
CASES = [("kerasio_tf", "tf_keras", "DecoderBlock"), ("kerasio_keras3", "tensorflow", "TransformerDecoder"),
         ("book_tf", "tf_keras", "TransformerDecoder")]


def _case(fixture, which, cls):
    return f"{HERE / 'fixtures' / fixture / which}.py:{cls}"


@pytest.fixture(scope="module")
def probed():
    """{(fixture, which): results} for every case, before and after."""
    out = {}
    for runtime in sorted({r for _, r, _ in CASES}):
        cases = [(f, w, c) for f, r, c in CASES if r == runtime for w in ("before", "after")]
        proc = subprocess.run(
            [sys.executable, str(HERE / "runtime" / "smoke.py"), runtime, *(_case(*c) for c in cases)],
            capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        for (fixture, which, _), result in zip(cases, lines):
            out[(fixture, which)] = result
    return out


@pytest.mark.parametrize("fixture,runtime,cls", CASES)
def test_rewritten_model_masks_correctly(probed, fixture, runtime, cls):
    r = probed[(fixture, "after")]
    assert r["longer_source"] == [2, 5, 40 if fixture != "kerasio_tf" else 50]
    assert r["shorter_source"][:2] == [2, 9]
    assert r["pad_invariance"] < 1e-5
    assert r["step0_sees_last_source_token"] > 1e-4
    assert r["explicit_mask_pad_invariance"] < 1e-5
    assert r["serialization_round_trip"] < 1e-6  # get_config and the new Input survive save/load


@pytest.mark.parametrize("fixture,runtime,cls", CASES)
def test_original_fails_or_masks_wrongly(probed, fixture, runtime, cls):
    r = probed[(fixture, "before")]
    # With an explicit decoder mask (always under tf.keras, and how the bug returns under
    # Keras 3) the decoder's [B, T, T] mask cannot be applied to S != T source keys.
    explicit = r["explicit_mask_pad_invariance"]
    assert isinstance(explicit, str) and explicit.startswith("error")
    if runtime == "tf_keras":
        assert str(r["longer_source"]).startswith("error")
