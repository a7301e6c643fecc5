"""Black-box probes on a whole seq2seq model built by ``module.build_model``.

The model takes ``[encoder_token_ids, decoder_token_ids]`` (pad id 0) and returns per-step
outputs. Weights are random (seeded): the properties hold or fail regardless of training.
"""
from __future__ import annotations

import inspect
from typing import Dict, List, Optional

import numpy as np

from maskfix.verify import kerasenv
from maskfix.verify.layer_probes import TOLERANCE
from maskfix.verify.results import ProbeResult, describe_exception

VOCAB = 16


def build_small_model(module, overrides: Optional[Dict] = None):
    keras = kerasenv.load_keras()
    keras.utils.set_random_seed(0)
    wanted = {"embed_dim": 16, "latent_dim": 32, "dense_dim": 32, "num_heads": 2, "dropout": 0.0}
    wanted.update(overrides or {})
    params = inspect.signature(module.build_model).parameters
    kwargs = {k: v for k, v in wanted.items() if k in params}
    return module.build_model(VOCAB, VOCAB, **kwargs)


def _predict(model, enc, dec) -> np.ndarray:
    k = kerasenv
    out = model([k.to_tensor(enc, "int32"), k.to_tensor(dec, "int32")], training=False)
    return k.to_numpy(out)


def _tokens(rng, lengths, total, start=None) -> np.ndarray:
    ids = np.zeros((len(lengths), total), dtype="int32")
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(3, VOCAB, size=n)
        if start is not None:
            ids[row, 0] = start
    return ids


def _crash(name, exc) -> ProbeResult:
    return ProbeResult(name, False, f"crashed: {describe_exception(exc)}", level="model")


def probe_model_source_padding_invariance(model, extra_pads: int = 4) -> ProbeResult:
    """Appending pad tokens to the source must change no output at real decoder steps."""
    name = "source_padding_invariance"
    rng = np.random.default_rng(11)
    enc, dec = _tokens(rng, [3, 5], 6), _tokens(rng, [6, 4], 6, start=1)
    longer = np.concatenate([enc, np.zeros((2, extra_pads), dtype=enc.dtype)], axis=1)
    try:
        a = _predict(model, enc, dec)
        b = _predict(model, longer, dec)
    except Exception as exc:  # noqa: BLE001 - a crash is a verdict
        return _crash(name, exc)
    diff = float((np.abs(a - b).max(axis=-1) * (dec != 0)).max())
    if diff <= TOLERANCE:
        return ProbeResult(name, True, f"{extra_pads} extra source pads change nothing (max diff {diff:.1e})", level="model")
    return ProbeResult(name, False, f"{extra_pads} extra source pads changed outputs by {diff:.3g}", level="model")


def probe_model_decoder_causality(model, k: int = 3) -> ProbeResult:
    """Outputs before step k must not depend on decoder tokens at steps >= k."""
    name = "decoder_causality"
    rng = np.random.default_rng(12)
    enc, dec = _tokens(rng, [4, 6], 6), _tokens(rng, [6, 6], 6, start=1)
    dec2 = dec.copy()
    dec2[:, k:] = 3 + (dec2[:, k:] - 3 + 5) % (VOCAB - 3)  # different real tokens
    try:
        a = _predict(model, enc, dec)
        b = _predict(model, enc, dec2)
    except Exception as exc:  # noqa: BLE001
        return _crash(name, exc)
    leak = float(np.abs(a[:, :k] - b[:, :k]).max())
    if leak <= TOLERANCE:
        return ProbeResult(name, True, f"steps < {k} unchanged when tokens >= {k} change", level="model")
    return ProbeResult(name, False, f"steps < {k} changed by {leak:.3g} when only later tokens changed", level="model")


def probe_model_unequal_lengths(model) -> ProbeResult:
    """Source shorter and longer than the target must both run."""
    name = "unequal_lengths"
    rng = np.random.default_rng(13)
    for src_len, tgt_len in ((4, 7), (9, 6)):
        enc = _tokens(rng, [src_len, 2], src_len)
        dec = _tokens(rng, [tgt_len, 3], tgt_len, start=1)
        try:
            out = _predict(model, enc, dec)
        except Exception as exc:  # noqa: BLE001
            res = _crash(name, exc)
            res.reason = f"source length {src_len}, target length {tgt_len}: {res.reason}"
            return res
        if out.shape[:2] != (2, tgt_len) or not np.all(np.isfinite(out)):
            return ProbeResult(name, False, f"bad output shape {out.shape} or non-finite values", level="model")
    return ProbeResult(name, True, "ran with source/target lengths 4/7 and 9/6", level="model")


def probe_model_padding_gets_no_attention(model, extra_pads: int = 4) -> ProbeResult:
    """Pad tokens appended to both the source and the target change no output at real target steps.

    A mask of the wrong polarity (built with 1 marking what to hide, read by Keras as 1 = attend)
    attends to exactly the padding and the future it means to hide; with the right one, appended
    pads are invisible.  Source and target grow together, so a decoder-shaped cross mask still runs.
    """
    name = "padding_gets_no_attention"
    rng = np.random.default_rng(15)
    enc, dec = _tokens(rng, [3, 5], 6), _tokens(rng, [6, 4], 6, start=1)
    pads = np.zeros((2, extra_pads), dtype=enc.dtype)
    try:
        a = _predict(model, enc, dec)
        b = _predict(model, np.concatenate([enc, pads], axis=1), np.concatenate([dec, pads], axis=1))
    except Exception as exc:  # noqa: BLE001
        return _crash(name, exc)
    diff = float((np.abs(a - b[:, :dec.shape[1]]).max(axis=-1) * (dec != 0)).max())
    if diff <= TOLERANCE:
        return ProbeResult(name, True, f"{extra_pads} extra pads on both sides change nothing (max diff {diff:.1e})",
                           level="model")
    return ProbeResult(name, False, f"{extra_pads} extra pads on both sides changed real steps by {diff:.3g}: "
                       "padding is attended to", level="model")


def probe_model_save_load(model, custom_objects: Optional[Dict] = None) -> ProbeResult:
    """The model survives a save/load round trip with identical outputs (the fix adds an input)."""
    import os
    import tempfile

    name = "save_load_roundtrip"
    keras = kerasenv.load_keras()
    rng = np.random.default_rng(14)
    enc, dec = _tokens(rng, [3, 5], 6), _tokens(rng, [6, 4], 6, start=1)  # equal: tests only saving
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras" if kerasenv.is_keras3() else "model.h5")
        try:
            before = _predict(model, enc, dec)
            model.save(path)
            after = _predict(keras.models.load_model(path, custom_objects=custom_objects), enc, dec)
        except Exception as exc:  # noqa: BLE001
            return _crash(name, exc)
    diff = float(np.abs(before - after).max())
    if diff <= TOLERANCE:
        return ProbeResult(name, True, f"saved as {os.path.basename(path)} and reloaded, same outputs", level="model")
    return ProbeResult(name, False, f"reloaded model differs by {diff:.3g}", level="model")


def _custom_objects(module) -> Dict:
    keras = kerasenv.load_keras()
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
            and obj.__module__ == module.__name__}


MODEL_PROBES = (
    probe_model_source_padding_invariance,
    probe_model_decoder_causality,
    probe_model_unequal_lengths,
    probe_model_padding_gets_no_attention,
)


def run_model_probes(module, overrides: Optional[Dict] = None, model=None) -> List[ProbeResult]:
    """Build a small model with ``module.build_model`` (unless given) and run every probe."""
    model = model if model is not None else build_small_model(module, overrides)
    results = [probe(model) for probe in MODEL_PROBES]
    results.append(probe_model_save_load(model, _custom_objects(module)))
    return results
