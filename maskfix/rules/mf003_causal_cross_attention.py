"""MF003: ``use_causal_mask`` switched on for a cross-attention."""

from __future__ import annotations

from typing import Iterable

from ..flow.decoders import DecoderClass
from ..rewrite import Edits, Style
from .base import Context, Problem, Rule
from .mf001_decoder_mask_on_cross_attention import blocker, where_in


def message(dec: DecoderClass) -> str:
    return (f"cross-attention over `{dec.enc_param}` in {where_in(dec)} is causal (use_causal_mask): "
            "it hides later encoder positions; only self-attention is causal")


class CausalCrossAttention(Rule):
    code = "MF003"
    name = "causal-cross-attention"
    summary = ("use_causal_mask is switched on for a cross-attention (at the call, through a default "
               "argument, or by one flag shared with self-attention); only self-attention is causal.")
    description = (
        "A cross-attention is causal through `use_causal_mask`: written at the call, set by a wrapper "
        "layer's default argument (`def call(self, x, context, use_causal_mask=True)`), or driven by "
        "one flag shared with self-attention. Causal masking over encoder positions hides later "
        "source tokens.")
    fixed = ("yes: `use_causal_mask` is removed from the cross-attention call, and self-attention "
             "stays causal")
    explanation = """\
`use_causal_mask=True` builds a lower-triangular mask over query x key of the same call; on a
cross-attention it hides later source positions from early decoder steps.

Before:

    x = self.cross(query=x, value=enc, key=enc, use_causal_mask=True)

After:

    x = self.cross(query=x, value=enc, key=enc)
"""
    INVALID = (
        """\
from keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.self_attention = layers.MultiHeadAttention(2, 8)
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, context):
        x = self.self_attention(query=x, value=x, use_causal_mask=True)
        return self.cross_attention(query=x, value=context, use_causal_mask=True)
""",
    )
    VALID = (
        """\
from keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.self_attention = layers.MultiHeadAttention(2, 8)
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, context):
        x = self.self_attention(query=x, value=x, use_causal_mask=True)
        return self.cross_attention(query=x, value=context)
""",
    )

    def check(self, ctx: Context) -> Iterable[Problem]:
        for dec in ctx.facts.decoders:
            if not dec.causal_flag:
                continue
            blocked = blocker(dec, ctx)
            if blocked is None:
                continue
            ac = dec.cross_attention
            fix = None if blocked else _drop_flag(ac.causal_flag)
            yield Problem(self.code, ac.causal_flag, message(dec) + blocked, fix, key=id(dec),
                          anchors=(ac.call, dec.node))


def _drop_flag(arg):
    def fix(edits: Edits, style: Style) -> None:
        edits.remove_args.add(id(arg))
    return fix


RULE = CausalCrossAttention()
