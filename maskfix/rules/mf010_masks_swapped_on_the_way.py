"""MF010: a factory's masks arrive in the right slots but are exchanged further down."""

from __future__ import annotations

from typing import Iterable, Set

from ..flow.hops import Hop, Route
from ..rewrite import Edits, Style, swap_values
from .base import Context, Problem, Rule
from .mf004_cross_mask_from_target import CORRECT_FACTORY

_MODEL = """

class Attention(tf.keras.layers.Layer):
    def call(self, v, k, q, mask):
        return q


class DecoderLayer(tf.keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.mha1 = Attention()
        self.mha2 = Attention()

    def call(self, x, enc_output, look_ahead_mask, padding_mask):
        x = self.mha1(x, x, x, {self_mask})
        return self.mha2(enc_output, enc_output, x, {cross_mask})


class Transformer(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.decoder = DecoderLayer()

    def call(self, inp, tar, enc_output):
        enc_padding_mask, combined_mask, dec_padding_mask = create_masks(inp, tar)
        return self.decoder(tar, enc_output, combined_mask, dec_padding_mask)
"""


class MasksSwappedOnTheWay(Rule):
    code = "MF010"
    name = "masks-swapped-on-the-way"
    summary = ("The masks from a mask factory are passed on in the right slots, but a decoder or "
               "decoder layer further down exchanges them, so the combined look-ahead mask reaches "
               "the cross-attention.")
    description = (
        "The factory's masks reach the model in the right slots, but one hop further down (the "
        "decoder passing them to its layers, or the layer handing them to its two attentions) "
        "exchanges them: the combined look-ahead mask reaches the cross-attention and the source "
        "padding the self-attention. maskfix follows both masks hop by hop and reports the hop "
        "that exchanges them.")
    fixed = "yes: the two masks are swapped at that hop"
    explanation = """\
Followed from the factory down to the attention calls, the combined look-ahead mask must reach
the self-attention and the source padding the cross-attention. Here the layer receives them in
the right parameters and hands them to the wrong attentions.

Before:

    def call(self, x, enc_output, look_ahead_mask, padding_mask):
        x = self.mha1(x, x, x, padding_mask)
        return self.mha2(enc_output, enc_output, x, look_ahead_mask)

After:

    def call(self, x, enc_output, look_ahead_mask, padding_mask):
        x = self.mha1(x, x, x, look_ahead_mask)
        return self.mha2(enc_output, enc_output, x, padding_mask)
"""
    INVALID = (CORRECT_FACTORY + _MODEL.format(self_mask="padding_mask", cross_mask="look_ahead_mask"),)
    VALID = (
        CORRECT_FACTORY + _MODEL.format(self_mask="look_ahead_mask", cross_mask="padding_mask"),
        # swapped at the call itself: MF006's finding, not this one
        CORRECT_FACTORY + _MODEL.format(self_mask="look_ahead_mask", cross_mask="padding_mask").replace(
            "self.decoder(tar, enc_output, combined_mask, dec_padding_mask)",
            "self.decoder(tar, enc_output, dec_padding_mask, combined_mask)"),
    )

    def check(self, ctx: Context) -> Iterable[Problem]:
        if not ctx.visible_factories:
            return
        seen: Set[int] = set()
        for route, hop in ctx.swapped_hops():
            if hop is route.hops[0] or id(hop.args[0]) in seen:
                continue  # the call itself exchanges them: MF006
            seen.add(id(hop.args[0]))
            node = hop.args[0].value if len(hop.nodes) == 2 else hop.nodes[0]
            yield Problem(self.code, node, message(route, hop), _fix(hop), key=id(hop.args[0]),
                          anchors=hop.nodes, home=hop.key)


def message(route: Route, hop: Hop) -> str:
    first, second = hop.names
    what = f"the combined look-ahead mask of {route.factory.name} reaches the cross-attention"
    if len(hop.nodes) == 2:
        return (f"{hop.where} hands `{second}` to the self-attention and `{first}` to the "
                f"cross-attention: {what}; swap the two masks")
    return f"{hop.where} passes `{first}` and `{second}` on in exchanged slots: {what}; swap the two arguments"


def _fix(hop: Hop):
    def fix(edits: Edits, style: Style) -> None:
        swap_values(edits, *hop.args)
    return fix


RULE = MasksSwappedOnTheWay()
