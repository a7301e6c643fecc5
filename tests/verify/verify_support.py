"""Shared code of the runtime verification tests: where the examples come from, and the jobs.

Kept out of conftest.py so test modules can import them by a name no other conftest shadows.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from maskfix.verify.runtime import ALL_RUNTIMES

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
RUNTIME_LABELS = [rt.label for rt in ALL_RUNTIMES]
# Every runtime is probed; the brief training runs on each Keras flavour and on every Keras 3
# backend but JAX, whose compilation for every batch shape costs more CPU than the other three
# trainings together (about 45 s a run).  MASKFIX_FULL=1 trains on JAX too.
FULL = os.environ.get("MASKFIX_FULL") == "1"
TRAINED_LABELS = [label for label in RUNTIME_LABELS if FULL or label != "keras3/jax"]

# Brief training shared by the runtimes: tiny model, a few hundred pairs of every length ratio in
# length-bucketed batches. bench/verification_report.py trains longer and bigger.
TRAIN_RATIO = dict(seed=0, epochs=3, n_pairs=640, per_bucket=32, embed_dim=16, latent_dim=32,
                   num_heads=2)


# A correct decoder (causal self-attention, source padding on the cross-attention) whose width
# is a constructor argument named `dim`, and one whose width argument has a name no rule knows.
WIDE_DECODERS = """
from keras import layers, ops


class Decoder(layers.Layer):
    def __init__(self, dim, heads, **kwargs):
        super().__init__(**kwargs)
        self.self_attention = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)
        self.cross_attention = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)
        self.proj = layers.Dense(dim)

    def call(self, inputs, encoder_outputs, mask=None, encoder_padding_mask=None):
        cross_mask = None
        if encoder_padding_mask is not None:
            cross_mask = ops.cast(encoder_padding_mask[:, None, :], "int32")
        x = inputs + self.self_attention(inputs, inputs, use_causal_mask=True)
        x = x + self.cross_attention(x, encoder_outputs, attention_mask=cross_mask)
        return x + self.proj(x)


class OddDecoder(Decoder):
    def __init__(self, n, **kwargs):
        super().__init__(n, 2, **kwargs)
"""


def extra_jobs(label: str, fixed: Path, tmp_path: Path) -> list:
    """Jobs that ride in one runtime's worker of the session (torch, the quickest to train): the
    width probes, and the fixed example's training again, which must give the same figures."""
    if label != "keras3/torch":
        return []
    path = Path(tmp_path) / "wide.py"
    path.write_text(WIDE_DECODERS)
    return [
        {"path": str(path), "tasks": [
            {"kind": "layer_probes", "layer": "Decoder", "init": {"dim": 8}},
            {"kind": "layer_probes", "layer": "OddDecoder", "init": {"n": 8}},
        ]},
        {"path": str(fixed), "tasks": [dict(kind="train_ratio", **TRAIN_RATIO)]},
    ]


def flavour_of(label: str) -> str:
    return "tf_keras" if label == "tf_keras" else "keras3"


def original_example(flavour: str) -> Path:
    return EXAMPLES / f"translation_{flavour}.py"


def fixed_example(flavour: str, tmp_path: Path) -> Path:
    """The fixed example under test: the single place that says where it comes from.

    ``maskfix rewrite`` applied to a copy of ``original_example(flavour)`` in ``tmp_path``. With
    ``MASKFIX_VERIFY_FIXED=expected`` in the environment, the hand-fixed copy kept next to these
    tests is used instead (to tell rewrite regressions from runtime ones).
    """
    if os.environ.get("MASKFIX_VERIFY_FIXED") == "expected":
        target = Path(tmp_path) / f"translation_{flavour}_fixed.py"
        shutil.copyfile(expected_fixed(flavour), target)
        return target
    target = Path(tmp_path) / f"translation_{flavour}_rewritten.py"
    shutil.copyfile(original_example(flavour), target)
    proc = subprocess.run(
        [sys.executable, "-m", "maskfix", "rewrite", "-j", "1", "-q", str(target)],
        capture_output=True, text=True, cwd=HERE.parents[1],
    )
    if proc.returncode not in (0, 1) or target.read_text() == original_example(flavour).read_text():
        raise RuntimeError(f"maskfix rewrite did not fix {target} (exit {proc.returncode}):\n"
                           f"{proc.stdout}{proc.stderr}")
    return target


def expected_fixed(flavour: str) -> Path:
    """Hand-written fix of the example: the wiring the rewrite is expected to produce."""
    return HERE / f"translation_{flavour}_expected_fixed.py"


def no_causal_mutant(fixed: Path, tmp_path: Path) -> Path:
    """The fixed example with the causal mask dropped from the self-attention.

    Shows that the causality probes can fail: the examples themselves always pass them.
    """
    source = fixed.read_text()
    pattern = re.compile(r"(self\.attention_1\(\s*query=inputs,\s*value=inputs,\s*key=inputs,\s*attention_mask=)\w+")
    mutated, count = pattern.subn(r"\1None", source)
    assert count == 1, "fixed example no longer has the expected self-attention call"
    target = Path(tmp_path) / f"{fixed.stem}_no_causal.py"
    target.write_text(mutated)
    return target


# Job names, in the order jobs_for returns them.
JOB_NAMES = ("original", "fixed", "mutant", "extra", "repeat")


def jobs_for(flavour: str, fixed: Path, tmp_path: Path, extra: list = None, train: bool = True) -> list:
    """Worker jobs for one runtime: original, fixed, the no-causal mutant of the fixed one, and
    optional extra jobs ``{"path": ..., "tasks": [...]}`` that ride in the same worker.  The
    original and the fixed one are probed, mapped for influence and, if ``train``, trained."""
    probes = [{"kind": "layer_probes"}, {"kind": "model_probes"}]
    train = ([dict(kind="train_ratio", **TRAIN_RATIO)] if train else []) + [{"kind": "influence"}]
    jobs = [
        {"path": str(original_example(flavour)), "tasks": probes + train},
        {"path": str(fixed), "tasks": probes + train},
        {"path": str(no_causal_mutant(fixed, tmp_path)), "tasks": probes},
    ]
    return jobs + list(extra or [])
