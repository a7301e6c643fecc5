"""MF011: one path (often generation) builds the cross-attention mask from the target or drops it."""

from __future__ import annotations

from typing import Iterable

import libcst as cst

from ..flow.paths import PathCall
from ..rewrite import Edits, Style, replace_names
from .base import Context, Problem, Rule

_MODEL = """\
import tensorflow as tf


def padding(ids):
    return tf.cast(tf.math.equal(ids, 0), tf.float32)[:, tf.newaxis, tf.newaxis, :]


class Attention(tf.keras.layers.Layer):
    def call(self, v, k, q, mask):
        return q


class Translator(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.embed = tf.keras.layers.Embedding(50, 8)
        self.self_attention = Attention()
        self.cross_attention = Attention()

    def call(self, src, tgt, look_ahead_mask, memory_mask):
        memory = self.embed(src)
        x = self.embed(tgt)
        x = self.self_attention(x, x, x, look_ahead_mask)
        return self.cross_attention(memory, memory, x, memory_mask)


model = Translator()


def train_step(src, tgt):
    return model(src, tgt, None, padding(src))


def generate(src, out):
    return model(src, out, None, {cross})
"""


class CrossMaskWrongOnOnePath(Rule):
    code = "MF011"
    name = "cross-mask-wrong-on-one-path"
    summary = ("One call of a decoder (often a generation method) builds the cross-attention mask from "
               "the target, or passes none, while another call (training) builds it from the source.")
    description = (
        "The training path masks the cross-attention with the source's padding, but another path "
        "calling the same model or decoder (an inference or generation method) builds that mask from "
        "the target, or passes none. The message names the method. maskfix follows each argument "
        "down to the cross-attention to know which one is its mask.")
    fixed = ("yes, when the mask is built from the target's ids by a plain expression: the source's ids "
             "take their place; a missing mask is reported")
    explanation = """\
Every call must give the cross-attention the padding of the source, as the training path does.
A generation loop that builds it from the tokens generated so far masks the wrong keys, and
crashes once the source and the output differ in length.

Before:

    def generate(src, out):
        memory_mask = padding(out)
        return model(src, out, look_ahead, memory_mask)

After:

    def generate(src, out):
        memory_mask = padding(src)
        return model(src, out, look_ahead, memory_mask)
"""
    INVALID = (_MODEL.format(cross="padding(out)"),)
    MISSING = _MODEL.format(cross="None")  # reported, not fixed
    VALID = (
        _MODEL.format(cross="padding(src)"),
        # every path builds it from the target: a different finding (the factory or the model), not a
        # disagreement between paths
        _MODEL.format(cross="padding(out)").replace("padding(src))", "padding(tgt))"),
    )

    def check(self, ctx: Context) -> Iterable[Problem]:
        for wrong, right in ctx.divergent_paths():
            node = wrong.arg.value if wrong.arg is not None else wrong.call
            fix = _fix(wrong) if wrong.kind == "target" and wrong.to_replace else None
            yield Problem(self.code, node, message(wrong, right), fix, key=id(node), anchors=(wrong.call,))


def message(wrong: PathCall, right: PathCall) -> str:
    if wrong.kind == "missing":
        what = "gets no cross-attention mask"
    else:
        what = f"builds the cross-attention mask (`{wrong.param}`) from the target `{wrong.target_ids or '?'}`"
    fix = f"; build it from the source `{wrong.source_ids}`" if wrong.source_ids else ""
    return (f"in {wrong.where}, the call of {wrong.cls_name} {what}, while {right.where} builds it "
            f"from the source{fix}")


def _fix(wrong: PathCall):
    def fix(edits: Edits, style: Style) -> None:
        replace_names(edits, wrong.to_replace, cst.Name(wrong.source_ids))
    return fix


RULE = CrossMaskWrongOnOnePath()
