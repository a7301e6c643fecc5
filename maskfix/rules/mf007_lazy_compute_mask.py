"""MF007: an embedding's ``compute_mask`` never creates the padding mask."""

from __future__ import annotations

from typing import Iterable

from ..flow.decoders import LazyMask
from ..rewrite import Edits, Style, plan_eager_mask
from .base import Context, Problem, Rule

_EMBEDDING = """\
from keras import layers, ops


class TokenEmbedding(layers.Layer):
    def __init__(self):
        super().__init__()
        self.embed = layers.Embedding(100, 8)

    def call(self, inputs):
        return self.embed(inputs)

    def compute_mask(self, inputs, mask=None):
{guard}        return ops.not_equal(inputs, 0)
"""


class LazyComputeMask(Rule):
    code = "MF007"
    name = "lazy-padding-mask"
    summary = ("An embedding's compute_mask returns None when no mask comes in, so the padding mask "
               "is never created; it must be computed from the token ids.")
    description = (
        "An embedding's `compute_mask` returns `None` when no mask comes in, which is common in "
        "Keras 3 ports. The first layer of a model never receives a mask, so no padding mask is "
        "ever created and padding is attended to everywhere.")
    fixed = ("yes: the `if mask is None: return None` guard is removed, so the mask always comes from "
             "the token ids")
    explanation = """\
The token embedding is the first layer: no mask ever comes in, so the guard always returns None.

Before:

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return ops.not_equal(inputs, 0)

After:

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)
"""
    INVALID = (_EMBEDDING.format(guard="        if mask is None:\n            return None\n"),)
    VALID = (_EMBEDDING.format(guard=""),)

    def check(self, ctx: Context) -> Iterable[Problem]:
        for lazy in ctx.facts.lazy_masks:
            yield Problem(self.code, lazy.guard, message(lazy), _fix(lazy), key=id(lazy))


def message(lazy: LazyMask) -> str:
    return (f"{lazy.cls.name.value}.compute_mask returns None when no mask comes in, so the padding "
            "mask is never created; compute it from the token ids")


def _fix(lazy: LazyMask):
    def fix(edits: Edits, style: Style) -> None:
        plan_eager_mask(lazy, edits)
    return fix


RULE = LazyComputeMask()
