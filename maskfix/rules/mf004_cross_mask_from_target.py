"""MF004: a tutorial-style mask factory builds the cross-attention mask from the target."""

from __future__ import annotations

from typing import Iterable

import libcst as cst

from ..flow.factories import Factory, target_to_source
from ..rewrite import Edits, Style, replace_names
from .base import Context, Problem, Rule

# A correct factory of the TensorFlow tutorial's shape, shared by the factory rules' examples.
CORRECT_FACTORY = """\
import tensorflow as tf


def create_padding_mask(seq):
    seq = tf.cast(tf.math.equal(seq, 0), tf.float32)
    return seq[:, tf.newaxis, tf.newaxis, :]


def create_look_ahead_mask(size):
    return 1 - tf.linalg.band_part(tf.ones((size, size)), -1, 0)


def create_masks(inp, tar):
    enc_padding_mask = create_padding_mask(inp)
    dec_padding_mask = create_padding_mask(inp)
    look_ahead_mask = create_look_ahead_mask(tf.shape(tar)[1])
    dec_target_padding_mask = create_padding_mask(tar)
    combined_mask = tf.maximum(dec_target_padding_mask, look_ahead_mask)
    return enc_padding_mask, combined_mask, dec_padding_mask
"""


class CrossMaskFromTarget(Rule):
    code = "MF004"
    name = "cross-mask-from-target"
    summary = ("A tutorial-style mask factory builds the mask for the cross-attention (its third "
               "result) from the target instead of the source.")
    description = (
        "A mask factory in the TensorFlow-tutorial style, `f(inp, tar)` returning (encoder padding, "
        "combined look-ahead, cross-attention padding), builds its third mask from the target "
        "instead of the source. A standalone factory is judged by that documented contract.")
    fixed = "yes: the target argument becomes the source"
    explanation = """\
The third mask hides padding among the cross-attention's keys, the encoder outputs, so it is the
padding of the source.

Before:

    dec_padding_mask = create_padding_mask(tar)

After:

    dec_padding_mask = create_padding_mask(inp)
"""
    INVALID = (CORRECT_FACTORY.replace("dec_padding_mask = create_padding_mask(inp)",
                                       "dec_padding_mask = create_padding_mask(tar)"),)
    VALID = (CORRECT_FACTORY,)

    def check(self, ctx: Context) -> Iterable[Problem]:
        for f in ctx.factories:
            if not f.cross_from_target:
                continue
            hits = target_to_source(f)
            if hits:
                yield Problem(self.code, f.ret.elements[2].value, message(f), _fix(hits, f.src), key=id(f))


def message(f: Factory) -> str:
    return (f"the third mask of {f.name} (for the cross-attention over the encoder outputs) is built "
            f"from the target `{f.tgt}`; build it from the source `{f.src}`")


def _fix(hits, src: str):
    def fix(edits: Edits, style: Style) -> None:
        replace_names(edits, hits, cst.Name(src))
    return fix


RULE = CrossMaskFromTarget()
