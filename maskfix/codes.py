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
    "MF003": {
        "name": "causal-cross-attention",
        "summary": "use_causal_mask is switched on for a cross-attention (at the call, through a "
        "default argument, or by one flag shared with self-attention); only self-attention is causal.",
    },
    "MF004": {
        "name": "cross-mask-from-target",
        "summary": "A tutorial-style mask factory builds the mask for the cross-attention (its third "
        "result) from the target instead of the source.",
    },
    "MF005": {
        "name": "bare-look-ahead-mask",
        "summary": "A tutorial-style mask factory returns the bare look-ahead mask where the combined "
        "look-ahead and target padding mask belongs.",
    },
    "MF006": {
        "name": "masks-in-swapped-slots",
        "summary": "The masks from a mask factory are passed on in swapped slots, so the combined "
        "look-ahead mask reaches the decoder's cross-attention.",
    },
    "MF007": {
        "name": "lazy-padding-mask",
        "summary": "An embedding's compute_mask returns None when no mask comes in, so the padding "
        "mask is never created; it must be computed from the token ids.",
    },
}


def help_uri(code: str) -> str:
    """Where a reader finds the explanation of ``code``: an anchor in the shipped rules page.

    The page is package data (``maskfix/docs/codes.md``), so the link works offline and from
    any install, editable or not.
    """
    from pathlib import Path

    page = Path(__file__).resolve().parent / "docs" / "codes.md"
    return f"{page.as_uri()}#{code.lower()}"
