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
    "extract_module_function": "the call of a functional sub-model moved into a helper that receives the model "
                               "as an argument is not followed (threading the encoder mask there needs a new "
                               "parameter)",
    "extract_nested_function": "the call of a functional sub-model moved into a closure is not followed",
    "extract_method": "an attention call moved into a method that receives the layer as an argument is not followed",
    "extract_staticmethod": "an attention call moved into a staticmethod that receives the layer as an argument "
                            "is not followed",
    "extract_lambda": "an attention call moved into a lambda that receives the layer as an argument is not followed",
    "to_positional": "positional attention_mask (Keras 3: after query_mask, value_mask, key_mask) and "
                     "positional layer arguments are not bound to parameters",
    "to_keywords": "keyword arguments at a decoder's call site are not traced",
    "attention_list_zip": "MF006 follows a factory's masks into attention lists only through `for layer in "
                          "self.layers`, not through zip() loop variables",
    "own_attention_class": "a project attention class that forwards to Keras MultiHeadAttention is recognised "
                           "only when it is named MultiHeadAttention",
    "sibling_module": "a file holding only a decoder layer over the project's own attention class (no "
                      "MultiHeadAttention, no mask factory) does not pass the byte prefilter",
    "sibling_module_star": "as sibling_module, with the layer imported with `*`",
}

# transformation -> fixtures (with the failure seen when the entry was added)
KNOWN_FAILURES = {
    'extract_module_function': {
        'fam_gen_method_keras3',  # verdict {MF011}, expected {MF011 [*]}
        'fam_gen_path_target_tf',  # verdict {}, expected {MF011 [*]}
    },
    'extract_nested_function': {
        'fam_gen_method_keras3',  # verdict {}, expected {MF011 [*]}
        'fam_gen_path_target_tf',  # verdict {}, expected {MF011 [*]}
    },
    'extract_method': {
        'fam_gen_method_keras3',  # verdict {MF011}, expected {MF011 [*]}
    },
    'extract_staticmethod': {
        'fam_gen_method_keras3',  # verdict {MF011}, expected {MF011 [*]}
    },
    'extract_lambda': {
        'fam_gen_method_keras3',  # verdict {MF011}, expected {MF011 [*]}
        'fam_gen_path_target_tf',  # verdict {MF011}, expected {MF011 [*]}
    },
    'to_positional': {
        'fam_gen_method_keras3',  # verdict {}, expected {MF011 [*]}
        'fam_stack_swapped_keras3',  # verdict {}, expected {MF010 [*]}
    },
    'attention_list_zip': {
        'fam_gen_method_keras3',  # verdict {}, expected {MF011 [*]}
        'fam_stack_swapped_keras3',  # verdict {MF006 [*]}, expected {MF010 [*]}
    },
    'sibling_module': {
        'fam_layer_swapped_tf',  # verdict {}, expected {MF010 [*]}
    },
    'sibling_module_star': {
        'fam_layer_swapped_tf',  # verdict {}, expected {MF010 [*]}
    },
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
