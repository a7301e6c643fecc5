"""Probes on the original and fixed examples in every Keras runtime, and brief training in
verify_support.TRAINED_LABELS (every runtime under MASKFIX_FULL=1)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from maskfix.verify.results import ProbeResult, assert_all_passed, assert_failed

from verify_support import RUNTIME_LABELS, TRAINED_LABELS

# One xdist worker starts the session's runtimes (conftest.runtime_results) once.
pytestmark = pytest.mark.xdist_group("runtime_results")

# What the original example gets wrong, per runtime. These are deterministic facts:
# * tf_keras fills `mask=` from the decoder input, so the cross-attention is causal over source
#   positions (step 0 sees source position 0 only) and S != T crashes; the value mask that
#   MultiHeadAttention reads from the encoder outputs still hides padding when S == T.
# * Keras 3 never fills `mask=` for a two-tensor call, and MultiHeadAttention masks the encoder
#   padding by itself, so the original only goes wrong when `mask=` is passed explicitly.
ORIGINAL_FAILURES = {
    "tf_keras": {
        "layer": {"full_source_visibility[implicit]", "unequal_lengths[implicit]",
                  "encoder_padding_invariance[explicit]", "full_source_visibility[explicit]",
                  "unequal_lengths[explicit]"},
        "model": {"source_padding_invariance", "unequal_lengths"},
    },
}
KERAS3_FAILURES = {
    "layer": {"encoder_padding_invariance[explicit]", "full_source_visibility[explicit]",
              "unequal_lengths[explicit]"},
    "model": set(),
}
for _label in RUNTIME_LABELS:
    ORIGINAL_FAILURES.setdefault(_label, KERAS3_FAILURES)


def _probes(task) -> list:
    assert "error" not in task, task.get("traceback", task.get("error"))
    return [ProbeResult.from_dict(d) for d in task["probes"]]


@pytest.mark.parametrize("label", RUNTIME_LABELS)
@pytest.mark.parametrize("level", ["layer", "model"])
def test_original_fails_expected_probes(runtime_results, label, level):
    results = _probes(runtime_results.task(label, "original", f"{level}_probes"))
    expected = ORIGINAL_FAILURES[label][level]
    for r in results:
        if r.label in expected:
            assert_failed(r)
    unexpected = [f"{r.label}: {r.reason}" for r in results if not r.passed and r.label not in expected]
    assert not unexpected, unexpected


@pytest.mark.parametrize("label", RUNTIME_LABELS)
@pytest.mark.parametrize("level", ["layer", "model"])
def test_fixed_passes_every_probe(runtime_results, label, level):
    assert_all_passed(_probes(runtime_results.task(label, "fixed", f"{level}_probes")))


@pytest.mark.parametrize("label", RUNTIME_LABELS)
def test_causality_probes_catch_a_decoder_without_causal_mask(runtime_results, label):
    layer = _probes(runtime_results.task(label, "mutant", "layer_probes"))
    model = _probes(runtime_results.task(label, "mutant", "model_probes"))
    for r in layer + model:
        if r.name == "decoder_causality":
            assert_failed(r)


@pytest.mark.parametrize("label", RUNTIME_LABELS)
def test_fixed_model_keeps_its_inputs(runtime_results, label):
    original = runtime_results.task(label, "original", "model_probes")
    fixed = runtime_results.task(label, "fixed", "model_probes")
    assert fixed["input_names"] == original["input_names"]
    assert fixed["n_outputs"] == original["n_outputs"] == 1


def _metrics(runtime_results, label, which) -> dict:
    task = runtime_results.task(label, which, "train_ratio")
    assert "error" not in task, task.get("traceback")
    return task["metrics"]


def _assert_learned_every_bucket(metrics):
    assert "crash" not in metrics, metrics["crash"]
    assert metrics["loss_last"] < 0.8 * metrics["loss_first"], metrics
    assert len(metrics["buckets"]) == 3
    for row in metrics["buckets"]:
        assert "error" not in row, row
        assert row["accuracy"] > row["baseline"] + 0.15, row


@pytest.mark.parametrize("label", TRAINED_LABELS)
def test_fixed_trains_in_every_ratio_bucket(runtime_results, label):
    metrics = _metrics(runtime_results, label, "fixed")
    shapes = [tuple(shape) for shape in metrics["epoch0_shapes"]]
    assert metrics["epoch0_unequal"] > 0 and len(set(shapes)) > 1  # batches differ, S != T occurs
    _assert_learned_every_bucket(metrics)


@pytest.mark.parametrize("label", TRAINED_LABELS)
def test_original_on_bucketed_batches(runtime_results, label):
    metrics = _metrics(runtime_results, label, "original")
    if label == "tf_keras":
        # The decoder-shaped [B, T, T] mask cannot be combined with the [B, 1, S] source mask:
        # training dies on the first batch whose S != T, after every S == T batch before it ran.
        crash = metrics["crash"]
        first_unequal = next(i for i, (s, t) in enumerate(metrics["epoch0_shapes"]) if s != t)
        assert (crash["epoch"], crash["batch"]) == (0, first_unequal), crash
        assert crash["shape"][0] != crash["shape"][1]
        assert re.search(r"ncompatible|must be equal|must match", crash["error"]), crash["error"]
    else:
        # Keras 3 trains (MultiHeadAttention masks encoder padding on its own, mask= stays None);
        # the bug is latent and shows when mask= is passed explicitly (probes, influence maps).
        _assert_learned_every_bucket(metrics)
        layer = _probes(runtime_results.task(label, "original", "layer_probes"))
        assert not next(r for r in layer if r.label == "unequal_lengths[explicit]").passed


def _influence(runtime_results, label, which) -> dict:
    task = runtime_results.task(label, which, "influence")
    assert "error" not in task, task.get("traceback")
    return task


@pytest.mark.parametrize("label", RUNTIME_LABELS)
def test_fixed_influence_sees_every_real_source_and_no_padding(runtime_results, label):
    data = _influence(runtime_results, label, "fixed")
    tol, n = data["tolerance"], data["source_length"]
    for mode, entry in data["modes"].items():
        cross, self_ = np.asarray(entry["cross"]), np.asarray(entry["self"])
        assert (cross[:, :n] > tol).all() and (cross[:, n:] <= tol).all(), (mode, cross)
        assert (np.triu(self_, 1) <= tol).all() and (np.diag(self_) > tol).all(), (mode, self_)


@pytest.mark.parametrize("label", RUNTIME_LABELS)
def test_original_influence_shows_the_bug(runtime_results, label):
    data = _influence(runtime_results, label, "original")
    tol, n = data["tolerance"], data["source_length"]
    explicit = np.asarray(data["modes"]["explicit"]["cross"])
    # mask= passed: step t sees source positions <= t (the triangle), padding included.
    lower = np.tril_indices(len(explicit))
    assert (np.triu(explicit, 1) <= tol).all() and (explicit[lower] > tol).all(), explicit
    assert (explicit[n:, n:] > tol).any()  # live padding columns
    implicit = np.asarray(data["modes"]["implicit"]["cross"])
    if label == "tf_keras":  # mask= filled by Keras: the triangle, padding hidden by the value mask
        assert (np.triu(implicit, 1) <= tol).all() and (implicit[:, n:] <= tol).all(), implicit
        assert (np.tril(implicit)[:, :n] > tol).sum() == sum(min(t + 1, n) for t in range(len(implicit)))
    else:  # Keras 3: mask= stays None, the encoder mask rides on the tensor: correct
        assert (implicit[:, :n] > tol).all() and (implicit[:, n:] <= tol).all(), implicit


@pytest.mark.parametrize("label", ["keras3/torch"])
def test_training_is_deterministic_with_a_seed(runtime_results, label):
    first = _metrics(runtime_results, label, "fixed")
    again = _metrics(runtime_results, label, "repeat")
    for key in ("epoch0_shapes", "loss_first", "loss_last", "buckets"):
        assert first[key] == again[key], key
