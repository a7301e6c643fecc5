"""maskfix as a LibCST codemod, for ``python -m libcst.tool codemod``.

    python -m libcst.tool codemod --no-format -x maskfix.codemod.FixCrossAttentionMask src/

LibCST hands a codemod one file at a time, so a decoder is only threaded to
call sites in its own file; ``maskfix rewrite`` follows it across files.
"""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodCommand, SkipFile

from . import engine


class FixCrossAttentionMask(CodemodCommand):
    """Apply the ``maskfix rewrite`` fix to one module."""

    DESCRIPTION = (
        "Mask Keras Transformer decoders' cross-attention with the encoder's padding mask "
        "instead of the decoder's mask, and pass encoder_padding_mask at call sites (maskfix)."
    )

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        key = self.context.filename or "<source>"
        outcome = engine.run({key: tree.code}, fix=True)[key]
        if outcome.error:
            raise ValueError(outcome.error)
        for f in outcome.findings:
            if not f.fixable:
                self.warn(f"{key}:{f.line}:{f.column}: {f.code} {f.message}")
        if outcome.new_source is None:
            raise SkipFile("nothing to fix")
        return cst.parse_module(outcome.new_source, config=tree.config_for_parsing)
