"""MF005: a mask factory returns the bare look-ahead mask for the decoder's self-attention."""

from __future__ import annotations

from typing import Iterable

from ..flow.factories import Factory, SourcePadding, source_padding
from ..rewrite import Edits, Style
from .base import Context, Problem, Rule
from .mf004_cross_mask_from_target import CORRECT_FACTORY


class BareLookahead(Rule):
    code = "MF005"
    name = "bare-look-ahead-mask"
    summary = ("A tutorial-style mask factory returns the bare look-ahead mask where the combined "
               "look-ahead and target padding mask belongs.")
    description = (
        "Such a factory returns the bare look-ahead mask in the second slot, where the look-ahead "
        "mask combined with the target's padding belongs.")
    fixed = ("yes: combined with the target's padding, built as the factory builds the source's (its "
             "padding helper, or the same computation), with `maximum` when 1 marks padding and "
             "`minimum` when 1 marks tokens")
    explanation = """\
The decoder's self-attention needs both the look-ahead mask and the target's padding.

Before:

    return enc_padding_mask, look_ahead_mask, dec_padding_mask

After:

    return enc_padding_mask, tf.maximum(create_padding_mask(tar), look_ahead_mask), dec_padding_mask
"""
    INVALID = (CORRECT_FACTORY.replace("return enc_padding_mask, combined_mask,",
                                       "return enc_padding_mask, look_ahead_mask,"),)
    VALID = (CORRECT_FACTORY,)

    def check(self, ctx: Context) -> Iterable[Problem]:
        ns = _namespace(ctx)
        for f in ctx.factories:
            if not f.bare_lookahead:
                continue
            padding = source_padding(f)
            if padding is not None:
                second = f.ret.elements[1].value
                yield Problem(self.code, second, message(f), _fix(f, second, padding, ns), key=id(f))


def message(f: Factory) -> str:
    return (f"the second mask of {f.name} is the bare look-ahead mask; combine it with the padding "
            f"of the target `{f.tgt}`")


def _namespace(ctx: Context):
    d = ctx.facts.dialect
    return d.tf or d.ops or (f"{d.keras}.ops" if d.keras else None)


def _fix(f: Factory, second, padding: SourcePadding, ns):
    def fix(edits: Edits, style: Style) -> None:
        if ns is None:
            return
        target = style.module.code_for_node(padding.of(f.tgt))
        code = style.module.code_for_node(second)
        edits.replace[id(second)] = style.expression(f"{ns}.{padding.combine}({target}, {code})")
    return fix


RULE = BareLookahead()
