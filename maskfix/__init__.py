"""maskfix: find and fix Keras decoders whose cross-attention uses the decoder's mask."""

__version__ = "0.1.0"
