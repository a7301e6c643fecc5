"""MF008 and MF009 on shapes their own examples and fixtures do not show."""
"""Shapes of the decoder-mask family rules beyond their own examples."""

from maskfix import engine
from maskfix.rules import RULES


def run(sources, fix=False):
    out = engine.run(sources, fix=fix)
    for key, o in out.items():
        assert o.error is None, (key, o.error)
    return out


def codes(source):
    return [(f.code, f.fixable) for f in run({"m.py": source})["m.py"].findings]


MF009_TUTORIAL = RULES["MF009"].INVALID[0]


def test_an_additive_mask_is_reported_not_fixed():
    src = MF009_TUTORIAL.replace(
        "return self.layer(x, enc_output, look_ahead_mask, create_padding_mask(inp))",
        "return self.layer(x, enc_output, look_ahead_mask * -1e9, create_padding_mask(inp) * -1e9)")
    found = run({"m.py": src}, fix=True)["m.py"]
    assert [(f.code, f.fixable) for f in found.findings] == [("MF009", False)] * 2
    assert "additive" in found.findings[0].message and found.new_source is None


def test_keras3_key_and_query_masks_are_read_too():
    src = '''import keras
from keras import layers, ops


class Block(layers.Layer):
    def __init__(self):
        super().__init__()
        self.cross = layers.MultiHeadAttention(2, 4)

    def call(self, x, enc, src_ids):
        return self.cross(x, enc, key_mask=ops.equal(src_ids, 0))
'''
    out = run({"m.py": src}, fix=True)["m.py"]
    assert [(f.code, f.fixable) for f in out.findings] == [("MF009", True)]
    assert "key_mask=ops.logical_not(ops.equal(src_ids, 0))" in out.new_source
    assert codes(src.replace("ops.equal(", "ops.not_equal(")) == []


def test_own_attention_named_like_keras_is_left_alone():
    own = '''import tensorflow as tf


class MultiHeadAttention(tf.keras.layers.Layer):
    def call(self, v, k, q, mask):
        return q + tf.reduce_sum(mask * -1e9)


class Block(tf.keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.mha = MultiHeadAttention()

    def call(self, x, ids):
        return self.mha(x, x, x, tf.cast(tf.math.equal(ids, 0), tf.float32))
'''
    assert codes(own) == []
    keras_subclass = own.replace("class MultiHeadAttention(tf.keras.layers.Layer):",
                                 "class MultiHeadAttention(tf.keras.layers.MultiHeadAttention):")
    assert codes(keras_subclass) == [("MF009", True)]


WRAPPED = '''import keras
from keras import layers


class Attention(layers.Layer):
    def __init__(self, dim):
        super().__init__()
        self.mha = layers.MultiHeadAttention(2, dim)

    def call(self, q, kv, causal=False):
        return self.mha(q, kv, use_causal_mask=causal)


class Decoder(layers.Layer):
    def __init__(self, dim):
        super().__init__()
        self.attend_self = Attention(dim)
        self.attend_source = Attention(dim)

    def call(self, x, enc):
        x = x + self.attend_self(x, x)
        return x + self.attend_source(x, enc)
'''


def test_mf008_fixes_a_project_attention_through_its_own_flag():
    train = "from model import Decoder\n\n\ndef pairs(t):\n    return t[:, :-1], t[:, 1:]\n"
    out = run({"model.py": WRAPPED, "train.py": train}, fix=True)
    (finding,) = out["model.py"].findings
    assert finding.code == "MF008" and finding.fixable and "train.py:" in finding.message
    assert "x = x + self.attend_self(x, x, causal=True)" in out["model.py"].new_source
    assert "self.attend_source(x, enc)\n" in out["model.py"].new_source
    # alone, the decoder shows no sign of teacher forcing
    assert run({"model.py": WRAPPED})["model.py"].findings == []


def test_mf008_reads_a_flag_it_cannot_decide_as_unknown():
    src = RULES["MF008"].INVALID[0].replace("self.self_attn(x, x)", "self.self_attn(x, x, use_causal_mask=self.causal)")
    assert codes(src) == []
def findings(source):
    return [(f.code, f.message, f.fixable) for f in engine.check_source(source)]


def test_a_path_that_drops_the_cross_mask_is_reported_not_fixed():
    source = RULES["MF011"].MISSING
    assert findings(source) == [(
        "MF011", "in generate, the call of Translator gets no cross-attention mask, while train_step "
        "builds it from the source; build it from the source `src`", False)]
    assert engine.rewrite_source(source) == source


def test_swaps_at_the_call_stay_mf006_and_further_down_are_mf010():
    mf010 = RULES["MF010"]
    at_call = mf010.VALID[1]
    assert [f[0] for f in findings(at_call)] == ["MF006"]
    inside = mf010.INVALID[0]
    assert [f[0] for f in findings(inside)] == ["MF010"]
    fixed = engine.rewrite_source(inside)
    assert "x = self.mha1(x, x, x, look_ahead_mask)" in fixed
    assert "return self.mha2(enc_output, enc_output, x, padding_mask)" in fixed


def test_an_exchange_at_the_call_and_one_inside_cancel_out():
    both = RULES["MF010"].INVALID[0].replace(
        "self.decoder(tar, enc_output, combined_mask, dec_padding_mask)",
        "self.decoder(tar, enc_output, dec_padding_mask, combined_mask)")
    assert findings(both) == []


def test_a_mask_parameter_keras_fills_itself_is_not_missing():
    """``call(self, x, memory, memory_mask=None)``: Keras 3 fills ``memory_mask`` from the mask
    attached to ``memory``, so a call that leaves it out is not a path without a mask."""
    source = RULES["MF011"].MISSING.replace("look_ahead_mask, memory_mask)", "look_ahead_mask, src_mask=None)")
    source = source.replace("memory, memory, x, memory_mask)", "memory, memory, x, src_mask)")
    source = source.replace("return model(src, out, None, None)", "return model(src, out, None)")
    assert "src_mask=None" in source and "model(src, out, None)" in source
    assert findings(source) == []
    dropped = source.replace("return model(src, out, None)", "return model(src, out, None, None)")
    assert [f[0] for f in findings(dropped)] == ["MF011"]
