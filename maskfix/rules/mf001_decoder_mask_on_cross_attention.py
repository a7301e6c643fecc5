"""MF001: a decoder's cross-attention is masked from the decoder side."""

from __future__ import annotations

from typing import Iterable, Optional

from ..flow.decoders import CAUSAL, DEC_MASK, DecoderClass, HubDecoderCall, decoder_side, hub_decoder_calls
from ..flow.values import SOURCE, depends_on
from ..rewrite import CallSitePlanner, Edits, Style, plan_layer, swap_values
from .base import Context, Flagged, Problem, Rule


def where_in(dec: DecoderClass) -> str:
    """``Class.method``, or one name when the decoder is a function."""
    method = dec.call.name.value
    return dec.name if dec.name == method else f"{dec.name}.{method}"


def blocker(dec: DecoderClass, ctx: Context) -> Optional[str]:
    """Why a decoder's findings are not fixed ("" when they are); None when none is reported.

    A class only ever called with one tensor twice is a text generator's decoder-only block,
    where the causal mask on the second attention is what keeps the future out.
    """
    sites = ctx.sites_of(dec)
    only = [(key, s) for key, s in sites if s.decoder_only]
    if sites and len(only) == len(sites):
        return None
    if dec.functional:
        return (" (not rewritten: the decoder is built as a functional model; give it an encoder "
                "padding mask Input and build the cross-attention mask from that)")
    if only:
        key, site = only[0]
        return (f" (not rewritten: {dec.name} is also called with one tensor twice, "
                f"decoder-only, in {key} at line {ctx.where(key, site.call)[0]})")
    return ""


def message(dec: DecoderClass) -> str:
    parts = []
    if DEC_MASK in dec.labels:
        parts.append("the decoder's padding mask")
    if CAUSAL in dec.labels:
        parts.append("a causal mask")
    return (f"cross-attention over `{dec.enc_param}` in {where_in(dec)} "
            f"is masked with {' and '.join(parts)}; it needs the encoder's padding mask")


class DecoderMaskOnCrossAttention(Rule):
    code = "MF001"
    name = "decoder-mask-on-cross-attention"
    summary = ("A decoder's cross-attention is masked from the decoder side (its padding mask over "
               "the encoder's keys, or a causal mask); it must use the encoder's padding mask.")
    description = (
        "A decoder's cross-attention (keys = encoder outputs) is masked from the decoder side: the "
        "decoder's padding mask spread over the keys, a causal mask, or both. It must use the "
        "encoder's padding mask. keras_hub's `TransformerDecoder` given such a mask as "
        "`encoder_padding_mask=` or `encoder_attention_mask=` is the same mistake.")
    fixed = (
        "yes, unless the same class is also called decoder-only (`layer(x, x)`), where the causal "
        "mask is required, or the decoder is built inline as a functional model from its own "
        "`keras.Input`s (reported with what to change); for keras_hub's decoder, when the two "
        "padding masks are passed in each other's keyword (exchanged), else reported only")
    explanation = """\
The cross-attention's keys are the encoder outputs, so its mask must hide the encoder's padding.
A mask built from the decoder's own padding (or a causal mask over decoder steps) hides the wrong
positions, and crashes once source and target lengths differ.

Before:

    def call(self, x, enc, mask=None):
        pad = tf.cast(mask[:, tf.newaxis, :], "int32")
        return self.cross(query=x, value=enc, key=enc, attention_mask=pad)

After:

    def call(self, x, enc, mask=None, encoder_padding_mask=None):
        ...
        return self.cross(query=x, value=enc, key=enc, attention_mask=cross_attention_mask)
"""
    INVALID = (
        """\
import tensorflow as tf
from tensorflow.keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.self_attention = layers.MultiHeadAttention(2, 8)
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, enc, mask=None):
        pad = tf.cast(mask[:, tf.newaxis, :], "int32")
        h = self.self_attention(query=x, value=x, key=x)
        return self.cross_attention(query=h, value=enc, key=enc, attention_mask=pad)
""",
        """\
import keras
from keras import layers, ops


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.attn1 = layers.MultiHeadAttention(2, 8)
        self.attn2 = layers.MultiHeadAttention(2, 8)

    def causal(self, x):
        n = ops.shape(x)[1]
        i = ops.arange(n)[:, None]
        j = ops.arange(n)
        return ops.cast(i >= j, "int32")[None]

    def call(self, x, enc):
        causal = self.causal(x)
        h = self.attn1(x, x, attention_mask=causal)
        return self.attn2(h, enc, attention_mask=causal)
""",
    )
    INVALID += (
        # keras_hub's decoder handed each padding mask in the other's keyword
        """\
import keras
import keras_hub


def build():
    src = keras.Input(shape=(None,), dtype="int32")
    tgt = keras.Input(shape=(None,), dtype="int32")
    memory = keras.layers.Embedding(40, 8)(src)
    y = keras.layers.Embedding(40, 8)(tgt)
    block = keras_hub.layers.TransformerDecoder(16, 2)
    y = block(y, memory, decoder_padding_mask=keras.ops.not_equal(src, 0),
              encoder_padding_mask=keras.ops.not_equal(tgt, 0))
    return keras.Model([src, tgt], y)
""",
    )
    VALID = (
        # the encoder's own padding mask, passed in
        """\
import tensorflow as tf
from tensorflow.keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, enc, enc_mask=None):
        pad = tf.cast(enc_mask[:, tf.newaxis, :], "int32")
        return self.cross_attention(query=x, value=enc, key=enc, attention_mask=pad)
""",
        # a query-side mask ([B, T, 1]) hides decoder padding rows, which is right
        """\
import tensorflow as tf
from tensorflow.keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, enc, mask=None):
        rows = tf.cast(mask[:, :, tf.newaxis], "int32")
        return self.cross_attention(query=x, value=enc, key=enc, attention_mask=rows)
""",
    )

    def check(self, ctx: Context) -> Iterable[Problem]:
        for dec in ctx.facts.decoders:
            if not dec.mask_bug:
                continue
            blocked = blocker(dec, ctx)
            if blocked is None:
                continue
            ac = dec.cross_attention
            fix = None if blocked else _fix_layer(dec, ctx)
            yield Problem(self.code, ac.mask_arg, message(dec) + blocked, fix, key=id(dec),
                          anchors=(ac.call, dec.node))

        yield from self._hub_decoders(ctx)

    def _hub_decoders(self, ctx: Context) -> Iterable[Problem]:
        """keras_hub's ``TransformerDecoder`` given decoder-side masks for its cross-attention."""
        for hc in hub_decoder_calls(ctx.module):
            masks = hc.masks(ctx.values())
            for slot in ("encoder_padding_mask", "encoder_attention_mask"):
                side = decoder_side(masks[slot]) if slot in masks else set()
                if not side:
                    continue
                arg = hc.args[slot]
                other = hc.args.get("decoder_padding_mask")
                swapped = (slot == "encoder_padding_mask" and other is not None
                           and depends_on(masks["decoder_padding_mask"], SOURCE)
                           and not decoder_side(masks["decoder_padding_mask"]))
                yield Problem(self.code, arg.value, hub_message(ctx, hc, slot, side, swapped),
                              _swap(arg, other) if swapped else None, key=id(arg), anchors=(hc.call,))

    def follow(self, ctx: Context, flagged: Flagged, edits: Edits) -> Iterable[Problem]:
        """Thread ``encoder_padding_mask`` to the call sites of the decoders this run fixes."""
        fixed = flagged.get(self.code, set())
        planner = None
        for site in ctx.sites:
            if id(site.decoder) not in fixed or ctx.suppressed("MF002", site.call):
                continue
            planner = planner or CallSitePlanner(ctx.facts, ctx.style or Style(ctx.module), edits, ctx.others)
            plan = planner.plan(site)
            if plan.kind in ("direct", "submodel"):
                ctx.notes.append(plan.detail)
        return ()


def hub_message(ctx: Context, hc: HubDecoderCall, slot: str, side: set, swapped: bool) -> str:
    what = " and ".join(w for k, w in ((DEC_MASK, "the decoder's padding mask"), (CAUSAL, "a causal mask"))
                        if k in side)
    code = ctx.module.code_for_node(hc.args[slot].value)
    tail = ("; it is passed as `decoder_padding_mask`, which gets the encoder's: exchange them" if swapped
            else "; it needs the encoder's padding mask")
    return f"`{code}` passed as `{slot}` of keras_hub's TransformerDecoder is {what}{tail}"


def _swap(a, b):
    def fix(edits: Edits, style: Style) -> None:
        swap_values(edits, a, b)
    return fix


def _fix_layer(dec: DecoderClass, ctx: Context):
    def fix(edits: Edits, style: Style) -> None:
        plan_layer(dec, ctx.facts, style, edits, called=bool(ctx.sites_of(dec)))
    return fix


RULE = DecoderMaskOnCrossAttention()
