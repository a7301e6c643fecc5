"""Abstract mask values (maskfix.flow.values): each transfer function on small programs."""

import libcst as cst
import pytest

from maskfix.flow.values import (
    ADDITIVE, ATTEND, BINARY, BOOL, CAUSAL, MASKED, ONES, join, module_values, padding,
)
from maskfix.syntax import index_tree, iter_nodes

PAD = padding("unknown")


def value_of(body: str, name: str = "m", runtime: str = "tf.keras", prelude: str = ""):
    """The value bound to ``name`` at the end of a function ``f(ids, n)`` with ``body``."""
    src = "import tensorflow as tf\n" + prelude + "\n\ndef f(ids, n):\n" + "".join(
        f"    {line}\n" for line in body.strip().splitlines()) + f"    return {name}\n"
    module = cst.parse_module(src)
    index_tree(module)
    fn = [d for d in module.body if isinstance(d, cst.FunctionDef) and d.name.value == "f"][0]
    ret = list(iter_nodes(fn.body, cst.Return))[-1]
    return module_values(module, runtime).interpreter(fn, None).value(ret.value)


@pytest.mark.parametrize("body,kinds,polarity,form", [
    ("m = tf.math.equal(ids, 0)", {PAD}, MASKED, BOOL),
    ("m = tf.cast(tf.math.equal(ids, 0), tf.float32)", {PAD}, MASKED, BINARY),
    ("m = ids == 0", {PAD}, MASKED, BOOL),
    ("m = tf.math.not_equal(ids, 0)", {PAD}, ATTEND, BOOL),
    ("m = ids != 0", {PAD}, ATTEND, BOOL),
    ("m = 1 - tf.cast(ids != 0, 'float32')", {PAD}, MASKED, BINARY),
    ("m = tf.logical_not(ids != 0)", {PAD}, MASKED, BOOL),
    ("m = ~(ids == 0)", {PAD}, ATTEND, BOOL),
    ("m = tf.cast(ids != 0, 'int32') == 0", {PAD}, MASKED, BOOL),
    ("m = tf.linalg.band_part(tf.ones((n, n)), -1, 0)", {CAUSAL}, ATTEND, BINARY),
    ("m = 1 - tf.linalg.band_part(tf.ones((n, n)), -1, 0)", {CAUSAL}, MASKED, BINARY),
    ("m = tf.experimental.numpy.tril(tf.ones((n, n)))", {CAUSAL}, ATTEND, BINARY),
    ("m = tf.experimental.numpy.triu(tf.ones((n, n)), 1)", {CAUSAL}, MASKED, BINARY),
    ("i = tf.range(n)[:, None]\nj = tf.range(n)\nm = i >= j", {CAUSAL}, ATTEND, BOOL),
    ("i = tf.range(n)[:, None]\nj = tf.range(n)\nm = j > i", {CAUSAL}, MASKED, BOOL),
    # numpy arrays filled row by row
    ("m = np.zeros((n, n))\nfor i in range(n):\n    m[i, :i + 1] = 1", {CAUSAL}, ATTEND, BINARY),
    ("m = np.ones((n, n))\nfor i in range(n):\n    m[i, i + 1:] = 0", {CAUSAL}, ATTEND, BINARY),
    ("m = np.zeros((n, n))\nfor i in range(n):\n    m[i, i + 1:] = 1", {CAUSAL}, MASKED, BINARY),
    ("m = np.zeros((n, n))\nfor i in range(n):\n    m[i, i + 1:] = -1e9", {CAUSAL}, MASKED, ADDITIVE),
    ("m = np.zeros((n, n))\nfor i in range(n):\n    for j in range(n):\n        if j > i:\n"
     "            m[i, j] = 1", {CAUSAL}, MASKED, BINARY),
    ("m = np.full((n, n), -1e9)\nfor i in range(n):\n    for j in range(n):\n        if i >= j:\n"
     "            m[i, j] = 0", {CAUSAL}, MASKED, ADDITIVE),
    ("m = np.tri(n)", {CAUSAL}, ATTEND, BINARY),
    ("m = tf.ones((n, n))", {ONES}, ATTEND, BINARY),
    ("a = tf.cast(tf.math.equal(ids, 0), 'float32')\nc = 1 - tf.linalg.band_part(tf.ones((n, n)), -1, 0)\n"
     "m = tf.maximum(a[:, None, None, :], c)", {PAD, CAUSAL}, MASKED, BINARY),
    ("a = tf.cast(ids != 0, 'int32')\nc = tf.linalg.band_part(tf.ones((n, n), 'int32'), -1, 0)\n"
     "m = tf.minimum(a[:, None, :], c)", {PAD, CAUSAL}, ATTEND, BINARY),
    ("m = (ids != 0) & (ids != 0)", {PAD}, ATTEND, BOOL),
    ("m = tf.cast(ids == 0, 'float32') * -1e9", {PAD}, MASKED, ADDITIVE),
    ("m = tf.where(ids != 0, 0.0, -1e9)", {PAD}, MASKED, ADDITIVE),
])
def test_transfer_functions(body, kinds, polarity, form):
    v = value_of(body)
    assert (set(v.kinds), v.polarity, v.form) == (kinds, polarity, form)


def test_indexing_and_expand_dims_track_rank_and_axes():
    v = value_of("k = tf.keras.Input(shape=(None,))\nm = tf.math.not_equal(k, 0)[:, tf.newaxis, tf.newaxis, :]")
    assert v.polarity == ATTEND
    v = value_of("m = tf.expand_dims(tf.linalg.band_part(tf.ones((n, n)), -1, 0), 0)")
    assert v.rank == 3 and v.axes == ("one", "target", "target")
    v = value_of("m = tf.linalg.band_part(tf.ones((n, n)), -1, 0)[None, :, :]")
    assert v.rank == 3 and v.axes == ("one", "target", "target")


def test_mixed_polarities_are_unknown_and_parameters_opaque():
    v = value_of("m = tf.minimum(tf.cast(ids != 0, 'int32'), 1 - tf.linalg.band_part(tf.ones((n, n)), -1, 0))")
    assert v.polarity is None and v.is_mask
    assert value_of("m = ids").opaque
    assert value_of("m = tf.cast(ids, 'int32')").opaque


def test_helpers_are_evaluated_with_their_arguments():
    prelude = ("def pad_mask(seq):\n    return tf.cast(tf.math.equal(seq, 0), tf.float32)\n\n\n"
               "def both(a, b):\n    return pad_mask(a), 1 - tf.linalg.band_part(tf.ones((b, b)), -1, 0)\n")
    v = value_of("m = pad_mask(ids)", prelude=prelude)
    assert (v.polarity, v.form) == (MASKED, BINARY)
    p, c = value_of("p, c = both(ids, n)", "p", prelude=prelude), value_of("p, c = both(ids, n)", "c", prelude=prelude)
    assert p.kinds == {PAD} and c.kinds == {CAUSAL} and p.polarity == c.polarity == MASKED
    lam = value_of("g = lambda s: s != 0\nm = g(ids)")
    assert lam.polarity == ATTEND


def test_flow_order_and_joins():
    assert value_of("m = ids == 0\nm = ids != 0").polarity == ATTEND  # the later binding reaches
    v = value_of("m = ids == 0\nif n:\n    m = ids != 0")
    assert v.polarity is None and v.kinds == {PAD}
    assert join([value_of("m = ids != 0")] * 2).polarity == ATTEND


def test_layer_parameters_come_from_the_calls_in_the_module():
    src = '''import tensorflow as tf


class Block(tf.keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.mha = tf.keras.layers.MultiHeadAttention(2, 4)

    def call(self, x, look_ahead_mask, mask=None):
        return self.mha(x, x, attention_mask=look_ahead_mask)


class Stack(tf.keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.blocks = [Block() for _ in range(2)]

    def call(self, x, tar):
        m = tf.maximum(tf.cast(tf.math.equal(tar, 0), tf.float32)[:, None, None, :],
                       1 - tf.linalg.band_part(tf.ones((4, 4)), -1, 0))
        for block in self.blocks:
            x = block(x, m)
        return x
'''
    module = cst.parse_module(src)
    index_tree(module)
    mv = module_values(module, "tf.keras")
    block = [c for c in iter_nodes(module, cst.ClassDef) if c.name.value == "Block"][0]
    call = [f for f in iter_nodes(block, cst.FunctionDef) if f.name.value == "call"][0]
    params = mv.parameters(call, block)
    assert params["look_ahead_mask"].polarity == MASKED and CAUSAL in params["look_ahead_mask"].kinds
    assert params["mask"].polarity == ATTEND  # filled by Keras: 1 marks tokens
    assert params["x"].opaque


def test_a_row_written_whole_or_two_writes_are_not_read_as_causal():
    for body in ("m = np.zeros((n, n))\nfor i in range(n):\n    m[i, :] = 1",
                 "m = np.zeros((n, n))\nfor i in range(n):\n    m[i, :i + 1] = 1\n    m[i, i] = 0"):
        assert CAUSAL not in value_of(body).kinds, body


NUMPY_DECODER = """
import numpy as np
import tensorflow as tf
from tensorflow.keras import layers


def look_ahead(n):
    m = np.zeros((n, n), dtype="float32")
    for i in range(n):
        m[i, {region}] = 1
    return m


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.self_attention = layers.MultiHeadAttention(2, 8)
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, enc):
        causal = look_ahead(12)
        h = self.self_attention(query=x, value=x, key=x, attention_mask=causal)
        return self.cross_attention(query=h, value=enc, key=enc, attention_mask={cross})
"""


def test_a_numpy_mask_filled_row_by_row_is_judged_like_any_other():
    from maskfix import engine

    def codes(region, cross):
        return sorted({f.code for f in engine.check_source(NUMPY_DECODER.format(region=region, cross=cross))})

    assert codes(":i + 1", "None") == []  # attend to the past: right for self-attention
    assert codes(":i + 1", "causal") == ["MF001"]  # a causal mask over the source
    assert codes("i + 1:", "None") == ["MF009"]  # 1 marks the future: Keras attends to exactly that
