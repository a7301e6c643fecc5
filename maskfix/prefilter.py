"""The byte-level test that decides whether a file is worth parsing.

Every finding needs one of these words in the file: a decoder owns a
MultiHeadAttention, a lazy embedding mask lives in ``compute_mask``, and a
standalone mask factory builds its look-ahead mask with a triangle op.
Tests check that every fixture with a finding passes.
"""

NEEDLES = (b"MultiHeadAttention", b"compute_mask", b"band_part", b"tril(", b"triu(")


def might_match(raw: bytes) -> bool:
    """False only when no maskfix finding can exist in ``raw``."""
    return any(n in raw for n in NEEDLES)
