"""The diagnostic codes maskfix reports (documented in README.md)."""

CODES = {
    "MF001": {
        "name": "decoder-mask-on-cross-attention",
        "summary": "A decoder's cross-attention is masked from the decoder side (its padding "
        "mask over the encoder's keys, or a causal mask); it must use the encoder's padding mask.",
    },
    "MF002": {
        "name": "call-site-needs-encoder-padding-mask",
        "summary": "A fixed decoder layer is called where maskfix cannot trace the encoder's "
        "token input; pass encoder_padding_mask= by hand.",
    },
}
