"""Mask provenance: statement order, loops, helpers and attention layers of the project's own."""

import textwrap

import libcst as cst

from maskfix import cli, engine
from maskfix.flow.reaching import PARAMETER, Scope
from maskfix.syntax import forget_trees, index_tree, iter_nodes


def scope_of(code):
    module = cst.parse_module(textwrap.dedent(code))
    index_tree(module)
    fn = next(iter_nodes(module, cst.FunctionDef))
    return module, fn, Scope(fn)


def reaching_code(module, scope, name, use_index):
    uses = [n for n in iter_nodes(module, cst.Name) if n.value == name]
    values, is_param = scope.reaching(name, uses[use_index])
    return sorted(module.code_for_node(v) for v in values), is_param


def test_only_the_binding_that_reaches_a_use_counts():
    module, fn, scope = scope_of("""
        def f(a, b):
            m = a
            use(m)
            m = b
            use(m)
            if a:
                m = 1
            use(m)
    """)
    try:
        assert reaching_code(module, scope, "m", 1) == (["a"], False)
        assert reaching_code(module, scope, "m", 3) == (["b"], False)
        assert reaching_code(module, scope, "m", 5) == (["1", "b"], False)
        assert sorted(scope.assigns) == ["m"] and len(scope.assigns["m"]) == 3
    finally:
        forget_trees()


def test_loops_reach_a_fixpoint_and_returns_end_a_path():
    module, fn, scope = scope_of("""
        def f(x, n):
            y = x
            for i in range(n):
                use(y)
                y = g(y)
            while n:
                z = y
                n = n - 1
            if x:
                y = 0
                return y
            use(y)
    """)
    try:
        assert reaching_code(module, scope, "y", 1) == (["g(y)", "x"], False)
        assert reaching_code(module, scope, "y", -1) == (["g(y)", "x"], False)
        uses = [n for n in iter_nodes(module, cst.Name) if n.value == "x"]
        assert scope.reaching("x", uses[-1])[1]  # the parameter still reaches
        assert PARAMETER == -1
    finally:
        forget_trees()


DECODER = '''
import tensorflow as tf
from tensorflow.keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.self_attention = layers.MultiHeadAttention(2, 8)
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, enc, mask=None, enc_mask=None):
{body}
'''


def codes(body):
    source = DECODER.format(body=textwrap.indent(textwrap.dedent(body), " " * 8))
    return [f.code for f in engine.check_source(source)]


def test_a_rebound_mask_name_is_judged_by_the_binding_at_the_call():
    ok = """
        m = tf.cast(mask[:, tf.newaxis, :], "int32")
        x = self.self_attention(query=x, value=x, attention_mask=m)
        m = tf.cast(enc_mask[:, tf.newaxis, :], "int32")
        return self.cross_attention(query=x, value=enc, attention_mask=m)
    """
    bad = """
        m = tf.cast(enc_mask[:, tf.newaxis, :], "int32")
        x = self.self_attention(query=x, value=x)
        m = tf.cast(mask[:, tf.newaxis, :], "int32")
        return self.cross_attention(query=x, value=enc, attention_mask=m)
    """
    assert codes(ok) == []
    assert codes(bad) == ["MF001"]


def test_a_mask_set_on_one_branch_only_still_reaches():
    bad = """
        m = tf.cast(enc_mask[:, tf.newaxis, :], "int32")
        if mask is not None:
            m = tf.cast(mask[:, tf.newaxis, :], "int32")
        return self.cross_attention(query=x, value=enc, attention_mask=m)
    """
    ok = """
        if mask is not None:
            m = tf.cast(mask[:, tf.newaxis, :], "int32")
            x = self.self_attention(query=x, value=x, attention_mask=m)
        m = tf.cast(enc_mask[:, tf.newaxis, :], "int32")
        return self.cross_attention(query=x, value=enc, attention_mask=m)
    """
    assert codes(bad) == ["MF001"]
    assert codes(ok) == []


ATTENTION = '''
import tensorflow as tf


class Attention(tf.keras.layers.Layer):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.mha = tf.keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=d_model)

    def call(self, q, k, v, attn_mask=None):
        return self.mha(query=q, key=k, value=v, attention_mask=attn_mask)
'''

USER = '''
import tensorflow as tf
{imports}


class DecoderLayer(tf.keras.layers.Layer):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.self_attention = Attention(d_model, num_heads)
        self.cross_attention = Attention(d_model, num_heads)

    def call(self, x, enc, mask=None):
        n = tf.shape(x)[1]
        look_ahead = tf.linalg.band_part(tf.ones((1, n, n), tf.int32), -1, 0)
        x = self.self_attention(x, x, x, look_ahead)
        return self.cross_attention(x, enc, enc, {cross_mask})
'''


def test_an_attention_layer_from_a_sibling_module_binds_positionally():
    for imports in ("from attention import *", "from attention import Attention"):
        user = USER.format(imports=imports, cross_mask="look_ahead")
        out = engine.run({"attention.py": ATTENTION, "decoder.py": user}, fix=True)
        assert out["attention.py"].findings == [] and out["attention.py"].attention_layers == ["Attention"]
        (finding,) = out["decoder.py"].findings
        assert finding.code == "MF001" and finding.fixable and finding.line == 16
        assert "self.cross_attention(x, enc, enc, cross_attention_mask)" in out["decoder.py"].new_source
    # without the module that defines it, the class is unknown: nothing is claimed
    alone = USER.format(imports="from attention import *", cross_mask="look_ahead")
    assert engine.check_source(alone) == []
    # the same layer with the mask in a slot that is not the attention mask
    fine = USER.format(imports="from attention import *", cross_mask="None")
    assert engine.run({"attention.py": ATTENTION, "decoder.py": fine})["decoder.py"].findings == []


def test_cli_follows_an_attention_layer_into_files_the_screens_pass_by(tmp_path, capsys):
    (tmp_path / "attention.py").write_text(ATTENTION)
    (tmp_path / "decoder.py").write_text(USER.format(imports="from attention import *", cross_mask="look_ahead"))
    assert cli.main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "decoder.py:16:" in out and "MF001" in out


def test_helpers_are_summarised_by_what_they_return():
    key_side = """
        def spread(m):
            return tf.cast(m[:, tf.newaxis, :], "int32")

        return self.cross_attention(query=x, value=enc, attention_mask=spread(mask))
    """
    query_side = key_side.replace("m[:, tf.newaxis, :]", "m[:, :, tf.newaxis]")
    as_lambda = """
        rows = lambda m: tf.cast(m[:, :, tf.newaxis], "int32")
        return self.cross_attention(query=x, value=enc, attention_mask=rows(mask))
    """
    ignores_its_argument = """
        def ones(m):
            return tf.ones((1, 1, 1), "int32")

        return self.cross_attention(query=x, value=enc, attention_mask=ones(mask))
    """
    assert codes(key_side) == ["MF001"]
    assert codes(query_side) == []
    assert codes(as_lambda) == []
    assert codes(ignores_its_argument) == []
    assert codes(as_lambda.replace("m[:, :, tf.newaxis]", "m[:, tf.newaxis, :]")) == ["MF001"]


def test_a_decoder_star_imported_from_a_sibling_module_is_threaded():
    from pathlib import Path

    layer = (Path(__file__).parent / "fixtures" / "book_tf" / "before.py").read_text().split("def build(")[0]
    user = (
        "from tensorflow import keras\nimport tensorflow as tf\n"
        "from layers_mod import *\n\n"
        "src = keras.Input(shape=(None,), dtype='int64')\n"
        "x = PositionalEmbedding(10, 40, 16)(src)\n"
        "enc = TransformerEncoder(16, 32, 2)(x)\n"
        "tgt = keras.Input(shape=(None,), dtype='int64')\n"
        "y = PositionalEmbedding(10, 40, 16)(tgt)\n"
        "y = TransformerDecoder(16, 32, 2)(y, enc)\n"
    )
    out = engine.run({"layers_mod.py": layer, "train.py": user}, fix=True)
    assert "encoder_padding_mask=None" in out["layers_mod.py"].new_source
    assert "TransformerDecoder(16, 32, 2)(y, enc, encoder_padding_mask=encoder_padding_mask)" in out["train.py"].new_source
    # used decoder-only through the star import: not flagged
    gen = "from layers_mod import *\n\ndef gen(x):\n    return TransformerDecoder(16, 32, 2)(x, x)\n"
    assert engine.run({"layers_mod.py": layer, "gen.py": gen})["layers_mod.py"].findings == []


def _swapped_split():
    from pathlib import Path

    source = (Path(__file__).parent / "fixtures" / "fam_factory_swapped" / "before.py").read_text()
    head, factory = source.split("\n\ndef create_masks(", 1)
    factory, train = factory.split("\n\ndef train_step(", 1)
    helpers = head.split("\n\ndef scaled_attention(", 1)[0]
    masks = helpers + "\n\ndef create_masks(" + factory + "\n"
    model = "import tensorflow as tf\n" + head.split("\n\ndef look_ahead(", 1)[1].split("\n\n", 1)[1]
    return masks, model, "\n\ndef train_step(" + train


def test_swapped_factory_masks_are_followed_across_files_and_renames():
    masks, model, train = _swapped_split()
    for imports in ("from masks import *\n", "from masks import create_masks\n"):
        out = engine.run({"masks.py": masks, "model.py": imports + model + train}, fix=True)
        assert out["masks.py"].findings == []
        (finding,) = out["model.py"].findings
        assert finding.code == "MF006" and finding.fixable
        assert "enc_padding_mask, combined_mask, dec_padding_mask)" in out["model.py"].new_source
    renamed = train.replace(
        "    return transformer(inp, tar_inp, True, enc_padding_mask, dec_padding_mask, combined_mask)",
        "    ahead, cross = combined_mask, dec_padding_mask\n"
        "    return transformer(inp, tar_inp, True, enc_padding_mask, cross, ahead)")
    out = engine.run({"masks.py": masks, "model.py": "from masks import *\n" + model + renamed})
    assert [f.code for f in out["model.py"].findings] == ["MF006"]
    right = renamed.replace("cross, ahead)", "ahead, cross)")
    assert engine.run({"masks.py": masks, "model.py": "from masks import *\n" + model + right})["model.py"].findings == []


def test_an_attention_layer_of_the_same_name_in_another_file_does_not_hide_this_files():
    other = ATTENTION.replace("def call(self, q, k, v, attn_mask=None)", "def call(self, v, k, q, attn_mask=None)")
    user = USER.format(imports="", cross_mask="look_ahead").replace("import tensorflow as tf\n", "", 1)
    both = ATTENTION + user
    out = engine.run({"a_other.py": other, "z_model.py": both})
    assert [f.code for f in out["z_model.py"].findings] == ["MF001"]


def test_a_closure_reads_the_bindings_that_reach_its_call():
    late = """
        def spread():
            return tf.cast(m[:, tf.newaxis, :], "int32")

        m = enc_mask
        x = self.self_attention(query=x, value=x, attention_mask=spread())
        m = mask
        return self.cross_attention(query=x, value=enc, attention_mask=spread())
    """
    early = late.replace("m = enc_mask", "m = @").replace("m = mask", "m = enc_mask").replace("m = @", "m = mask")
    assert codes(late) == ["MF001"]
    assert codes(early) == []


def test_positions_passed_to_a_helper_still_make_a_causal_pattern():
    steps = """
        def order(i, j):
            return tf.cast(i >= j, "int32")

        steps = tf.range(tf.shape(x)[1])
        return self.cross_attention(query=x, value=enc, attention_mask=order(steps[:, None], steps[None, :]))
    """
    not_positions = steps.replace("tf.range(tf.shape(x)[1])", "tf.shape(x)")
    assert codes(steps) == ["MF001"]
    assert codes(not_positions) == []


KERAS3 = '''
import keras
from keras import layers, ops


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, x, enc, mask=None):
        m = ops.cast(mask[:, None, :], "int32")
        return self.cross_attention({args})
'''


def test_positional_attention_mask_binds_as_each_runtime_declares_it():
    def found(source, args):
        return [f.code for f in engine.check_source(source.format(args=args))]

    # Keras 3: query_mask, value_mask, key_mask come before attention_mask
    assert found(KERAS3, "x, enc, enc, None, None, None, m") == ["MF001"]
    assert found(KERAS3, "x, enc, enc, m") == []  # m is the query mask there
    tf_keras = DECODER.format(body=textwrap.indent(textwrap.dedent("""
        m = tf.cast(mask[:, tf.newaxis, :], "int32")
        return self.cross_attention(x, enc, enc, m)
    """), " " * 8))
    assert [f.code for f in engine.check_source(tf_keras)] == ["MF001"]
    out = engine.run({"d.py": KERAS3.format(args="x, enc, enc, None, None, None, m")}, fix=True)["d.py"]
    assert "self.cross_attention(x, enc, enc, None, None, None, cross_attention_mask)" in out.new_source


def test_a_layer_applied_by_keyword_is_traced_to_its_input():
    from maskfix.trace import Body, trace_root

    module = cst.parse_module("s = keras.Input(shape=(None,))\nenc = attention(query=s, value=s)\n")
    body = Body(module, list(module.body), {id(st): i for i, st in enumerate(module.body)})
    expr = cst.parse_expression("enc")
    root = trace_root(expr, body, 2, {"attention": cst.parse_expression("layers.MultiHeadAttention(2, 8)")})
    assert root is not None and root.name == "s" and root.input_call is not None


def test_an_attention_applied_by_a_helper_is_judged_at_the_call_of_the_helper():
    bad = """
        def attend(layer, q, kv, m):
            return layer(query=q, value=kv, attention_mask=m)

        pad = tf.cast(mask[:, tf.newaxis, :], "int32")
        return attend(self.cross_attention, x, enc, pad)
    """
    assert codes(bad) == ["MF001"]
    assert codes(bad.replace("mask[:", "enc_mask[:")) == []
    assert codes(bad.replace("x, enc, pad)", "x, x, pad)")) == []  # decoder-only: no cross-attention
    source = DECODER.format(body=textwrap.indent(textwrap.dedent(bad), " " * 8))
    fixed = engine.run({"d.py": source}, fix=True)["d.py"].new_source
    assert "return attend(self.cross_attention, x, enc, cross_attention_mask)" in fixed


# A decoder is read from what Keras gives it: its input over the target, the encoder output over
# the source, the mask of its first input. What the cross-attention's mask is made of decides.
TARGET_SIDE = """
import tensorflow as tf
from tensorflow.keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.self_attention = layers.MultiHeadAttention(2, 8)
        self.cross_attention = layers.MultiHeadAttention(2, 8)

    def call(self, tokens, enc):
        h = self.self_attention(query=tokens, value=tokens, key=tokens, use_causal_mask=True)
        keep = {mask}
        return self.cross_attention(query=h, value=enc, key=enc, attention_mask=keep)
"""


def codes_of(source):
    return [f.code for f in engine.check_source(source)]


def test_padding_built_from_the_decoders_own_input_is_the_decoders_padding():
    # the decoder's input ids (or the mask Keras attached to them) hide target positions
    for mask in ("tf.cast(tf.math.not_equal(tokens, 0), 'int32')[:, tf.newaxis, :]",
                 "tf.expand_dims(tokens._keras_mask, 1)",
                 "tf.repeat(tf.math.not_equal(tokens, 0)[:, None, :], 2, axis=0)"):
        assert codes_of(TARGET_SIDE.format(mask=mask)) == ["MF001"], mask


def test_padding_of_the_encoders_input_or_of_the_query_rows_is_right():
    for mask in ("tf.cast(tf.math.not_equal(enc, 0), 'int32')[:, tf.newaxis, :]",
                 "tf.expand_dims(enc._keras_mask, 1)",
                 "tf.math.not_equal(tokens, 0)[:, :, tf.newaxis]",
                 "tf.expand_dims(tf.math.not_equal(tokens, 0), -1)"):
        assert codes_of(TARGET_SIDE.format(mask=mask)) == [], mask


def test_what_an_unmodelled_operation_returns_is_still_made_of_its_inputs():
    # an op the interpreter does not know keeps the provenance of its inputs, not their polarity
    masked = "tf.minimum(tf.math.not_equal(tokens, 0)[:, None, :], some_library.mystery(enc))"
    assert codes_of(TARGET_SIDE.format(mask=masked)) == ["MF001"]
    assert codes_of(TARGET_SIDE.format(mask="some_library.mystery(enc)")) == []


def test_the_layer_handed_to_a_helper_runs_its_own_methods():
    source = TARGET_SIDE.format(mask="causal_of(self, tokens)").replace(
        "    def call(", "    def lower(self, x):\n"
        "        n = tf.shape(x)[1]\n"
        "        return tf.linalg.band_part(tf.ones((n, n)), -1, 0)[tf.newaxis]\n\n"
        "    def call(") + "\n\ndef causal_of(layer, x):\n    return layer.lower(x)\n"
    assert codes_of(source) == ["MF001"]


HUB_STACK = """
import keras
import keras_hub


class Translator(keras.Model):
    def __init__(self, depth=2):
        super().__init__()
        self.embed = keras.layers.Embedding(60, 16)
        self.blocks = []
        for _ in range(depth):
            block = keras_hub.layers.TransformerDecoder(32, 2)
            self.blocks.append(block)
        self.more = [keras_hub.layers.TransformerDecoder(32, 2) for _ in range(depth)]

    def call(self, inputs):
        src, tgt = inputs
        memory, y = self.embed(src), self.embed(tgt)
        for block in {attr}:
            y = block(y, memory, encoder_padding_mask=keras.ops.not_equal({ids}, 0))
        return y
"""


def test_keras_hub_decoders_kept_in_lists_are_read_in_their_loops():
    for attr in ("self.blocks", "self.more"):
        assert codes_of(HUB_STACK.format(attr=attr, ids="tgt")) == ["MF001"], attr
        assert codes_of(HUB_STACK.format(attr=attr, ids="src")) == [], attr


DICT_OF_LAYERS = """
import tensorflow as tf
from tensorflow.keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.attn = {"self": layers.MultiHeadAttention(2, 8), "cross": layers.MultiHeadAttention(2, 8)}

    def call(self, x, enc, mask=None):
        pad = tf.cast(mask[:, tf.newaxis, :], "int32")
        h = self.attn["self"](query=x, value=x, key=x, use_causal_mask=True)
        return self.attn["cross"](query=h, value=enc, key=enc, attention_mask=pad)
"""


def test_attention_layers_kept_in_a_dict_are_found_by_the_cli(tmp_path, capsys):
    (tmp_path / "decoder.py").write_text(DICT_OF_LAYERS)
    assert cli.main(["check", "--no-cache", str(tmp_path)]) == 1
    assert "decoder.py:14:" in capsys.readouterr().out
