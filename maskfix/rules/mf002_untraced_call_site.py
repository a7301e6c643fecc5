"""MF002: a fixed decoder is called where the encoder's token ids cannot be traced."""

from __future__ import annotations

from typing import Iterable

from ..rewrite import CallSitePlanner, Edits, Style
from .base import Context, Flagged, Problem, Rule


class UntracedCallSite(Rule):
    code = "MF002"
    name = "call-site-needs-encoder-padding-mask"
    summary = ("A fixed decoder layer is called where maskfix cannot trace the encoder's token input; "
               "pass encoder_padding_mask= by hand.")
    description = (
        "A fixed decoder is called somewhere maskfix cannot trace the encoder outputs back to the "
        "encoder's token ids (for example, a builder function that receives them as a parameter). "
        "Pass `encoder_padding_mask=` there by hand. Until you do, the layer falls back to the mask "
        "Keras attached to the encoder outputs.")
    fixed = "no (manual)"
    explanation = """\
After MF001's fix a decoder takes `encoder_padding_mask=`. Where the encoder outputs arrive from
somewhere maskfix cannot follow to the token ids, pass the mask by hand.

Before:

    def decode(x, encoded):
        return Decoder()(x, encoded)

After:

    def decode(x, encoded, encoder_padding_mask):
        return Decoder()(x, encoded, encoder_padding_mask=encoder_padding_mask)
"""
    requires = ("MF001",)
    INVALID = (
        """\
import tensorflow as tf
from tensorflow.keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, enc, mask=None):
        pad = tf.cast(mask[:, tf.newaxis, :], "int32")
        return self.cross_attention(query=x, value=enc, key=enc, attention_mask=pad)


def decode(x, encoded):
    return Decoder()(x, encoded)
""",
    )
    VALID = (
        # traced to the encoder's token Input: threaded by the fix
        """\
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, enc, mask=None):
        pad = tf.cast(mask[:, tf.newaxis, :], "int32")
        return self.cross_attention(query=x, value=enc, key=enc, attention_mask=pad)


src = keras.Input(shape=(None,), dtype="int64")
enc = layers.Embedding(100, 8, mask_zero=True)(src)
tgt = keras.Input(shape=(None,), dtype="int64")
x = layers.Embedding(100, 8, mask_zero=True)(tgt)
out = Decoder()(x, enc)
""",
    )

    def follow(self, ctx: Context, flagged: Flagged, edits: Edits) -> Iterable[Problem]:
        fixed = flagged.get("MF001", set())
        planner = None
        for site in ctx.sites:
            if id(site.decoder) not in fixed:
                continue
            # planned on scratch edits: MF001's own pass makes the real ones
            planner = planner or CallSitePlanner(ctx.facts, ctx.style or Style(ctx.module), Edits(), ctx.others)
            plan = planner.plan(site)
            if plan.kind == "unresolved":
                detail = plan.detail
                if plan.blocker is not None:
                    key, node = plan.blocker
                    line = ctx.where(key or ctx.key, node)[0]
                    detail += f"; {key} line {line}" if key else f"; line {line}"
                yield Problem(
                    self.code, site.call,
                    f"call of {site.decoder.name}: pass encoder_padding_mask= here by hand ({detail}); "
                    "until then the layer falls back to the mask Keras attached to the encoder outputs",
                )


RULE = UntracedCallSite()
