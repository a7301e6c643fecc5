"""Masks computed in place rather than through a factory call: the body of a mask factory (or of
its padding helper) written out where it was called is judged by the same contract."""

import ast

import libcst as cst

from maskfix import engine
from maskfix.flow.factories import inline_factories

MODEL = '''import tensorflow as tf


def create_padding_mask(seq):
    seq = tf.cast(tf.math.equal(seq, 0), tf.float32)
    return seq[:, tf.newaxis, tf.newaxis, :]


def create_look_ahead_mask(size):
    return 1 - tf.linalg.band_part(tf.ones((size, size)), -1, 0)


class Attention(tf.keras.layers.Layer):
    def call(self, v, k, q, mask):
        return q


class DecoderLayer(tf.keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.mha1 = Attention()
        self.mha2 = Attention()

    def call(self, x, enc_output, look_ahead_mask, padding_mask):
        x = self.mha1(x, x, x, {self_mask})
        return self.mha2(enc_output, enc_output, x, {cross_mask})


class Transformer(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.decoder = DecoderLayer()

    def call(self, inp, tar, enc_output):
        padding = create_padding_mask(inp)
        combined = tf.maximum(create_padding_mask(tar), create_look_ahead_mask(tf.shape(tar)[1]))
        cross = create_padding_mask(inp)
        enc_padding_mask, combined_mask, dec_padding_mask = (padding, combined, cross)
        return self.decoder(tar, enc_output, {first}, {second})
'''


def _findings(source, fix=False):
    out = engine.run({"m.py": source}, fix=fix)["m.py"]
    assert out.error is None, out.error
    return out


def test_masks_bound_in_place_follow_the_factory_contract():
    source = MODEL.format(self_mask="look_ahead_mask", cross_mask="padding_mask",
                          first="combined_mask", second="dec_padding_mask")
    [f] = inline_factories(cst.parse_module(source))
    assert (f.name, f.src, f.tgt, f.slot_names()) == (
        "call", "inp", "tar", {"enc_padding_mask": 0, "combined_mask": 1, "dec_padding_mask": 2})
    assert _findings(source).findings == []


def test_masks_bound_in_place_and_swapped_at_the_call_are_mf006():
    source = MODEL.format(self_mask="look_ahead_mask", cross_mask="padding_mask",
                          first="dec_padding_mask", second="combined_mask")
    out = _findings(source, fix=True)
    assert [(f.code, f.fixable) for f in out.findings] == [("MF006", True)]
    assert "self.decoder(tar, enc_output, combined_mask, dec_padding_mask)" in out.new_source


def test_masks_bound_in_place_and_swapped_in_the_layer_are_mf010():
    source = MODEL.format(self_mask="padding_mask", cross_mask="look_ahead_mask",
                          first="combined_mask", second="dec_padding_mask")
    out = _findings(source, fix=True)
    assert [(f.code, f.fixable) for f in out.findings] == [("MF010", True)]
    assert "self.mha1(x, x, x, look_ahead_mask)" in out.new_source


BARE = '''import tensorflow as tf


def create_masks(inp, tar):
    ids = inp
    enc = tf.cast(tf.math.{op}(ids, 0), tf.float32)[:, tf.newaxis, tf.newaxis, :]
    n = tf.shape(tar)[1]
    ahead = 1 - tf.linalg.band_part(tf.ones((n, n)), -1, 0)
    return enc, ahead, tf.cast(tf.math.{op}(inp, 0), tf.float32)[:, tf.newaxis, tf.newaxis, :]
'''


def _second_returned(source: str) -> str:
    ret = ast.parse(source).body[1].body[-1].value
    return ast.unparse(ret.elts[1])


def test_bare_look_ahead_is_fixed_from_the_written_out_source_padding():
    out = _findings(BARE.format(op="equal"), fix=True)
    assert [(f.code, f.fixable) for f in out.findings] == [("MF005", True)]
    assert _second_returned(out.new_source) == \
        "tf.maximum(tf.cast(tf.math.equal(tar, 0), tf.float32)[:, tf.newaxis, tf.newaxis, :], ahead)"
    # 1 marks tokens: the padding joins the look-ahead mask with minimum
    kept = _findings(BARE.format(op="not_equal"), fix=True)
    assert _second_returned(kept.new_source).startswith("tf.minimum(tf.cast(tf.math.not_equal(tar, 0)")


PATHS = '''import tensorflow as tf


class Heads(tf.keras.layers.Layer):
    def call(self, v, k, q, mask):
        return q


class Translator(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.att_self = Heads()
        self.att_memory = Heads()

    def call(self, src, tgt, look_ahead_mask, memory_mask):
        h = self.att_self(tgt, tgt, tgt, look_ahead_mask)
        return self.att_memory(src, src, h, memory_mask)


translator = Translator()


def pad(ids):
    return tf.cast(tf.math.equal(ids, 0), tf.float32)[:, tf.newaxis, tf.newaxis, :]


def ahead(n):
    return 1 - tf.linalg.band_part(tf.ones((n, n)), -1, 0)


def train_step(src, tgt):
    return translator(src, tgt, tf.maximum(pad(tgt), ahead(tf.shape(tgt)[1])), pad(src))


def generate(src, out):
    look = tf.maximum(pad(out), ahead(tf.shape(out)[1]))
    ids = out
    memory_mask = tf.cast(tf.math.equal(ids, 0), tf.float32)[:, tf.newaxis, tf.newaxis, :]
    return translator(src, out, look, memory_mask)
'''


def test_wrong_path_is_fixed_through_the_name_an_inlined_helper_binds():
    out = _findings(PATHS, fix=True)
    assert [(f.code, f.fixable) for f in out.findings] == [("MF011", True)]
    assert "    ids = src\n" in out.new_source
