"""MF012: a cross-attention that relies on implicit masks, inside a decoder sub-model that has none."""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Set, Tuple

import libcst as cst

from ..flow.decoders import DecoderClass, find_call_sites
from ..flow.implicit import implicit_decoders, padded_ids
from ..rewrite import CallSitePlanner, Edits, Style, plan_implicit_layer
from .base import Context, Flagged, Problem, Rule

# Model methods that run on arrays: what they are given carries no Keras mask.
ARRAY_METHODS = {"predict", "predict_on_batch"}

_EXAMPLE = """\
import keras
from keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.self_attention = layers.MultiHeadAttention(2, 8)
        self.cross_attention = layers.MultiHeadAttention(2, 8)
        self.supports_masking = True

    def call(self, x, memory):
        x = x + self.self_attention(query=x, value=x, key=x, use_causal_mask=True)
        return x + self.cross_attention(query=x, value=memory, key=memory)


source = keras.Input(shape=(None,), dtype="int32")
memory = layers.Embedding(100, 8, mask_zero={padded})(source)
target = keras.Input(shape=(None,), dtype="int32")
memory_in = keras.Input(shape=(None, 8))
y = Decoder()(layers.Embedding(100, 8, mask_zero=True)(target), memory_in)
decoder = keras.Model([target, memory_in], y)
model = keras.Model([source, target], decoder([target, memory]))
encoder = keras.Model(source, memory)


def next_token(source_ids, target_ids):
    return decoder.predict([target_ids, encoder.predict(source_ids)])[:, -1].argmax(-1)
"""


class MaskCannotArrive(Rule):
    code = "MF012"
    name = "implicit-mask-cannot-arrive"
    summary = ("A cross-attention relies on the mask Keras attaches to the encoder outputs, but its "
               "decoder sub-model is also run with predict on arrays, which carry no mask, so there "
               "source padding is attended to.")
    description = (
        "A decoder's cross-attention passes no mask and relies on the one Keras attaches to the "
        "encoder outputs. Inside the end-to-end model that mask reaches the decoder sub-model, but "
        "an inference loop that runs the sub-model with `predict` on the encoder's arrays gives it "
        "none, so generation attends to the source padding. Reported only where the source is "
        "padded (an embedding with `mask_zero=True` or a `compute_mask`).")
    fixed = ("yes: the layer takes `encoder_padding_mask` and threads it as for MF001; not when the "
             "cross-attention is the project's own layer")
    explanation = """\
`decoder.predict([target, encoder.predict(source)])` hands the decoder sub-model arrays: no
mask is attached to them, so an attention that counts on the attached mask sees every source
position while generating.

Before:

    def call(self, x, memory):
        return self.cross_attention(query=x, value=memory, key=memory)

After:

    def call(self, x, memory, encoder_padding_mask=None):
        ...
        return self.cross_attention(query=x, value=memory, key=memory,
                                    attention_mask=cross_attention_mask)

and the sub-model gains an `encoder_padding_mask` Input, passed at every call.
"""
    INVALID = (_EXAMPLE.format(padded="True"),)
    VALID = (
        _EXAMPLE.format(padded="False"),  # nothing to mask: the source has no padding mask
        # one functional model: the attached mask reaches the cross-attention
        _EXAMPLE.format(padded="True").replace(
            "y = Decoder()(layers.Embedding(100, 8, mask_zero=True)(target), memory_in)\n"
            "decoder = keras.Model([target, memory_in], y)\n"
            "model = keras.Model([source, target], decoder([target, memory]))",
            "y = Decoder()(layers.Embedding(100, 8, mask_zero=True)(target), memory)\n"
            "model = keras.Model([source, target], y)"),
    )

    def check(self, ctx: Context) -> Iterable[Problem]:
        for dec, keyword in implicit_decoders(ctx.module, ctx.facts):
            use = _unreachable(dec, ctx)
            if use is None:
                continue
            note = "" if keyword else (" (not rewritten: the cross-attention is the project's own layer and "
                                       "takes no mask; give it the encoder padding mask)")
            yield Problem(self.code, dec.cross_attention.call, message(dec, use, ctx) + note,
                          _fix(dec, keyword, ctx) if keyword else None, key=id(dec.node), anchors=(dec.node,))

    def follow(self, ctx: Context, flagged: Flagged, edits: Edits) -> Iterable[Problem]:
        """Thread ``encoder_padding_mask`` to the sub-models of the layers this run fixes, here
        and where they are imported."""
        fixed = flagged.get(self.code, set())
        for dec in _usable(ctx):
            if id(dec.node) not in fixed:
                continue
            planner = CallSitePlanner(ctx.facts, Style(ctx.module), edits, ctx.others)
            for site in find_call_sites(ctx.module, [dec]):
                plan = planner.plan(site)
                if plan.kind == "submodel":
                    ctx.notes.append(plan.detail)
        return ()


def _usable(ctx: Context) -> List[DecoderClass]:
    """The implicit decoders of this source and those it imports from the run's others."""
    out = [dec for dec, _ in implicit_decoders(ctx.module, ctx.facts)]
    if ctx.symbols is None:
        return out
    homes: Dict[str, Set[int]] = {}
    for _, d in ctx.symbols.imported_classes(ctx.key):
        homes.setdefault(d.key, set()).add(id(d.node))
    for key, nodes in homes.items():
        peer = ctx.peers.get(key)
        if peer is not None:
            out += [dec for dec, _ in implicit_decoders(peer.module, peer.facts) if id(dec.node) in nodes]
    return out


def _callers(dec: DecoderClass, ctx: Context) -> List[Context]:
    """This source and the sources of the run that import ``dec``."""
    out = [ctx]
    d = ctx.symbols.classes(ctx.key).get(dec.name) if ctx.symbols is not None else None
    if d is not None and d.node is dec.node:
        out += [ctx.peers[key] for key, _ in ctx.symbols.users(d) if key in ctx.peers]
    return out


def _unreachable(dec: DecoderClass, ctx: Context) -> Optional[Tuple[str, cst.Call]]:
    """``(source, call)``: a call that gives the layer's sub-model encoder outputs without a mask
    (``predict``, which works on arrays), where the encoder's ids are padded; None when there is none."""
    for caller in _callers(dec, ctx):
        planner = CallSitePlanner(caller.facts, Style(caller.module), Edits(), caller.others)
        for site in find_call_sites(caller.module, [dec]):
            plan = planner.plan(site)
            if plan.kind != "submodel" or not padded_ids(caller.module, caller.facts, set(plan.sources)):
                continue
            for use in plan.uses:
                if use.method in ARRAY_METHODS:
                    return caller.key, use.call
    return None


def message(dec: DecoderClass, use: Tuple[str, cst.Call], ctx: Context) -> str:
    key, call = use
    line = ctx.where(key, call)[0]
    where = f"line {line}" if key == ctx.key else f"{key}:{line}"
    return (f"cross-attention over `{dec.enc_param}` in {dec.name}.call relies on the mask Keras attaches "
            f"to `{dec.enc_param}`, but the decoder sub-model is also run with `predict` ({where}), "
            "whose arrays carry no mask, so there the source padding is attended to")


def _fix(dec: DecoderClass, keyword: str, ctx: Context):
    def fix(edits: Edits, style: Style) -> None:
        plan_implicit_layer(dec, keyword, ctx.facts, style, edits)
    return fix


RULE = MaskCannotArrive()
