"""The run's symbol table: a layer or helper defined in one source and imported by another is
followed by every rule as if both were one file, and a problem is reported (and fixed) in the
source that holds it."""

from pathlib import Path

import libcst as cst
import pytest

from maskfix import engine
from maskfix.symbols import Symbols, could_be, imported_names

FIXTURES = Path(__file__).parent / "fixtures"

LAYERS = '''import tensorflow as tf


class Heads(tf.keras.layers.Layer):
    def call(self, v, k, q, mask):
        return q


class DecoderLayer(tf.keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.mha1 = Heads()
        self.mha2 = Heads()

    def call(self, x, enc_output, look_ahead_mask, padding_mask):
        x = self.mha1(x, x, x, {self_mask})
        return self.mha2(enc_output, enc_output, x, {cross_mask})
'''

MAIN = '''import tensorflow as tf
from layers import {imports}


def create_padding_mask(seq):
    seq = tf.cast(tf.math.equal(seq, 0), tf.float32)
    return seq[:, tf.newaxis, tf.newaxis, :]


def create_look_ahead_mask(size):
    return 1 - tf.linalg.band_part(tf.ones((size, size)), -1, 0)


def create_masks(inp, tar):
    enc_padding_mask = create_padding_mask(inp)
    dec_padding_mask = create_padding_mask(inp)
    look_ahead_mask = create_look_ahead_mask(tf.shape(tar)[1])
    combined_mask = tf.maximum(create_padding_mask(tar), look_ahead_mask)
    return enc_padding_mask, combined_mask, dec_padding_mask


class Transformer(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.decoder = {layer}()

    def call(self, inp, tar, enc_output):
        enc_padding_mask, combined_mask, dec_padding_mask = create_masks(inp, tar)
        return self.decoder(tar, enc_output, {first}, {second})
'''


def _run(layers: str, main: str, fix: bool = False):
    return engine.run({"layers.py": layers, "main.py": main}, fix=fix)


def _codes(out):
    return {k: [f.code for f in o.findings] for k, o in out.items()}


def test_imports_resolve_by_name_alias_and_star():
    a = cst.parse_module("class A:\n    pass\n\n\ndef f():\n    pass\n")
    b = cst.parse_module("from a import A as B, f\n")
    c = cst.parse_module("from a import *\n")
    d = cst.parse_module("from a import f\n\n\ndef f():\n    pass\n")
    symbols = Symbols([("a.py", a), ("b.py", b), ("c.py", c), ("d.py", d)])
    assert imported_names(b) == {"B": "A", "f": "f"}
    assert symbols.classes("b.py")["B"].key == "a.py" and symbols.functions("b.py")["f"].key == "a.py"
    assert set(symbols.classes("c.py")) == {"A"}
    assert symbols.functions("d.py")["f"].key == "d.py"  # a source's own definition comes first
    assert sorted(symbols.users(symbols.classes("a.py")["A"])) == [("b.py", "B"), ("c.py", "A")]


def test_swapped_call_is_judged_through_an_imported_attention_class():
    # Heads takes (v, k, q, mask): read in layers.py, it says which attention is the cross one
    layers = LAYERS.format(self_mask="look_ahead_mask", cross_mask="padding_mask")
    swapped = MAIN.format(imports="DecoderLayer", layer="DecoderLayer",
                          first="dec_padding_mask", second="combined_mask")
    out = _run(layers, swapped, fix=True)
    assert _codes(out) == {"layers.py": [], "main.py": ["MF006"]}
    assert "self.decoder(tar, enc_output, combined_mask, dec_padding_mask)" in out["main.py"].new_source
    right = MAIN.format(imports="DecoderLayer", layer="DecoderLayer",
                        first="combined_mask", second="dec_padding_mask")
    assert _codes(_run(layers, right)) == {"layers.py": [], "main.py": []}


def test_hop_in_an_imported_layer_is_reported_and_fixed_in_its_own_source():
    layers = LAYERS.format(self_mask="padding_mask", cross_mask="look_ahead_mask")
    for imports, layer in (("DecoderLayer", "DecoderLayer"), ("DecoderLayer as Dec", "Dec"), ("*", "DecoderLayer")):
        main = MAIN.format(imports=imports, layer=layer, first="combined_mask", second="dec_padding_mask")
        out = _run(layers, main, fix=True)
        assert _codes(out) == {"layers.py": ["MF010"], "main.py": []}, imports
        assert out["layers.py"].findings[0].line == 17
        fixed = out["layers.py"].new_source
        assert "self.mha1(x, x, x, look_ahead_mask)" in fixed and "x, padding_mask)" in fixed
        assert out["main.py"].new_source is None


POLARITY_LAYER = '''from tensorflow.keras import layers


class DecoderLayer(layers.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        self.mha1 = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)
        self.mha2 = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)

    def call(self, x, enc_output, look_ahead_mask, padding_mask):
        x = x + self.mha1(x, x, attention_mask=look_ahead_mask)
        return x + self.mha2(x, enc_output, attention_mask=padding_mask)
'''

POLARITY_MAIN = '''import tensorflow as tf
from tensorflow.keras import layers
from decoder_layer import DecoderLayer


def create_padding_mask(seq):
    return tf.cast(tf.math.equal(seq, 0), tf.float32)[:, tf.newaxis, :]


class Decoder(layers.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        self.layer = DecoderLayer(dim, heads)

    def call(self, x, enc_output, inp, tar):
        return self.layer(x, enc_output, create_padding_mask(tar), create_padding_mask(inp))
'''


def test_layer_parameters_are_bound_from_calls_in_importing_sources():
    out = engine.run({"decoder_layer.py": POLARITY_LAYER, "main.py": POLARITY_MAIN}, fix=True)
    assert _codes(out) == {"decoder_layer.py": ["MF009", "MF009"], "main.py": []}
    assert "attention_mask=1 - look_ahead_mask" in out["decoder_layer.py"].new_source
    # alone, the layer's masks are unknown: nothing to judge
    assert _codes(engine.run({"decoder_layer.py": POLARITY_LAYER})) == {"decoder_layer.py": []}


IMPLICIT_LAYER = '''import keras
from keras import layers


class Decoder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.self_attention = layers.MultiHeadAttention(2, 8)
        self.cross_attention = layers.MultiHeadAttention(2, 8)
        self.supports_masking = True

    def call(self, x, memory):
        x = x + self.self_attention(query=x, value=x, key=x, use_causal_mask=True)
        return x + self.cross_attention(query=x, value=memory, key=memory)
'''

IMPLICIT_MAIN = '''import keras
from keras import layers
from decoder import Decoder

source = keras.Input(shape=(None,), dtype="int32")
memory = layers.Embedding(100, 8, mask_zero=True)(source)
target = keras.Input(shape=(None,), dtype="int32")
memory_in = keras.Input(shape=(None, 8))
y = Decoder()(layers.Embedding(100, 8, mask_zero=True)(target), memory_in)
decoder = keras.Model([target, memory_in], y)
model = keras.Model([source, target], decoder([target, memory]))
encoder = keras.Model(source, memory)


def next_token(source_ids, target_ids):
    return decoder.predict([target_ids, encoder.predict(source_ids)])[:, -1].argmax(-1)
'''


def test_implicit_decoder_is_judged_by_the_sub_models_of_importing_sources():
    out = engine.run({"decoder.py": IMPLICIT_LAYER, "main.py": IMPLICIT_MAIN}, fix=True)
    assert _codes(out) == {"decoder.py": ["MF012"], "main.py": []}
    assert "(main.py:16)" in out["decoder.py"].findings[0].message
    assert "attention_mask=cross_attention_mask" in out["decoder.py"].new_source
    # the sub-model in the importing source gets the new input, and predict passes it
    assert 'name="encoder_padding_mask"' in out["main.py"].new_source
    again = engine.run({"decoder.py": out["decoder.py"].new_source, "main.py": out["main.py"].new_source})
    assert _codes(again) == {"decoder.py": [], "main.py": []}


SEQ2SEQ = '''import keras
from keras import layers
from {module} import {name}


def translator(vocab=64, dim=16):
    source = keras.Input(shape=(None,), dtype="int32")
    target = keras.Input(shape=(None,), dtype="int32")
    memory = layers.Embedding(vocab, dim, mask_zero=True)(source)
    h = layers.Embedding(vocab, dim, mask_zero=True)(target)
    h = Block(dim, 2)(h, memory)
    return keras.Model([source, target], layers.Dense(vocab)(h))
'''


@pytest.mark.parametrize("module, name, found", [
    ("models.blocks", "Block", ["MF001"]),  # the run's own module
    ("models", "Block", ["MF001"]),  # its package, which may re-export it
    ("models.blocks", "*", ["MF001"]),
    ("keras_hub.layers", "Block", []),  # a library's class of the same name
    ("keras_hub.layers", "*", []),
])
def test_an_import_stands_for_a_class_of_the_run_only_when_its_module_may_be_that_file(module, name, found):
    # the block is used decoder-only where it is defined; the other file calls a `Block` with an
    # encoder's outputs: MF001 only when that `Block` can be this one
    blocks = (FIXTURES / "neg_decoder_only_stack" / "before.py").read_text()
    out = engine.run({"models/blocks.py": blocks, "train.py": SEQ2SEQ.format(module=module, name=name)})
    assert [f.code for f in out["models/blocks.py"].findings] == found
    symbols = Symbols([(k, cst.parse_module(v)) for k, v in
                       {"models/blocks.py": blocks, "train.py": SEQ2SEQ.format(module=module, name=name)}.items()])
    assert ("Block" in symbols.classes("train.py")) == bool(found)


@pytest.mark.parametrize("tail, key, expected", [
    ("blocks", "models/blocks.py", True),
    ("models", "models/blocks.py", True),
    ("models", "models/__init__.py", True),
    ("", "anything.py", True),  # from . import x
    ("layers", "models/blocks.py", False),
    ("block", "models/blocks.py", False),
])
def test_a_module_may_be_a_file_by_its_name_or_a_folder_on_its_path(tail, key, expected):
    assert could_be(tail, key) is expected
