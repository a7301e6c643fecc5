"""Fixtures for the runtime verification tests.

Every Keras runtime runs in its own subprocess (flavour and backend are fixed at import), and the
four runtimes are started together once per session so the suite stays short.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from maskfix.verify.runtime import ALL_RUNTIMES, start_jobs

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
RUNTIME_LABELS = [rt.label for rt in ALL_RUNTIMES]

# Brief training settings shared by the runtimes: tiny model, a few hundred sequences.
TRAIN = dict(seed=0, epochs=3, n_train=768, n_heldout=128, src_vocab_size=16, embed_dim=32,
             latent_dim=64, num_heads=2)
EQUAL = dict(src_len=10, tgt_len=10)
SRC_SHORTER = dict(src_len=8, tgt_len=10)
SRC_LONGER = dict(src_len=11, tgt_len=7)


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


def _jobs(flavour: str, tmp_path: Path) -> list:
    fixed = fixed_example(flavour, tmp_path)
    probes = [{"kind": "layer_probes"}, {"kind": "model_probes"}]
    train = lambda lengths: dict(kind="train", **TRAIN, **lengths)  # noqa: E731
    return [
        {"path": str(original_example(flavour)),
         "tasks": probes + [train(EQUAL), train(SRC_SHORTER)]},
        {"path": str(fixed),
         "tasks": probes + [train(EQUAL), train(SRC_SHORTER), train(SRC_LONGER)]},
        {"path": str(no_causal_mutant(fixed, tmp_path)), "tasks": probes},
    ]


class RuntimeResults:
    """Results per runtime label, collected from workers started all at once."""

    def __init__(self, tmp_path_factory):
        self._pending = {}
        for rt in ALL_RUNTIMES:
            tmp = tmp_path_factory.mktemp(rt.label.replace("/", "_"))
            # One thread each: four workers share the machine.
            self._pending[rt.label] = start_jobs(rt, _jobs(flavour_of(rt.label), tmp), threads=1)
        self._done = {}

    def get(self, label: str) -> dict:
        if label not in self._done:
            self._done[label] = self._pending.pop(label).result()
        return self._done[label]

    def task(self, label: str, which: str, kind: str, index: int = 0) -> dict:
        """The index-th task of a kind for the "original", "fixed" or "mutant" job."""
        job = self.get(label)["jobs"][("original", "fixed", "mutant").index(which)]
        assert "error" not in job, job.get("error")
        tasks = [t for t in job["tasks"] if t["kind"] == kind]
        return tasks[index]


@pytest.fixture(scope="session")
def runtime_results(tmp_path_factory) -> RuntimeResults:
    return RuntimeResults(tmp_path_factory)
