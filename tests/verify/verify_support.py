"""Shared helpers of the runtime verification tests: where the examples come from, and the jobs.

Kept out of conftest.py so test modules can import them by a name no other conftest shadows.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from maskfix.verify.runtime import ALL_RUNTIMES

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
RUNTIME_LABELS = [rt.label for rt in ALL_RUNTIMES]

# Brief training settings shared by the runtimes: tiny model, a few hundred sequences.
TRAIN = dict(seed=0, epochs=3, n_train=768, n_heldout=128, src_vocab_size=16, embed_dim=32,
             latent_dim=64, num_heads=2)
EQUAL = dict(src_len=10, tgt_len=10)
SRC_SHORTER = dict(src_len=8, tgt_len=10)
# Source longer than target is covered by the unequal_lengths probes; the report trains it too.


def flavour_of(label: str) -> str:
    return "tf_keras" if label == "tf_keras" else "keras3"


def original_example(flavour: str) -> Path:
    return EXAMPLES / f"translation_{flavour}.py"


def fixed_example(flavour: str, tmp_path: Path) -> Path:
    """The fixed example under test: the single place that says where it comes from.

    Currently the hand-fixed copy kept next to these tests; meant to become the output of
    ``python -m maskfix rewrite`` on ``original_example(flavour)`` written into ``tmp_path``.
    """
    target = Path(tmp_path) / f"translation_{flavour}_fixed.py"
    shutil.copyfile(HERE / f"translation_{flavour}_expected_fixed.py", target)
    return target


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


def jobs_for(flavour: str, tmp_path: Path) -> list:
    fixed = fixed_example(flavour, tmp_path)
    probes = [{"kind": "layer_probes"}, {"kind": "model_probes"}]
    train = lambda lengths: dict(kind="train", **TRAIN, **lengths)  # noqa: E731
    return [
        {"path": str(original_example(flavour)),
         "tasks": probes + [train(EQUAL), train(SRC_SHORTER)]},
        {"path": str(fixed),
         "tasks": probes + [train(EQUAL), train(SRC_SHORTER)]},
        {"path": str(no_causal_mutant(fixed, tmp_path)), "tasks": probes},
    ]


