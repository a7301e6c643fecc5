"""Black-box probes on a Transformer decoder layer.

The layer is called with decoder states ``x`` (T steps), encoder outputs ``e`` (S steps), a decoder
padding mask and an encoder padding mask, in one of these modes:

* ``implicit``: the masks are attached to ``x`` and ``e`` the way Keras attaches them inside a
  model (the call sees them as ``mask=`` and/or through MultiHeadAttention's own mask lookup);
* ``explicit``: no attached masks; ``mask=`` is passed by keyword. Under Keras 3 this is the only
  way ``mask=`` ever reaches a two-tensor ``call``, and it is how the bug comes back there;
* ``unmasked`` (not probed by default): no attached masks and no ``mask=``, the way a model whose
  embedding creates no Keras mask calls the decoder.

In both modes ``encoder_padding_mask=`` is passed only if ``call`` has that parameter. A layer whose
``call`` takes one tensor argument gets ``[x, e]`` as one list input, and its masks as a list
(``mask=[decoder's, encoder's]``), as Keras gives them.
"""
from __future__ import annotations

import inspect
import re
from typing import Dict, Iterable, List, Optional

import numpy as np

from maskfix.verify import kerasenv
from maskfix.verify.results import ProbeResult, describe_exception

FEATURE_DIM = 16
MODES = ("implicit", "explicit")
# Differences below this are float noise; the bug produces differences of order 1e-2 and more.
TOLERANCE = 1e-4

# The last rule names the model width: the feature dimension of the probe tensors.
_RULES = [
    (re.compile(r"head"), lambda d: 2),
    (re.compile(r"drop|rate"), lambda d: 0.0),
    (re.compile(r"dense|latent|ff|feed|intermediate|inner|mlp|filter"), lambda d: 2 * d),
    (re.compile(r"vocab"), lambda d: 32),
    (re.compile(r"len|seq|position|max"), lambda d: 32),
    (re.compile(r"embed|model|hidden|units|dim|size|width|key"), lambda d: d),
]


def width_from_overrides(cls, overrides: Optional[Dict] = None, default: int = FEATURE_DIM) -> int:
    """The layer's width when a constructor argument that names it is given (``--init dim=8``).

    The probe tensors must be as wide as the layer, so an explicit width decides their feature
    dimension; several width arguments must agree.
    """
    width_rule = _RULES[-1][0]
    names = [p.name for p in list(inspect.signature(cls.__init__).parameters.values())[1:]]
    given = {}
    for name in names:
        value = (overrides or {}).get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, int):
            continue
        rule = next((pattern for pattern, _ in _RULES if pattern.search(name.lower())), None)
        if rule is width_rule and "key" not in name.lower():  # key_dim is per head, not the width
            given[name] = value
    if len(set(given.values())) > 1:
        raise ValueError(f"conflicting widths for {cls.__name__}: "
                         + ", ".join(f"{k}={v}" for k, v in given.items()))
    return next(iter(given.values()), default)


def infer_init_kwargs(cls, feature_dim: int = FEATURE_DIM, overrides: Optional[Dict] = None) -> Dict:
    """Small constructor arguments chosen from ``__init__`` parameter names.

    The embedding width must equal the feature dimension of the probe tensors; heads are kept small
    and dropout off. Parameters with defaults are only touched when a rule names them.
    """
    overrides = dict(overrides or {})
    kwargs = {}
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in overrides:
            kwargs[p.name] = overrides.pop(p.name)
            continue
        value = None
        for pattern, make in _RULES:
            if pattern.search(p.name.lower()):
                value = make(feature_dim)
                break
        if value is not None:
            kwargs[p.name] = value
        elif p.default is p.empty:
            raise ValueError(
                f"cannot infer constructor argument {p.name!r} of {cls.__name__}; "
                f"pass it explicitly (e.g. --init {p.name}=VALUE)"
            )
    kwargs.update(overrides)  # unknown names go to **kwargs
    return kwargs


def construct_layer(cls, feature_dim: int = FEATURE_DIM, overrides: Optional[Dict] = None):
    keras = kerasenv.load_keras()
    keras.utils.set_random_seed(0)
    return cls(**infer_init_kwargs(cls, feature_dim, overrides))


def _call_params(layer) -> set:
    return set(inspect.signature(layer.call).parameters)


# parameters Keras or the probes fill by name: not tensor inputs
_NAMED = {"mask", "training", "encoder_padding_mask"}


def takes_list_input(layer) -> bool:
    """Whether ``call`` takes the decoder states and the encoder outputs as one list: it has one
    positional parameter besides those filled by name."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = inspect.signature(layer.call).parameters.values()
    return len([p for p in params if p.kind in kinds and p.name not in _NAMED]) == 1


def call_layer(layer, x, e, dec_mask, enc_mask, mode: str, training: bool = False) -> np.ndarray:
    """Call the layer on numpy inputs in the given mode; return the output as numpy.

    ``training`` is passed when ``call`` takes it (False unless a probe asks for the training path).
    """
    k = kerasenv
    xt, et = k.to_tensor(x, "float32"), k.to_tensor(e, "float32")
    dm, em = k.to_tensor(dec_mask, "bool"), k.to_tensor(enc_mask, "bool")
    params = _call_params(layer)
    kwargs = {}
    if "encoder_padding_mask" in params:
        kwargs["encoder_padding_mask"] = em
    if "training" in params:
        kwargs["training"] = training
    listed = takes_list_input(layer)
    if mode == "implicit":
        k.attach_mask(xt, dm)
        k.attach_mask(et, k.to_tensor(enc_mask, "bool"))
    elif mode == "explicit":
        kwargs["mask"] = [dm, em] if listed else dm
    elif mode != "unmasked":
        raise ValueError(f"unknown mode {mode!r}")
    return k.to_numpy(layer([xt, et], **kwargs) if listed else layer(xt, et, **kwargs))


def lengths_mask(lengths, total) -> np.ndarray:
    return np.arange(total)[None, :] < np.asarray(lengths)[:, None]


def _crash(name, mode, exc) -> ProbeResult:
    return ProbeResult(name, False, f"crashed: {describe_exception(exc)}", mode)


def probe_encoder_padding_invariance(layer, mode, dim=FEATURE_DIM) -> ProbeResult:
    """Changing e at padded source positions must change no output at real decoder steps."""
    name = "encoder_padding_invariance"
    rng = np.random.default_rng(1)
    T = S = 6  # equal lengths, so a decoder-shaped cross mask still runs and is judged on values
    enc_len, dec_len = [3, 5], [6, 4]
    x, e = rng.normal(size=(2, T, dim)), rng.normal(size=(2, S, dim))
    dm, em = lengths_mask(dec_len, T), lengths_mask(enc_len, S)
    e2 = np.where(em[..., None], e, rng.normal(scale=5.0, size=e.shape))
    try:
        a = call_layer(layer, x, e, dm, em, mode)
        b = call_layer(layer, x, e2, dm, em, mode)
    except Exception as exc:  # noqa: BLE001 - a crash is a verdict
        return _crash(name, mode, exc)
    diff = np.abs(a - b).max(axis=-1) * dm  # per (row, real step)
    worst = float(diff.max())
    if worst <= TOLERANCE:
        return ProbeResult(name, True, f"outputs unchanged (max diff {worst:.1e})", mode)
    row, step = np.unravel_index(int(diff.argmax()), diff.shape)
    return ProbeResult(
        name, False,
        f"changing padded encoder positions changed decoder step {step} of row {row} "
        f"(source length {enc_len[row]}/{S}) by {worst:.3g}: padding is attended to",
        mode,
    )


def probe_full_source_visibility(layer, mode, dim=FEATURE_DIM) -> ProbeResult:
    """Decoder step 0 must depend on the last real source position."""
    name = "full_source_visibility"
    rng = np.random.default_rng(2)
    T = S = 6
    enc_len, dec_len = [3, 5], [6, 6]
    x, e = rng.normal(size=(2, T, dim)), rng.normal(size=(2, S, dim))
    dm, em = lengths_mask(dec_len, T), lengths_mask(enc_len, S)
    e2 = e.copy()
    for row, n in enumerate(enc_len):
        e2[row, n - 1] += rng.normal(scale=3.0, size=dim)
    try:
        a = call_layer(layer, x, e, dm, em, mode)
        b = call_layer(layer, x, e2, dm, em, mode)
    except Exception as exc:  # noqa: BLE001
        return _crash(name, mode, exc)
    change = np.abs(a[:, 0] - b[:, 0]).max(axis=-1)
    blind = [row for row in range(2) if change[row] <= TOLERANCE]
    if not blind:
        return ProbeResult(name, True, f"step 0 sees the last source position (min change {change.min():.3g})", mode)
    row = blind[0]
    return ProbeResult(
        name, False,
        f"decoder step 0 of row {row} ignores source position {enc_len[row] - 1} (its last real one): "
        "the cross-attention is masked causally/by decoder padding",
        mode,
    )


def probe_decoder_causality(layer, mode, dim=FEATURE_DIM, k=3) -> ProbeResult:
    """Outputs before step k must not depend on decoder inputs at steps >= k."""
    name = "decoder_causality"
    rng = np.random.default_rng(3)
    T = S = 6
    x, e = rng.normal(size=(2, T, dim)), rng.normal(size=(2, S, dim))
    dm, em = lengths_mask([6, 6], T), lengths_mask([4, 6], S)
    x2 = x.copy()
    x2[:, k:] = rng.normal(scale=3.0, size=x2[:, k:].shape)
    try:
        a = call_layer(layer, x, e, dm, em, mode)
        b = call_layer(layer, x2, e, dm, em, mode)
    except Exception as exc:  # noqa: BLE001
        return _crash(name, mode, exc)
    leak = np.abs(a[:, :k] - b[:, :k]).max(axis=(0, 2))
    if leak.max() <= TOLERANCE:
        return ProbeResult(name, True, f"steps < {k} unchanged when steps >= {k} change", mode)
    return ProbeResult(
        name, False,
        f"step {int(leak.argmax())} changed by {leak.max():.3g} when only steps >= {k} changed: "
        "the decoder sees the future",
        mode,
    )


def probe_decoder_causality_in_training(layer, mode, dim=FEATURE_DIM, k=3) -> Optional[ProbeResult]:
    """Under ``training=True`` too, outputs before step k must not depend on steps >= k.

    A causal flag that is off during training (``use_causal_mask=not training``) passes the
    inference-time probe and leaks the future exactly while the model learns.  Omitted (None)
    when ``call`` takes no ``training`` or the training path is random (dropout the probes cannot
    switch off), since two calls could then not be compared.
    """
    name = "decoder_causality_in_training"
    if "training" not in _call_params(layer):
        return None
    rng = np.random.default_rng(5)
    T = S = 6
    x, e = rng.normal(size=(2, T, dim)), rng.normal(size=(2, S, dim))
    dm, em = lengths_mask([6, 6], T), lengths_mask([4, 6], S)
    x2 = x.copy()
    x2[:, k:] = rng.normal(scale=3.0, size=x2[:, k:].shape)
    try:
        a = call_layer(layer, x, e, dm, em, mode, training=True)
        again = call_layer(layer, x, e, dm, em, mode, training=True)
        if np.abs(a - again).max() > TOLERANCE:
            return None
        b = call_layer(layer, x2, e, dm, em, mode, training=True)
    except Exception as exc:  # noqa: BLE001
        return _crash(name, mode, exc)
    leak = np.abs(a[:, :k] - b[:, :k]).max(axis=(0, 2))
    if leak.max() <= TOLERANCE:
        return ProbeResult(name, True, f"with training=True, steps < {k} unchanged when steps >= {k} change", mode)
    return ProbeResult(
        name, False,
        f"with training=True, step {int(leak.argmax())} changed by {leak.max():.3g} when only steps >= {k} "
        "changed: the decoder sees the future while it learns",
        mode,
    )


def probe_unequal_lengths(layer, mode, dim=FEATURE_DIM) -> ProbeResult:
    """Source shorter and longer than the target must both run."""
    name = "unequal_lengths"
    rng = np.random.default_rng(4)
    T = 6
    for S in (T - 2, T + 3):
        x, e = rng.normal(size=(2, T, dim)), rng.normal(size=(2, S, dim))
        dm, em = lengths_mask([T, T - 1], T), lengths_mask([S - 1, 2], S)
        try:
            out = call_layer(layer, x, e, dm, em, mode)
        except Exception as exc:  # noqa: BLE001
            res = _crash(name, mode, exc)
            res.reason = f"source length {S}, target length {T}: {res.reason}"
            return res
        if out.shape[:2] != (2, T) or not np.all(np.isfinite(out)):
            return ProbeResult(name, False, f"source length {S}: bad output shape {out.shape} or non-finite values", mode)
    return ProbeResult(name, True, f"ran with source lengths {T - 2} and {T + 3} for target length {T}", mode)


def warm_up(layer, dim) -> None:
    """Build the layer on throwaway tensors before probing; raise ValueError if it cannot run.

    Keras 3 MultiHeadAttention clears the attached masks of its inputs; on the TensorFlow and
    PyTorch backends the build pass of a layer's first call does that to the caller's own tensors,
    so the real first call would see no encoder mask. Probes must not depend on call order.
    A layer that runs in neither mode on equal lengths and no padding cannot be judged at all
    (most often its width is not ``dim``): that is not a mask verdict.
    """
    rng = np.random.default_rng(0)
    mask = np.ones((1, 4), dtype=bool)
    errors = []
    for mode in MODES:
        try:
            call_layer(layer, rng.normal(size=(1, 4, dim)), rng.normal(size=(1, 4, dim)), mask, mask, mode)
            return
        except Exception as exc:  # noqa: BLE001 - reported below if no mode runs
            errors.append(describe_exception(exc))
    raise ValueError(
        f"{type(layer).__name__} does not run on inputs of width {dim} even without padding "
        f"({errors[0]}); if its width is another constructor argument, pass it with --init NAME=VALUE"
    )


LAYER_PROBES = (
    probe_encoder_padding_invariance,
    probe_full_source_visibility,
    probe_decoder_causality,
    probe_unequal_lengths,
    probe_decoder_causality_in_training,  # omitted for layers without a deterministic training path
)


def run_layer_probes(cls, overrides: Optional[Dict] = None, modes: Iterable[str] = MODES,
                     feature_dim: Optional[int] = None) -> List[ProbeResult]:
    """Construct ``cls`` with small arguments and run every probe in every mode.

    The probe width is ``feature_dim``, else the width given in ``overrides``, else 16.
    """
    feature_dim = feature_dim or width_from_overrides(cls, overrides)
    layer = construct_layer(cls, feature_dim, overrides)
    warm_up(layer, feature_dim)
    results = (probe(layer, mode, feature_dim) for mode in modes for probe in LAYER_PROBES)
    return [r for r in results if r is not None]
