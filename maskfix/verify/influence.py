"""Which inputs move which outputs of a decoder layer, measured black-box.

For one sequence (T decoder steps, S encoder steps, the last source steps padding), perturb the
encoder output at source position s and record how far each output step t moves: the T x S
cross influence. Perturbing the decoder input at step u gives the T x T self influence. A correct
decoder moves every step with every real source position, with no padded one, and step t with
steps <= t only; the masking bug shows as a triangle on the cross influence (step t sees source
positions <= t) and, when ``mask=`` is passed, as live padding columns.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional

import numpy as np

from maskfix.verify.layer_probes import (MODES, TOLERANCE, lengths_mask, warm_up, call_layer,
                                         construct_layer, width_from_overrides)
from maskfix.verify.results import describe_exception

# Equal lengths: a decoder-shaped cross mask still runs, so the picture shows it (S != T crashes it).
STEPS, SOURCE_STEPS, SOURCE_LENGTH = 8, 8, 6


def _moves(layer, x, e, dm, em, mode, which: str, rng) -> np.ndarray:
    base = call_layer(layer, x, e, dm, em, mode)[0]
    inputs = e if which == "cross" else x
    out = np.zeros((x.shape[1], inputs.shape[1]))
    for pos in range(inputs.shape[1]):
        changed = inputs.copy()
        changed[0, pos] += rng.normal(scale=3.0, size=inputs.shape[-1])
        args = (x, changed) if which == "cross" else (changed, e)
        out[:, pos] = np.abs(call_layer(layer, *args, dm, em, mode)[0] - base).max(axis=-1)
    return out


def influence_matrices(cls, init: Optional[Dict] = None, modes: Iterable[str] = MODES,
                       steps: int = STEPS, source_steps: int = SOURCE_STEPS,
                       source_length: int = SOURCE_LENGTH) -> dict:
    """Cross (T x S) and self (T x T) influence of the layer ``cls`` per mask-passing mode.

    Returns plain lists (JSON): ``{"width", "steps", "source_steps", "source_length",
    "tolerance", "modes": {mode: {"cross": [[...]], "self": [[...]]} or {"error": "..."}}}``.
    """
    width = width_from_overrides(cls, init)
    layer = construct_layer(cls, width, init)
    warm_up(layer, width)
    rng = np.random.default_rng(7)
    x, e = rng.normal(size=(1, steps, width)), rng.normal(size=(1, source_steps, width))
    dm, em = lengths_mask([steps], steps), lengths_mask([source_length], source_steps)
    result = {"width": width, "steps": steps, "source_steps": source_steps,
              "source_length": source_length, "tolerance": TOLERANCE, "modes": {}}
    for mode in modes:
        try:
            result["modes"][mode] = {
                which: _moves(layer, x, e, dm, em, mode, which, np.random.default_rng(8)).tolist()
                for which in ("cross", "self")
            }
        except Exception as exc:  # noqa: BLE001 - a crash is what the picture shows
            result["modes"][mode] = {"error": describe_exception(exc)}
    return result


def summarize_influence(data: dict) -> dict:
    """What the matrices of ``influence_matrices`` say, per mode, in a few counts.

    ``{mode: {"real_pairs_moving", "real_pairs", "step0_sources", "real_sources",
    "padding_max", "future_max"}}``, or ``{mode: {"error": ...}}`` for a mode that crashed.
    A cell moves when it changes by more than the tolerance. A correct decoder moves every real
    (step, source) pair, every real source position reaches step 0, padding moves nothing
    (``padding_max`` below the tolerance) and no step moves with a later one (``future_max``).
    """
    tol, real = data["tolerance"], data["source_length"]
    out = {}
    for mode, entry in data["modes"].items():
        if "error" in entry:
            out[mode] = {"error": entry["error"]}
            continue
        cross, self_ = np.asarray(entry["cross"]), np.asarray(entry["self"])
        future = self_[np.triu_indices(self_.shape[0], k=1)]
        out[mode] = {
            "real_pairs_moving": int((cross[:, :real] > tol).sum()),
            "real_pairs": int(cross[:, :real].size),
            "step0_sources": int((cross[0, :real] > tol).sum()),
            "real_sources": int(real),
            "padding_max": float(cross[:, real:].max()) if cross.shape[1] > real else 0.0,
            "future_max": float(future.max()) if future.size else 0.0,
        }
    return out
