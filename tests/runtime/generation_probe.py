"""Run a fixture's generation function on padded sources; print one JSON line per case.

usage: generation_probe.py MODULE_PATH:FUNCTION...  (the runtime comes from the environment)

The module is imported whole (it builds its models at import).  The function is called with
source ids whose last positions are padding, then again with three more pad columns: it must
run both times and generate the same tokens.
"""
import importlib.util
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

SRC = np.array([[4, 5, 6, 7, 0, 0, 0], [8, 9, 0, 0, 0, 0, 0]])


def probe(path, name):
    spec = importlib.util.spec_from_file_location(f"generation_{abs(hash(path))}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        first = np.asarray(getattr(mod, name)(SRC))
        longer = np.asarray(getattr(mod, name)(np.pad(SRC, ((0, 0), (0, 3)))))
    except Exception as exc:  # the point is to record what breaks
        return {"ran": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
    return {"ran": True, "same_tokens": bool(first.shape == longer.shape and (first == longer).all())}


for case in sys.argv[1:]:
    path, name = case.rsplit(":", 1)
    print(json.dumps({"case": case, **probe(path, name)}), flush=True)
