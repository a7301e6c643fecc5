"""Build a fixture's model and probe it; prints one JSON line.  Run in a fresh process.

usage: smoke.py MODULE_PATH RUNTIME   (RUNTIME: tf_keras | tensorflow | jax | torch)
"""
import importlib.util
import json
import os
import sys

path, runtime = sys.argv[1], sys.argv[2]
if runtime == "tf_keras":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
else:
    os.environ["KERAS_BACKEND"] = runtime
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

spec = importlib.util.spec_from_file_location("fixture_under_test", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)

result = {}


def attempt(name, fn):
    try:
        result[name] = fn()
    except Exception as exc:  # the point is to record what breaks
        result[name] = f"error: {type(exc).__name__}: {str(exc)[:300]}"


model = mod.build()
rng = np.random.default_rng(0)
src = np.array([[5, 6, 7, 8, 0, 0, 0], [9, 3, 4, 0, 0, 0, 0]], dtype="int64")
tgt = np.array([[1, 2, 3, 0, 0], [1, 4, 0, 0, 0]], dtype="int64")


def out(s, t):
    return np.asarray(model([s, t]))


def longer_source():
    return list(out(src, tgt).shape)


def shorter_source():
    return list(out(src[:, :4], np.pad(tgt, ((0, 0), (0, 4)))).shape)


def pad_invariance():
    return float(np.abs(out(src, tgt) - out(np.pad(src, ((0, 0), (0, 3))), tgt)).max())


def step0_sees_last_source_token():
    changed = src.copy()
    changed[0, 3] = 11
    return float(np.abs(out(changed, tgt) - out(src, tgt))[0, 0].max())


attempt("longer_source", longer_source)
attempt("shorter_source", shorter_source)
attempt("pad_invariance", pad_invariance)
attempt("step0_sees_last_source_token", step0_sees_last_source_token)


def explicit_mask_layer():
    """The decoder layer alone, with mask= passed explicitly and S != T."""
    cls = getattr(mod, sys.argv[3])
    layer = cls(16, 32, 2)
    x = rng.normal(size=(2, 5, 16)).astype("float32")
    e = rng.normal(size=(2, 7, 16)).astype("float32")
    dec_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=bool)
    enc_mask = src != 0
    kwargs = {"mask": dec_mask}
    if "encoder_padding_mask" in cls.call.__code__.co_varnames:
        kwargs["encoder_padding_mask"] = enc_mask
    y = np.asarray(layer(x, e, **kwargs))
    e2 = e.copy()
    e2[~enc_mask] = 100.0  # only padded source positions change
    y2 = np.asarray(layer(x, e2, **kwargs))
    return float(np.abs(y - y2)[dec_mask].max())




def serialization_round_trip():
    """Save the whole model, load it back, and compare outputs."""
    import tempfile

    if runtime == "tf_keras":
        import tf_keras as keras_mod
    else:
        import keras as keras_mod
    custom = {n: getattr(mod, n) for n in dir(mod) if isinstance(getattr(mod, n), type)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras_mod.models.load_model(path, custom_objects=custom, compile=False)
    return float(np.abs(np.asarray(loaded([src, tgt])) - out(src, tgt)).max())


if len(sys.argv) > 3:
    attempt("explicit_mask_pad_invariance", explicit_mask_layer)
attempt("serialization_round_trip", serialization_round_trip)
print(json.dumps(result))
