"""MF009: a mask built with 1 marking what is hidden reaches Keras attention, which reads 1 as attend."""

from __future__ import annotations

from typing import Iterable, List

import libcst as cst

from ..flow.attention import AttentionCall
from ..flow.reaching import param_names
from ..flow.values import ADDITIVE, BOOL, CAUSAL, MASKED, MaskValue
from ..rewrite import Edits, Style
from .base import Context, Problem, Rule

_DECODER = """\
import tensorflow as tf
from tensorflow.keras import layers


def create_padding_mask(seq):
    return {padding}[:, tf.newaxis, :]


def create_look_ahead_mask(size):
    return 1 - tf.linalg.band_part(tf.ones((size, size)), -1, 0)


class DecoderLayer(layers.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        self.mha1 = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)
        self.mha2 = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)

    def call(self, x, enc_output, look_ahead_mask, padding_mask):
        x = x + self.mha1(x, x, attention_mask=look_ahead_mask)
        return x + self.mha2(x, enc_output, attention_mask=padding_mask)


class Decoder(layers.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        self.layer = DecoderLayer(dim, heads)

    def call(self, x, enc_output, inp, tar):
        look_ahead_mask = {combine}(create_padding_mask(tar), create_look_ahead_mask(tf.shape(tar)[1]))
        return self.layer(x, enc_output, look_ahead_mask, create_padding_mask(inp))
"""

_KERAS_MASKS = ("tf.cast(tf.math.equal(seq, 0), tf.float32)", "tf.maximum")


class InvertedMaskPolarity(Rule):
    code = "MF009"
    name = "inverted-mask-polarity"
    summary = ("A mask built the TensorFlow-tutorial way (1 marks padding or future steps) reaches a Keras "
               "attention layer, which reads 1 as attend: real tokens are hidden and padding is attended to.")
    description = (
        "A mask built the way the 2019 TensorFlow tutorial builds it for its own attention (1 marks what "
        "is hidden: `equal(seq, 0)`, `1 - band_part(...)`, combined with `maximum`, or an additive "
        "`-1e9` mask) reaches the mask argument of Keras `MultiHeadAttention`, which reads 1 as "
        "\"attend\". Each step then attends to exactly the padding and the future it should not see.")
    fixed = ("yes for boolean and 0/1 masks: inverted at the attention call (`1 - m`, or `logical_not` "
             "for booleans); an additive mask is reported only")
    explanation = """\
Keras `MultiHeadAttention` keeps the positions where the mask is 1 (or True). The tutorial's masks
mark the positions to hide with 1, so handed to Keras they hide the real tokens instead.

Before:

    look_ahead_mask = tf.maximum(create_padding_mask(tar), create_look_ahead_mask(size))
    ...
    x = x + self.mha1(x, x, attention_mask=look_ahead_mask)

After:

    x = x + self.mha1(x, x, attention_mask=1 - look_ahead_mask)
"""
    INVALID = (
        _DECODER.format(padding=_KERAS_MASKS[0], combine=_KERAS_MASKS[1]),
        _DECODER.format(padding="tf.math.equal(seq, 0)", combine="tf.logical_or").replace(
            "return 1 - tf.linalg.band_part(tf.ones((size, size)), -1, 0)",
            "return tf.linalg.band_part(tf.ones((size, size)), -1, 0) == 0"),
    )
    VALID = (
        # the same masks in Keras polarity: 1 marks tokens and the visible past
        _DECODER.format(padding="tf.cast(tf.math.not_equal(seq, 0), tf.float32)", combine="tf.minimum").replace(
            "return 1 - tf.linalg.band_part", "return tf.linalg.band_part"),
    )

    def check(self, ctx: Context) -> Iterable[Problem]:
        mv = ctx.values()
        keras3 = ctx.facts.dialect.runtime == "keras3"
        for fn, cls in mv.functions_with_classes():
            calls = mv.attention_calls(fn, cls)
            if not calls:
                continue
            wrapper = cls is not None and cls.name.value in mv.attentions.wrappers
            params = set(param_names(fn))
            it = mv.interpreter(fn, cls)
            for _, ac in calls:
                for arg in _mask_args(ac, keras3):
                    if wrapper and isinstance(arg.value, cst.Name) and arg.value.value in params:
                        continue  # a wrapper forwards its caller's mask: the caller's call is judged
                    value = it.value(arg.value)
                    if value.is_mask and value.polarity == MASKED:
                        fixable = value.form != ADDITIVE
                        yield Problem(self.code, arg.value, message(ctx.module, arg, value),
                                      _fix(ctx, arg, value) if fixable else None, key=id(arg))


def _mask_args(ac: AttentionCall, keras3: bool) -> List[cst.Arg]:
    args = [ac.mask_arg] if ac.mask_arg is not None else []
    if keras3:  # Keras 3 reads these the same way (1 = attend)
        args += [a for a in ac.call.args if a.keyword is not None
                 and a.keyword.value in ("query_mask", "key_mask", "value_mask") and a is not ac.mask_arg]
    return args


def _describe(value: MaskValue) -> str:
    parts = []
    if CAUSAL in value.kinds:
        parts.append("future steps")
    if any(k.startswith("padding") for k in value.kinds):
        parts.append("padding")
    what = " and ".join(parts) or "hidden positions"
    if value.form == ADDITIVE:
        return f"an additive mask (0 to attend, a large negative for {what})"
    return f"1 marks {what}"


def message(module: cst.Module, arg: cst.Arg, value: MaskValue) -> str:
    code = module.code_for_node(arg.value)
    slot = arg.keyword.value if arg.keyword is not None else "the mask argument"
    fix = "; invert it" if value.form != ADDITIVE else "; build it with 1 marking what may be attended to"
    return (f"`{code}` reaches {slot} of Keras attention, which reads 1 as attend, but here {_describe(value)}: "
            f"Keras attends to exactly what the mask means to hide{fix}")


def inverted_code(ctx: Context, code: str, node: cst.BaseExpression, value: MaskValue) -> str:
    """``code`` with the opposite polarity, in the module's dialect."""
    atomic = isinstance(node, (cst.Name, cst.Attribute, cst.Subscript, cst.Call))
    if value.form == BOOL:
        d = ctx.facts.dialect
        if d.runtime == "keras3" and (d.ops or d.keras):
            ns = d.ops or f"{d.keras}.ops"
            return f"{ns}.logical_not({code})"
        if d.tf:
            return f"{d.tf}.logical_not({code})"
        return f"~{code}" if atomic else f"~({code})"
    return f"1 - {code}" if atomic else f"1 - ({code})"


def _fix(ctx: Context, arg: cst.Arg, value: MaskValue):
    def fix(edits: Edits, style: Style) -> None:
        code = style.module.code_for_node(arg.value)
        edits.replace[id(arg.value)] = style.expression(inverted_code(ctx, code, arg.value, value))
    return fix


RULE = InvertedMaskPolarity()
