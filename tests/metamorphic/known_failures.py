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
    "extract_module_function": "a mask computed in a module-level function is not summarised",
    "extract_nested_function": "a mask computed in a closure is not summarised",
    "extract_method": "a mask computed in a method the analysis does not know as a causal helper is lost",
    "extract_staticmethod": "a mask computed in a staticmethod the analysis does not know as a causal helper is lost",
    "extract_lambda": "a mask computed by a lambda is not summarised",
    "inline_helpers": "a tutorial factory whose helpers are inlined is no longer recognised as a factory",
    "to_positional": "positional attention_mask (Keras 3: after query_mask, value_mask, key_mask) and "
                     "positional layer arguments are not bound to parameters",
    "to_keywords": "keyword arguments at a decoder's call site are not traced",
    "attention_list_zip": "attention layers kept in lists built in build() and called through zip() loop "
                          "variables are not recognised",
    "own_attention_class": "a project attention class that forwards to Keras MultiHeadAttention is recognised "
                           "only when it is named MultiHeadAttention",
    "sibling_module": "an attention class imported from a sibling module is not followed",
    "sibling_module_star": "names imported with `from module import *` are not resolved within the run",
}

# transformation -> fixtures (with the failure seen when the entry was added)
KNOWN_FAILURES = {
    'rebind_after_use': {
        'fam_factory_bare_lookahead',  # verdict {}, expected {MF005 [*]}
        'fam_factory_swapped',  # verdict {}, expected {MF006 [*]}
        'fam_factory_target',  # verdict {}, expected {MF004 [*]}
        'fam_gen_path_target_tf',  # verdict {}, expected {MF011 [*]}
        'fam_layer_swapped_tf',  # verdict {}, expected {MF010 [*]}
        'fam_stack_swapped_keras3',  # verdict {}, expected {MF010 [*]}
        'gen_path_swapped',  # verdict {}, expected {MF006 [*]}
    },
    'extract_module_function': {
        'causal_only',  # verdict {}, expected {MF001 [*]}
        'either_order',  # verdict {}, expected {MF001 [*]}
        'fam_factory_bare_lookahead',  # verdict {}, expected {MF005 [*]}
        'fam_factory_target',  # main.py: the ast screen drops a file with findings
        'fam_gen_method_keras3',  # verdict {MF011}, expected {MF011 [*]}
        'fam_gen_path_target_tf',  # verdict {}, expected {MF011 [*]}
        'fam_implicit_submodel_keras3',  # verdict {}, expected {MF012 [*]}
        'fam_implicit_submodel_tf',  # verdict {}, expected {MF012 [*]}
        'fam_layer_swapped_tf',  # main.py: the ast screen drops a file with findings
        'fam_submodel_callers_keras3',  # verdict {MF001 [*], MF002}, expected {MF001 [*]}
        'fam_submodel_callers_tf',  # verdict {MF001 [*], MF002}, expected {MF001 [*]}
        'functional_builder',  # verdict {}, expected {MF001}
        'helper_staticmethod',  # verdict {}, expected {MF001 [*]}
        'kerasio_keras3',  # verdict {MF001 [*], MF002}, expected {MF001 [*]}
        'kerasio_tf',  # verdict {MF001 [*], MF002}, expected {MF001 [*]}
        'mixed_usage',  # verdict {}, expected {MF001}
    },
    'extract_nested_function': {
        'book_tf',  # verdict {}, expected {MF001 [*]}
        'causal_only',  # verdict {}, expected {MF001 [*]}
        'closure_mask_helper',  # verdict {}, expected {MF001 [*]}
        'comment_dense',  # verdict {}, expected {MF001 [*]}
        'dialect_keras_tf_keras',  # verdict {}, expected {MF001 [*]}
        'dialect_tf_keras_package',  # verdict {}, expected {MF001 [*]}
        'fam_factory_bare_lookahead',  # verdict {}, expected {MF005 [*]}
        'fam_factory_swapped',  # verdict {}, expected {MF006 [*]}
        'fam_factory_target',  # verdict {}, expected {MF004 [*]}
        'fam_gen_method_keras3',  # verdict {}, expected {MF011 [*]}
        'fam_gen_path_target_tf',  # verdict {}, expected {MF011 [*]}
        'fam_implicit_submodel_keras3',  # verdict {}, expected {MF012 [*]}
        'fam_implicit_submodel_tf',  # verdict {}, expected {MF012 [*]}
        'fam_layer_swapped_tf',  # verdict {}, expected {MF010 [*]}
        'fam_stack_swapped_keras3',  # verdict {}, expected {MF010 [*]}
        'fam_submodel_callers_keras3',  # verdict {MF001 [*], MF002}, expected {MF001 [*]}
        'fam_submodel_callers_tf',  # verdict {MF001 [*], MF002}, expected {MF001 [*]}
        'functional_builder',  # verdict {}, expected {MF001}
        'gen_path_swapped',  # verdict {}, expected {MF006 [*]}
        'keras_alias_K',  # verdict {}, expected {MF001 [*]}
        'kerasio_keras3',  # verdict {}, expected {MF001 [*]}
        'kerasio_tf',  # verdict {}, expected {MF001 [*]}
        'list_input',  # verdict {}, expected {MF001 [*]}
        'mha_list_build',  # verdict {}, expected {MF001 [*]}
        'multiline_no_trailing_comma',  # verdict {}, expected {MF001 [*]}
        'oneline',  # verdict {}, expected {MF001 [*]}
        'own_mha_class',  # verdict {}, expected {MF001 [*]}
        'positional_tf',  # verdict {}, expected {MF001 [*]}
        'subclassed_model',  # verdict {}, expected {MF001 [*]}
        'upfront',  # verdict {}, expected {MF001 [*]}
        'zip_attention_lists',  # verdict {}, expected {MF001 [*]}
    },
    'extract_method': {
        'causal_only',  # verdict {}, expected {MF001 [*]}
        'fam_gen_method_keras3',  # verdict {MF011}, expected {MF011 [*]}
        'functional_builder',  # verdict {}, expected {MF001}
    },
    'extract_staticmethod': {
        'causal_only',  # verdict {}, expected {MF001 [*]}
        'either_order',  # verdict {}, expected {MF001 [*]}
        'fam_gen_method_keras3',  # verdict {MF011}, expected {MF011 [*]}
        'functional_builder',  # verdict {}, expected {MF001}
        'mixed_usage',  # verdict {}, expected {MF001}
    },
    'extract_lambda': {
        'causal_only',  # verdict {}, expected {MF001 [*]}
        'either_order',  # verdict {}, expected {MF001 [*]}
        'fam_gen_method_keras3',  # verdict {MF011}, expected {MF011 [*]}
        'fam_gen_path_target_tf',  # verdict {MF011}, expected {MF011 [*]}
        'fam_implicit_submodel_keras3',  # verdict {}, expected {MF012 [*]}
        'fam_implicit_submodel_tf',  # verdict {}, expected {MF012 [*]}
        'fam_submodel_callers_keras3',  # verdict {MF001 [*], MF002}, expected {MF001 [*]}
        'fam_submodel_callers_tf',  # verdict {MF001 [*], MF002}, expected {MF001 [*]}
        'functional_builder',  # verdict {}, expected {MF001}
        'mixed_usage',  # verdict {}, expected {MF001}
    },
    'inline_helpers': {
        'fam_factory_bare_lookahead',  # verdict {}, expected {MF005 [*]}
        'fam_factory_swapped',  # verdict {}, expected {MF006 [*]}
        'fam_factory_target',  # verdict {}, expected {MF004 [*]}
        'fam_gen_method_keras3',  # verdict {MF011}, expected {MF011 [*]}
        'fam_gen_path_target_tf',  # verdict {MF011}, expected {MF011 [*]}
        'fam_layer_swapped_tf',  # verdict {}, expected {MF010 [*]}
        'fam_stack_swapped_keras3',  # verdict {}, expected {MF010 [*]}
        'gen_path_swapped',  # verdict {}, expected {MF006 [*]}
    },
    'to_positional': {
        'builder_functional_model',  # verdict {}, expected {MF001}
        'causal_only',  # verdict {}, expected {MF001 [*]}
        'dialect_keras_tf_keras',  # verdict {}, expected {MF001 [*]}
        'either_order',  # verdict {}, expected {MF001 [*]}
        'else_mask',  # verdict {}, expected {MF001 [*]}
        'fam_polarity_bool_keras3',  # verdict {}, expected {MF009 [*]}: Keras 3's 7th positional is attention_mask
        'fam_gen_method_keras3',  # verdict {}, expected {MF011 [*]}
        'fam_stack_swapped_keras3',  # verdict {}, expected {MF010 [*]}
        'fam_submodel_caller_untraced',  # verdict {}, expected {MF001 [*], MF002}
        'fam_submodel_callers_keras3',  # verdict {}, expected {MF001 [*]}
        'functional_builder',  # verdict {}, expected {MF001}
        'helper_lambda',  # verdict {}, expected {MF001 [*]}
        'helper_staticmethod',  # verdict {}, expected {MF001 [*]}
        'keras_alias_K',  # verdict {}, expected {MF001 [*]}
        'kerasio_keras3',  # verdict {}, expected {MF001 [*]}
        'list_input_decoder',  # verdict {}, expected {MF001 [*]}
        'mha_list_build',  # verdict {}, expected {MF001 [*]}
        'mixed_usage',  # verdict {}, expected {MF001}
        'multiline_no_trailing_comma',  # verdict {}, expected {MF001 [*]}
        'neg_gen_names_look_wrong',  # verdict {MF008 [*]}, expected {}
        'oneline',  # verdict {}, expected {MF001 [*]}
        'rebind_twice',  # verdict {}, expected {MF001 [*]}
        'subclassed_model',  # verdict {}, expected {MF001 [*]}
        'tril_module_helper',  # verdict {}, expected {MF001 [*]}
    },
    'to_keywords': {
        'subclassed_model',  # verdict {MF001 [*], MF002}, expected {MF001 [*]}
    },
    'attention_list_zip': {
        'fam_factory_swapped',  # verdict {}, expected {MF006 [*]}
        'fam_gen_method_keras3',  # verdict {}, expected {MF011 [*]}
        'fam_stack_swapped_keras3',  # verdict {}, expected {MF010 [*]}
        'gen_path_swapped',  # verdict {}, expected {MF006 [*]}
    },
    'sibling_module': {
        'fam_factory_swapped',  # verdict {}, expected {MF006 [*]}
        'fam_polarity_bool_keras3',  # verdict {}, expected {MF009 [*]}: layer parameters bound within one file only
        'fam_polarity_tutorial_tf',  # verdict {}, expected {MF009 [*]}: layer parameters bound within one file only
        'fam_implicit_submodel_keras3',  # verdict {}, expected {MF012 [*]}
        'fam_implicit_submodel_tf',  # verdict {}, expected {MF012 [*]}
        'fam_layer_swapped_tf',  # verdict {}, expected {MF010 [*]}
        'fam_stack_swapped_keras3',  # verdict {}, expected {MF010 [*]}
        'gen_path_swapped',  # verdict {}, expected {MF006 [*]}
    },
    'sibling_module_star': {
        'fam_factory_swapped',  # verdict {}, expected {MF006 [*]}
        'fam_polarity_bool_keras3',  # verdict {}, expected {MF009 [*]}: layer parameters bound within one file only
        'fam_polarity_tutorial_tf',  # verdict {}, expected {MF009 [*]}: layer parameters bound within one file only
        'fam_implicit_submodel_keras3',  # verdict {}, expected {MF012 [*]}
        'fam_implicit_submodel_tf',  # verdict {}, expected {MF012 [*]}
        'fam_layer_swapped_tf',  # verdict {}, expected {MF010 [*]}
        'fam_stack_swapped_keras3',  # verdict {}, expected {MF010 [*]}
        'gen_path_swapped',  # verdict {}, expected {MF006 [*]}
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
