"""Fixture x transformation combinations the current analysis gets wrong.

The metamorphic tests run these as strict expected failures: once the analysis handles one,
its test errors (XPASS) until the entry is removed here.  `python tests/metamorphic/matrix.py
--failing` prints today's failures in this format.  Each transformation keeps what the
program computes, so every entry is a gap in maskfix, not in the fixture.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# Why each transformation trips the analysis today.
REASONS = {
    "dead_store_before": "a dead store before the real binding is joined into the name's provenance "
                         "(assignments are a flow-insensitive union)",
    "rebind_after_use": "re-binding names after their last use hides the binding that reached the call "
                        "or the factory's returned masks",
    "to_keywords": "keyword arguments at a decoder's call site are not traced",
    "own_attention_class": "a project attention class that forwards to Keras MultiHeadAttention is recognised "
                           "only when it is named MultiHeadAttention",
}

# transformation -> fixtures (with the failure seen when the entry was added)
KNOWN_FAILURES = {
}


def is_known(variant: str, transform: str) -> bool:
    return variant in KNOWN_FAILURES.get(transform, {})


def reason(variant: str, transform: str) -> str:
    """The fixture's own XFAIL reason when the untransformed fixture already fails, else the
    transformation's."""
    gap = FIXTURES / variant / "XFAIL"
    if gap.exists():
        return "the fixture itself is a known gap: " + gap.read_text().strip()
    return REASONS[transform]
