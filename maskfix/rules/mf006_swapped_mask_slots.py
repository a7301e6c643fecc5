"""MF006: a factory's masks are passed on in swapped slots."""

from __future__ import annotations

from typing import Iterable

from ..flow.factories import SwappedCall, find_swapped_calls
from ..rewrite import Edits, Style, swap_values
from .base import Context, Problem, Rule
from .mf004_cross_mask_from_target import CORRECT_FACTORY

_MODEL = """

class CrossAttention(tf.keras.layers.Layer):
    def call(self, q, k, v, mask):
        return q


class DecoderLayer(tf.keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.mha1 = CrossAttention()
        self.mha2 = CrossAttention()

    def call(self, x, enc_output, look_ahead_mask, padding_mask):
        x = self.mha1(x, x, x, look_ahead_mask)
        return self.mha2(x, enc_output, enc_output, padding_mask)


class Transformer(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.decoder = DecoderLayer()

    def call(self, inp, tar, enc_output):
        enc_padding_mask, combined_mask, dec_padding_mask = create_masks(inp, tar)
        return self.decoder(tar, enc_output, {first}, {second})
"""


class SwappedMaskSlots(Rule):
    code = "MF006"
    name = "masks-in-swapped-slots"
    summary = ("The masks from a mask factory are passed on in swapped slots, so the combined "
               "look-ahead mask reaches the decoder's cross-attention.")
    description = (
        "The factory's masks are passed on in swapped slots. maskfix follows each mask through the "
        "model call, the decoder and the decoder layer to the attention calls, and reports when the "
        "combined look-ahead mask reaches the cross-attention.")
    fixed = "yes: the two arguments are swapped at the call"
    explanation = """\
Followed through the model, the decoder and the decoder layer, the combined look-ahead mask must
reach the self-attention and the source padding the cross-attention.

Before:

    self.decoder(tar, enc_output, dec_padding_mask, combined_mask)

After:

    self.decoder(tar, enc_output, combined_mask, dec_padding_mask)
"""
    INVALID = (CORRECT_FACTORY + _MODEL.format(first="dec_padding_mask", second="combined_mask"),)
    VALID = (CORRECT_FACTORY + _MODEL.format(first="combined_mask", second="dec_padding_mask"),)

    def check(self, ctx: Context) -> Iterable[Problem]:
        if not ctx.visible_factories:
            return
        # a call whose masks are exchanged further down, not at the call, is MF010's
        classes = ctx.layer_classes()
        inner = {id(route.start.call) for route, hop in ctx.swapped_hops()
                 if hop is not route.hops[0]}
        for s in find_swapped_calls(ctx.module, ctx.visible_factories, classes):
            if id(s.call) not in inner:
                yield Problem(self.code, s.call, message(s), _fix(s), key=id(s.call))


def message(s: SwappedCall) -> str:
    return (f"the masks from {s.factory.name} are passed in swapped slots: its combined look-ahead "
            "mask reaches the decoder's cross-attention; swap the two arguments")


def _fix(s: SwappedCall):
    def fix(edits: Edits, style: Style) -> None:
        swap_values(edits, *s.args)
    return fix


RULE = SwappedMaskSlots()
