"""Metamorphic tests: every golden fixture, rewritten in ways that keep what it computes, keeps
its verdict (codes and fixability); the rewrite of the transformed program compiles and is
idempotent.  Combinations the analysis gets wrong today are strict expected failures, listed in
known_failures.py.  ``python tests/metamorphic/matrix.py`` prints the whole matrix.
"""

from __future__ import annotations

import json

import libcst as cst
import pytest

from harness import VARIANTS, evaluate, source_of, transformed
from known_failures import KNOWN_FAILURES, is_known, reason
from transforms import MAIN, NOTEBOOK, SIBLING, TRANSFORMS, parse

PAIRS = [
    pytest.param(v, t, marks=pytest.mark.xfail(strict=True, reason=reason(v, t))) if is_known(v, t) else (v, t)
    for t in TRANSFORMS
    for v in VARIANTS
]


@pytest.mark.parametrize("variant,transform", PAIRS)
def test_transformation_keeps_the_verdict(variant, transform):
    result = evaluate(variant, transform)
    if result.status == "n/a":
        pytest.skip(f"{transform} does not apply to {variant}")
    assert result.status == "pass", result.reason


def test_known_failures_name_real_combinations_that_apply():
    assert set(KNOWN_FAILURES) <= set(TRANSFORMS)
    for transform, variants in KNOWN_FAILURES.items():
        for v in variants:
            assert v in VARIANTS, v
            assert reason(v, transform), (v, transform)
            assert evaluate(v, transform).status != "n/a", (v, transform)


def test_every_transformation_applies_to_most_fixtures_and_changes_the_program():
    """One test for both whole-matrix checks: computing every transformation costs about 30 s of
    CPU, and two tests could each pay it in their own xdist worker."""
    for transform in TRANSFORMS:
        applied = 0
        for v in VARIANTS:
            files = transformed(v, transform)
            applied += files is not None
            if files and list(files) == [MAIN]:
                assert files[MAIN] != source_of(v), (v, transform)
        assert applied >= len(VARIANTS) // 2, transform


# --- the transformations themselves, on small programs -------------------------------------

DECODER = '''import keras
from keras import layers, ops


class Dec(layers.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        self.sa = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)
        self.ca = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)

    def causal(self, x):
        n = ops.shape(x)[1]
        return ops.tril(ops.ones((1, n, n), dtype="int32"))

    def call(self, x, enc, mask=None):
        c = self.causal(x)
        m = ops.minimum(ops.cast(mask[:, None, :], "int32"), c)
        x = x + self.sa(x, x, attention_mask=c)
        return x + self.ca(query=x, value=enc, key=enc, attention_mask=m)
'''


def run(transform, source=DECODER):
    return TRANSFORMS[transform](source)[MAIN]


def test_positional_attention_masks_follow_each_runtime():
    """tf_keras takes attention_mask 4th; Keras 3 fills query/value/key masks by keyword itself,
    so a positional mask would collide with them at run time: there it stays a keyword."""
    out = run("to_positional")
    assert "self.ca(x, enc, enc, attention_mask=m)" in out and "None, None, None" not in out
    tf_keras = DECODER.replace("import keras\nfrom keras import",
                               "import tensorflow as tf\nfrom tensorflow.keras import")
    assert "self.ca(x, enc, enc, m)" in TRANSFORMS["to_positional"](tf_keras)[MAIN]


def test_keywords_follow_the_signature():
    out = run("to_keywords")
    assert "self.sa(query=x, value=x, attention_mask=c)" in out


def test_renames_leave_parameters_attributes_and_keywords_alone():
    out = run("rename_locals")
    assert "def call(self, x, enc, mask=None):" in out and "attention_mask=" in out
    assert " c = " not in out and " m = " not in out and "self.causal(" in out
    swapped = run("swap_local_names")
    assert "attention_mask=m)\n" in swapped and "self.sa(x, x, attention_mask=c)" not in swapped


def test_extractions_keep_the_expression():
    out = run("extract_module_function")
    assert "(mask, c):\n    return ops.minimum(ops.cast(mask[:, None, :], \"int32\"), c)" in out
    assert "(layer, x):\n    return layer.causal(x)" in out
    assert "(self, mask, c):\n        return ops.minimum(" in run("extract_method")
    assert "@staticmethod" in run("extract_staticmethod")
    assert "lambda mask, c: ops.minimum(" in run("extract_lambda")
    assert "():\n            return ops.minimum(" in run("extract_nested_function")


def test_inlined_helper_binds_its_parameters():
    out = run("inline_helpers")
    assert "c = (ops.tril(" in out and "causal_x_" in out


def test_list_zip_builds_the_layers_in_build():
    out = run("attention_list_zip")
    assert "def build(self, input_shape):" in out and "in zip(self.attn_list_sa, self.attn_list_ca):" in out
    compile(out, "x", "exec")


def test_own_attention_class_wraps_keras():
    out = run("own_attention_class")
    assert "class ProjectAttention(layers.Layer):" in out and "layers.MultiHeadAttention(*args, **kwargs)" in out
    assert out.count("ProjectAttention(num_heads=heads") == 2


def test_sibling_module_and_star_import():
    user = DECODER + "\n\ndef model(a, b):\n    return Dec(8, 2)(a, b)\n"
    files = TRANSFORMS["sibling_module"](user)
    assert set(files) == {f"{SIBLING}.py", MAIN}
    assert f"from {SIBLING} import Dec" in files[MAIN] and "class Dec" not in files[MAIN]
    assert f"from {SIBLING} import *" in TRANSFORMS["sibling_module_star"](user)[MAIN]


def test_notebook_cells_hold_the_program():
    doc = json.loads(TRANSFORMS["notebook_cells"](DECODER)[NOTEBOOK])
    code = [c for c in doc["cells"] if c["cell_type"] == "code"]
    assert code[0]["source"] == ["%matplotlib inline"]
    assert len(code) == 1 + len(parse(DECODER).body)
    cst.parse_module("".join("".join(c["source"]) + "\n" for c in code[1:]))
