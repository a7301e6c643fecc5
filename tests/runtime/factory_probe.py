"""Run tutorial-style factory fixtures; print what their masks do, one JSON line per case.

usage: factory_probe.py MODULE_PATH:FACTORY...
"""
import importlib.util
import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

SRC = np.array([[4, 5, 6, 7, 0, 0, 0], [8, 9, 0, 0, 0, 0, 0]])  # S = 7
TGT = np.array([[1, 2, 3, 0, 0], [1, 2, 0, 0, 0]])  # T = 5


def probe(path, factory_name):
    spec = importlib.util.spec_from_file_location(f"factory_{abs(hash(path))}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    enc, combined, cross = (np.asarray(m) for m in getattr(mod, factory_name)(SRC, TGT))
    result = {
        "cross_shape": list(cross.shape),
        # 1 marks a blocked position in this convention
        "cross_blocks_source_padding": bool(
            (np.broadcast_to(cross, (2, 1, 1, 7))[:, 0, 0, :] == (SRC == 0)).all()
        ) if cross.shape[-1] == 7 else False,
        "combined_blocks_target_padding": bool(np.broadcast_to(combined, (2, 1, 5, 5))[:, 0, :, 3:].min() == 1),
    }
    if hasattr(mod, "train_step"):
        def step(s, t):
            return np.asarray(mod.train_step(tf.constant(s), tf.constant(t)))
        try:
            out = step(SRC, np.pad(TGT, ((0, 0), (0, 1))))
            result["unequal_lengths"] = "ran"
            longer = step(np.pad(SRC, ((0, 0), (0, 3))), np.pad(TGT, ((0, 0), (0, 1))))
            result["source_padding_invariance"] = float(np.abs(out - longer).max())
        except Exception as exc:  # the point is to record what breaks
            result["unequal_lengths"] = f"error: {type(exc).__name__}"
    return result


for case in sys.argv[1:]:
    path, name = case.rsplit(":", 1)
    print(json.dumps({"case": case, **probe(path, name)}), flush=True)
