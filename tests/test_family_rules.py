"""MF008 and MF009 on shapes their own examples and fixtures do not show."""
"""Shapes of the decoder-mask family rules beyond their own examples."""

from pathlib import Path

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


def test_mf011_reads_through_helpers_what_their_result_is_built_from():
    """A helper's result is built from the arguments it returns a value of, not from one it only
    takes the size of: the start tokens sized by the source are still the target."""
    source = RULES["MF011"].INVALID[0].replace(
        "def generate(src, out):\n    return model(src, out, None, padding(out))\n",
        "def start_tokens(ids, start_id):\n    return tf.fill((tf.shape(ids)[0], 1), start_id)\n\n\n"
        "def generate(src, start_id=1):\n    out = start_tokens(src, start_id)\n"
        "    memory_mask = padding(out)\n    return model(src, out, None, memory_mask)\n")
    assert "start_tokens(src, start_id)" in source
    assert [(f[0], f[2]) for f in findings(source)] == [("MF011", True)]
    assert "    memory_mask = padding(src)\n" in engine.rewrite_source(source)


def test_mf011_follows_a_closure_to_the_names_it_reads_and_fixes_it_there():
    source = RULES["MF011"].INVALID[0].replace(
        "def generate(src, out):\n    return model(src, out, None, padding(out))\n",
        "def generate(src, out):\n    def cross():\n        return padding(out)\n\n"
        "    return model(src, out, None, cross())\n")
    assert "def cross():" in source
    assert [(f[0], f[2]) for f in findings(source)] == [("MF011", True)]
    fixed = engine.rewrite_source(source)
    assert "        return padding(src)\n" in fixed and findings(fixed) == []


STACK_KERAS3 = (Path(__file__).parent / "fixtures" / "fam_stack_swapped_keras3" / "before.py").read_text()


def test_keras3_positional_attention_mask_is_the_seventh_argument_on_the_way_too():
    """Keras 3's MultiHeadAttention takes query_mask, value_mask and key_mask before
    attention_mask: the walks from a call down to the attentions bind it as the runtime does."""
    source = STACK_KERAS3.replace(
        "self.self_attn(query=x, value=x, key=x, attention_mask=step_keep)",
        "self.self_attn(x, x, x, None, None, None, step_keep)").replace(
        "self.cross_attn(query=x, value=memory, key=memory, attention_mask=memory_keep)",
        "self.cross_attn(x, memory, memory, None, None, None, memory_keep)")
    assert "None, None, None, memory_keep)" in source
    assert [(f[0], f[2]) for f in findings(source)] == [("MF010", True)]
    assert "x = block(x, memory, step_keep, memory_keep)" in engine.rewrite_source(source)


def test_attention_lists_walked_with_zip_or_enumerate_are_followed_on_the_way():
    source = STACK_KERAS3.replace(
        "        self.self_attn = layers.MultiHeadAttention(num_heads=heads, key_dim=width)\n"
        "        self.cross_attn = layers.MultiHeadAttention(num_heads=heads, key_dim=width)\n",
        "        self.selfs = [layers.MultiHeadAttention(num_heads=heads, key_dim=width)]\n"
        "        self.crosses = [layers.MultiHeadAttention(num_heads=heads, key_dim=width)]\n").replace(
        "        x = self.norm_1(x + self.self_attn(",
        "        for own, other in zip(self.selfs, self.crosses):\n"
        "            x = self.norm_1(x + own(").replace(
        "        return self.norm_2(x + self.cross_attn(",
        "            x = self.norm_2(x + other(").replace(
        "attention_mask=memory_keep))\n", "attention_mask=memory_keep))\n        return x\n").replace(
        "        for block in self.blocks:\n", "        for _, block in enumerate(self.blocks):\n")
    assert "zip(self.selfs, self.crosses)" in source and "enumerate(self.blocks)" in source
    compile(source, "m.py", "exec")
    assert [(f[0], f[2]) for f in findings(source)] == [("MF010", True)]
    assert "x = block(x, memory, step_keep, memory_keep)" in engine.rewrite_source(source)


def test_mf011_reads_a_call_in_a_forwarding_helper_at_the_helper_s_callers():
    source = RULES["MF011"].INVALID[0].replace(
        "def generate(src, out):\n    return model(src, out, None, padding(out))\n",
        "def run(src, tgt, cross):\n    return model(src, tgt, None, cross)\n\n\n"
        "def generate(src, out):\n    return run(src, out, padding(out))\n")
    assert "return run(src, out, padding(out))" in source
    found = findings(source)
    assert [(f[0], f[2]) for f in found] == [("MF011", True)] and "in generate," in found[0][1]
    assert "    return run(src, out, padding(src))\n" in engine.rewrite_source(source)
