"""Build fixture models and probe them; prints one JSON line per case.  Run in a fresh process.

usage: smoke.py RUNTIME MODULE_PATH:DECODER_CLASS...   (RUNTIME: tf_keras | tensorflow | jax | torch)
"""
import importlib.util
import json
import os
import sys
import tempfile

runtime = sys.argv[1]
if runtime == "tf_keras":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
else:
    os.environ["KERAS_BACKEND"] = runtime
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SRC = np.array([[5, 6, 7, 8, 0, 0, 0], [9, 3, 4, 0, 0, 0, 0]], dtype="int64")
TGT = np.array([[1, 2, 3, 0, 0], [1, 4, 0, 0, 0]], dtype="int64")


def probe(path, decoder_class):
    spec = importlib.util.spec_from_file_location(f"fixture_{abs(hash(path))}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build()
    rng = np.random.default_rng(0)
    result = {}

    def attempt(name, fn):
        try:
            result[name] = fn()
        except Exception as exc:  # the point is to record what breaks
            result[name] = f"error: {type(exc).__name__}: {str(exc)[:300]}"

    def out(s, t):
        return np.asarray(model([s, t]))

    def step0_sees_last_source_token():
        changed = SRC.copy()
        changed[0, 3] = 11
        return float(np.abs(out(changed, TGT) - out(SRC, TGT))[0, 0].max())

    def explicit_mask_layer():
        """The decoder layer alone, with mask= passed explicitly and S != T."""
        cls = getattr(mod, decoder_class)
        layer = cls(16, 32, 2)
        x = rng.normal(size=(2, 5, 16)).astype("float32")
        e = rng.normal(size=(2, 7, 16)).astype("float32")
        dec_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=bool)
        enc_mask = SRC != 0
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
        if runtime == "tf_keras":
            import tf_keras as keras_mod
        else:
            import keras as keras_mod
        custom = {n: getattr(mod, n) for n in dir(mod) if isinstance(getattr(mod, n), type)}
        with tempfile.TemporaryDirectory() as tmp:
            saved = os.path.join(tmp, "model.keras")
            model.save(saved)
            loaded = keras_mod.models.load_model(saved, custom_objects=custom, compile=False)
        return float(np.abs(np.asarray(loaded([SRC, TGT])) - out(SRC, TGT)).max())

    attempt("longer_source", lambda: list(out(SRC, TGT).shape))
    attempt("shorter_source", lambda: list(out(SRC[:, :4], np.pad(TGT, ((0, 0), (0, 4)))).shape))
    attempt("pad_invariance",
            lambda: float(np.abs(out(SRC, TGT) - out(np.pad(SRC, ((0, 0), (0, 3))), TGT)).max()))
    attempt("step0_sees_last_source_token", step0_sees_last_source_token)
    attempt("explicit_mask_pad_invariance", explicit_mask_layer)
    attempt("serialization_round_trip", serialization_round_trip)
    return result


for case in sys.argv[2:]:
    path, cls = case.rsplit(":", 1)
    print(json.dumps({"case": case, **probe(path, cls)}), flush=True)
