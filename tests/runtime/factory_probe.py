"""Run a tutorial-style factory fixture and print what its masks do (one JSON line)."""
import importlib.util
import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

spec = importlib.util.spec_from_file_location("factory_fixture", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
factory = getattr(mod, sys.argv[2])

src = np.array([[4, 5, 6, 7, 0, 0, 0], [8, 9, 0, 0, 0, 0, 0]])  # S = 7
tgt = np.array([[1, 2, 3, 0, 0], [1, 2, 0, 0, 0]])  # T = 5
enc, combined, cross = (np.asarray(m) for m in factory(src, tgt))
result = {
    "cross_shape": list(cross.shape),
    # 1 marks a blocked position in this convention
    "cross_blocks_source_padding": bool((np.broadcast_to(cross, (2, 1, 1, 7))[:, 0, 0, :] == (src == 0)).all())
    if cross.shape[-1] == 7 else False,
    "combined_blocks_target_padding": bool(np.broadcast_to(combined, (2, 1, 5, 5))[:, 0, :, 3:].min() == 1),
}
if hasattr(mod, "train_step"):
    def step(s, t):
        return np.asarray(mod.train_step(tf.constant(s), tf.constant(t)))
    try:
        out = step(src, np.pad(tgt, ((0, 0), (0, 1))))
        result["unequal_lengths"] = "ran"
        longer = step(np.pad(src, ((0, 0), (0, 3))), np.pad(tgt, ((0, 0), (0, 1))))
        result["source_padding_invariance"] = float(np.abs(out - longer).max())
    except Exception as exc:  # the point is to record what breaks
        result["unequal_lengths"] = f"error: {type(exc).__name__}"
print(json.dumps(result))
