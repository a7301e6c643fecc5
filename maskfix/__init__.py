"""maskfix: find and fix Keras decoders whose cross-attention uses the decoder's mask."""

__version__ = "0.1.0"


def __getattr__(name):
    # ``python -m libcst.tool codemod -x maskfix.FixCrossAttentionMask``, without importing
    # LibCST for every ``import maskfix``.
    if name == "FixCrossAttentionMask":
        from .codemod import FixCrossAttentionMask

        return FixCrossAttentionMask
    raise AttributeError(f"module 'maskfix' has no attribute {name!r}")
