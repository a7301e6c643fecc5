"""The prefilter stages never cost recall, and files found only by name are still threaded."""

import shutil
from pathlib import Path

import pytest

from maskfix import cli, engine
from maskfix.cli import main
from maskfix.files import discover_stat
from maskfix.notebook import Notebook, NotPythonNotebook
from maskfix.analysis_process import AnalysisProcess
from maskfix.prefilter import Imports, might_match, module_name
from maskfix.rules.mf004_cross_mask_from_target import CORRECT_FACTORY
from maskfix.screen import worth_parsing

FIXTURES = Path(__file__).parent / "fixtures"
# Variants with an XFAIL marker are known gaps; tests/test_fixtures.py checks their screens.
VARIANTS = sorted(p.name for p in FIXTURES.iterdir()
                  if (p / "before.py").exists() and not (p / "XFAIL").exists())
WITH_FINDINGS = [v for v in VARIANTS if (FIXTURES / v / "expected.txt").read_text().strip()]
NOTEBOOKS = sorted((FIXTURES / "notebooks").glob("*.ipynb"))


def read(variant, name="before.py"):
    with open(FIXTURES / variant / name, newline="") as fh:
        return fh.read()


def test_there_are_fixtures_with_findings():
    assert len(WITH_FINDINGS) >= 18


@pytest.mark.parametrize("variant", WITH_FINDINGS)
def test_every_fixture_with_a_finding_passes_every_stage(variant):
    source = read(variant)
    assert might_match(source.encode())
    assert worth_parsing(source)


@pytest.mark.parametrize("variant", VARIANTS)
def test_screen_agrees_with_the_engine(variant):
    source = read(variant)
    if engine.check_source(source):
        assert worth_parsing(source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_with_findings_pass_every_stage(path):
    raw = path.read_bytes()
    try:
        source = Notebook.parse(raw).source
    except NotPythonNotebook:
        return
    if engine.check_source(source):
        assert might_match(raw)
        assert worth_parsing(source)


def test_unparsable_sources_are_kept_for_libcst_to_report():
    assert worth_parsing("class X(:\n    pass\n")


def test_lookalikes_are_screened_out():
    encoder_only = (
        "import keras\n\nclass Enc(keras.layers.Layer):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.att = keras.layers.MultiHeadAttention(2, 8)\n"
        "    def call(self, x, mask=None):\n"
        "        return self.att(query=x, value=x, attention_mask=mask)\n"
    )
    assert not worth_parsing(encoder_only)
    assert not worth_parsing("import numpy as np\n\ndef f(x):\n    return np.tril(x)\n")


DECODER_USER = (
    "from tensorflow import keras\nimport tensorflow as tf\n"
    "from layers_mod import PositionalEmbedding, TransformerEncoder, TransformerDecoder\n\n"
    "{extra}"
    "src = keras.Input(shape=(None,), dtype='int64')\n"
    "x = PositionalEmbedding(10, 40, 16)(src)\n"
    "enc = TransformerEncoder(16, 32, 2)(x)\n"
    "tgt = keras.Input(shape=(None,), dtype='int64')\n"
    "y = PositionalEmbedding(10, 40, 16)(tgt)\n"
    "y = TransformerDecoder(16, 32, 2)(y, enc)\n"
)


@pytest.mark.parametrize("extra", ["", "ATTENTION = keras.layers.MultiHeadAttention  # screened out\n\n"],
                         ids=["no-needle", "needle-but-screened"])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_call_site_in_another_file_is_threaded_through_the_cli(tmp_path, capsys, extra, jobs):
    shutil.copy(FIXTURES / "book_tf" / "before.py", tmp_path / "full.py")
    (tmp_path / "layers_mod.py").write_text(read("book_tf").split("def build(")[0])
    user = DECODER_USER.format(extra=extra)
    assert not worth_parsing(user)
    (tmp_path / "train.py").write_text(user)
    for i in range(300):  # enough files for the parallel path
        (tmp_path / f"filler_{i}.py").write_text(f"x = {i}\n")
    assert main(["rewrite", "-j", jobs, str(tmp_path)]) == 1
    new_user = (tmp_path / "train.py").read_text()
    assert "encoder_padding_mask = tf.math.not_equal(src, 0)" in new_user
    assert "TransformerDecoder(16, 32, 2)(y, enc, encoder_padding_mask=encoder_padding_mask)" in new_user
    capsys.readouterr()
    assert main(["check", "-j", jobs, str(tmp_path)]) == 0


FACTORY = (
    "import tensorflow as tf\n\n\n"
    "def create_masks(inp, tar):\n"
    "    enc_padding_mask = padding(inp)\n"
    "    look_ahead = 1 - tf.experimental.numpy.tril(square_of_ones(tar))\n"
    "    {body}\n"
)


@pytest.mark.parametrize("body", [
    "return enc_padding_mask, look_ahead, enc_padding_mask",
    "return (\n        enc_padding_mask,\n        look_ahead,\n        enc_padding_mask,\n    )",
    "masks = (\n        enc_padding_mask,  # (batch, 1, 1, src)\n        look_ahead, enc_padding_mask)\n"
    "    return masks",
], ids=["one-line", "multi-line", "bound-multi-line"])
def test_a_factory_returning_three_masks_passes_however_the_tuple_is_laid_out(body):
    assert might_match(FACTORY.format(body=body).encode())


@pytest.mark.parametrize("body", [
    "x = tf.concat([enc_padding_mask, look_ahead], axis=-1)\n    return tf.reshape(x, (1, 2, -1))",
    "return f(enc_padding_mask, look_ahead, 'a, b')",
    "return enc_padding_mask, look_ahead",
], ids=["three-arguments", "one-call", "pair"])
def test_a_two_parameter_function_returning_no_triple_fails_the_byte_prefilter(body):
    assert not might_match(FACTORY.format(body=body).encode())


HELPED = (
    "import tensorflow as tf\n\n"
    "def ones_below(n):\n"
    "    return tf.linalg.band_part(tf.ones((n, n)), -1, 0)\n\n"
    "def look_ahead(n):\n"
    "    return 1 - ones_below(n)\n\n"
    "def {name}(inp, tar):\n"
    "    pad = tf.cast(tf.equal(inp, 0), tf.float32)\n"
    "    future = {call}(tf.shape(tar)[1])\n"
    "    return pad, future, pad\n"
)


def test_a_factory_whose_triangle_lies_two_helpers_away_passes():
    assert might_match(HELPED.format(name="create_masks", call="look_ahead").encode())


def test_a_triple_returned_beside_an_unrelated_triangle_fails_the_byte_prefilter():
    # a triangle op in the file, and a two-parameter function returning three things that never
    # reaches it: no factory (the linear-algebra modules of TensorFlow and Keras are full of them)
    assert not might_match(HELPED.format(name="split_three", call="tf.range").encode())


ENCODER = (
    "import keras\n\nclass Block(keras.layers.Layer):\n"
    "    def __init__(self, dim):\n        super().__init__()\n"
    "        if dim % 2 == 0:\n            dim += 1\n"
    "        self.norm = keras.layers.LayerNormalization(epsilon=1e-6)\n"
    "        self.att = keras.layers.MultiHeadAttention(2, dim)\n"
    "    def call(self, x, mask=None):\n"
    "        {mask}\n"
    "        return self.norm(x + self.att(x, x, attention_mask=mask))\n"
)


def test_an_encoder_with_an_epsilon_and_a_test_against_zero_is_screened_out():
    assert not worth_parsing(ENCODER.format(mask="pass"))


@pytest.mark.parametrize("mask", [
    "mask = tf.cast(tf.math.equal(mask, 0), tf.float32)",
    "mask = mask == 0",
    "mask = (1.0 - mask) * -1e9",
    "mask = ops.where(mask, 0.0, -10000.0)",
    "mask = ~mask",
])
def test_an_encoder_that_builds_a_mask_hiding_with_one_is_kept(mask):
    assert worth_parsing(ENCODER.format(mask=mask))


@pytest.mark.parametrize("decoder", [True, False])
def test_workers_that_find_a_file_for_the_analysis_start_the_analysis_process(tmp_path, monkeypatch, decoder):
    for i in range(300):  # enough files for the parallel path
        (tmp_path / f"filler_{i}.py").write_text(f"x = {i}\n")
    if decoder:
        shutil.copy(FIXTURES / "book_tf" / "before.py", tmp_path / "zz_decoder.py")
    analysis = AnalysisProcess()
    started = []
    monkeypatch.setattr(analysis, "start", lambda: started.append(True))
    try:
        results = list(cli._screen_all(discover_stat([str(tmp_path)]), 2, None, analysis))
        assert analysis.running  # forked with the workers
    finally:
        analysis.close()
    assert [r[2][0] for r in results].count("parse") == int(decoder)
    assert started == [True] * int(decoder)


@pytest.mark.parametrize("files", [100, 300])
def test_a_tree_with_work_for_the_workers_is_screened_by_them_alone(tmp_path, monkeypatch, files):
    for i in range(files):
        (tmp_path / f"filler_{i}.py").write_text(f"x = {i}\n")
    here = []
    screen = cli._screen_file
    monkeypatch.setattr(cli, "_screen_file", lambda path, **kw: (
        here.append(path) if kw.get("here") else None) or screen(path, **kw))
    results = list(cli._screen_all(discover_stat([str(tmp_path)]), 2))
    assert len(results) == files and {r[2][0] for r in results} == {"other"}
    # a small tree is screened in this process; a large one only by the workers, from its first file
    assert len(here) == (files if files < cli.PARALLEL_MIN_FILES else 0)


def test_imports_name_the_classes_and_star_modules_a_file_takes_from_elsewhere():
    wanted = Imports()
    wanted.add(b"from layers import Heads, TargetLayer as T\nfrom pkg.blocks import (\n    Block,\n)\n"
               b"from pkg.more import *\nimport numpy as np\n")
    assert wanted.names == {b"Heads": {"layers"}, b"TargetLayer": {"layers"}, b"Block": {"blocks"}}
    assert wanted.star_modules == {"more"} and wanted.modules == {"layers", "blocks", "more"}
    layer = b"import tensorflow as tf\n\n\nclass TargetLayer(tf.keras.layers.Layer):\n"
    assert wanted.wants(layer, "src/layers.py") and wanted.wants(layer, "src/layers/__init__.py")
    assert not wanted.wants(layer, "src/blocks.py")  # TargetLayer comes from layers, not from blocks
    assert wanted.wants(b"x = 1\n", "pkg/more.py")
    assert not wanted.wants(b"class Other:\n    pass\n", "layers.py")
    # a file is a candidate by its name, or its package's, alone: the others of a tree are never read
    assert all(map(wanted.may_define, ["a/layers.py", "layers.py", "a/more/__init__.py", "a/blocks/__init__.pyi",
                                       "layers/model.py", "a/more/impl.py"]))
    assert not any(map(wanted.may_define, ["a/model.py", "layers/sub/model.py", "a/xlayers.py", "a/layers.ipynb"]))
    # a module of the package may define what the package re-exports
    assert wanted.wants(layer, "src/layers/impl.py") and not wanted.wants(layer, "src/blocks/impl.py")
    assert all(wanted.may_define(p) == (module_name(p) in wanted.modules) for p in ["a/more.py", "b/blocks.pyi"])


LAYER_ONLY = '''import tensorflow as tf


class Heads(tf.keras.layers.Layer):
    def call(self, v, k, q, mask):
        return q


class TargetLayer(tf.keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.att_self = Heads()
        self.att_memory = Heads()

    def call(self, x, memory, look_ahead_mask, padding_mask):
        h = self.att_self(x, x, x, padding_mask)
        return self.att_memory(memory, memory, h, look_ahead_mask)
'''


def caller_of_layer(imports: str = "TargetLayer") -> str:
    """A module that builds the masks with a factory and hands them to ``layers_mod``'s layer."""
    return CORRECT_FACTORY + f"from layers_mod import {imports}\n" + '''

class Model(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.decoder = TargetLayer()

    def call(self, inp, tar, enc_output):
        enc_padding_mask, combined_mask, dec_padding_mask = create_masks(inp, tar)
        return self.decoder(tar, enc_output, combined_mask, dec_padding_mask)
'''


@pytest.mark.parametrize("imports", ["TargetLayer", "*"])
def test_a_layer_file_without_needles_is_kept_for_the_file_that_imports_it(tmp_path, capsys, imports):
    # the layer exchanges the factory's masks: MF010 lies in a file no screen would keep
    assert not might_match(LAYER_ONLY.encode())
    (tmp_path / "layers_mod.py").write_text(LAYER_ONLY)
    (tmp_path / "train.py").write_text(caller_of_layer(imports))
    (tmp_path / "unrelated.py").write_text(LAYER_ONLY)  # the same class, in a module nobody imports
    assert main(["check", "--no-cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "layers_mod.py:17:51: MF010 [*]" in out and "unrelated.py" not in out


def test_a_layer_file_re_exported_by_its_package_is_kept_for_the_file_that_imports_it(tmp_path, capsys):
    # `from layers_pkg import TargetLayer`: the package's __init__ re-exports it from a module of its own
    (tmp_path / "layers_pkg").mkdir()
    (tmp_path / "layers_pkg" / "__init__.py").write_text("from .impl import TargetLayer\n")
    (tmp_path / "layers_pkg" / "impl.py").write_text(LAYER_ONLY)
    (tmp_path / "train.py").write_text(caller_of_layer().replace("from layers_mod import", "from layers_pkg import"))
    assert main(["check", "--no-cache", str(tmp_path)]) == 1
    assert "impl.py:17:51: MF010 [*]" in capsys.readouterr().out


def test_self_is_not_one_of_a_factory_s_two_parameters():
    method = "import numpy as np\n\nclass Op:\n    def {sig}:\n        return np.tril(x), x, x\n"
    assert not might_match(method.format(sig="spec(self, x)").encode())
    assert might_match(method.format(sig="masks(self, x, y)").encode())
