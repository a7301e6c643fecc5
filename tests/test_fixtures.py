"""Golden before/after pairs: one folder per variant under tests/fixtures/."""

import difflib
import re
from pathlib import Path

import libcst as cst
import pytest

from maskfix import engine
from maskfix.layout import width_limit
from maskfix.prefilter import might_match
from maskfix.screen import worth_parsing

FIXTURES = Path(__file__).parent / "fixtures"
ALL_VARIANTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "before.py").exists())
# Shapes the analysis gets wrong today: an XFAIL file holds the one-line reason.  They run only in
# test_known_gap, a strict expected failure, so the marker must go once the analysis handles them.
GAPS = [v for v in ALL_VARIANTS if (FIXTURES / v / "XFAIL").exists()]
VARIANTS = [v for v in ALL_VARIANTS if v not in GAPS]
FIXED = [v for v in VARIANTS if (FIXTURES / v / "after.py").exists()]
HANDWRITTEN = [v for v in ALL_VARIANTS if (FIXTURES / v / "after.py").exists()]


def read(variant, name):
    with open(FIXTURES / variant / name, newline="") as fh:
        return fh.read()


def expected(variant):
    return read(variant, "expected.txt").splitlines()


def findings(source):
    return [f"{f.line}:{f.column}: {f.code}{' [*]' if f.fixable else ''}" for f in engine.check_source(source)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_check_reports_exactly_the_expected_findings(variant):
    assert findings(read(variant, "before.py")) == expected(variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_negatives_are_left_alone(variant):
    before = read(variant, "before.py")
    if variant in FIXED:
        assert any("[*]" in line for line in expected(variant))
    else:
        assert engine.rewrite_source(before) == before


def test_there_are_negatives_and_fixes():
    negatives = [v for v in ALL_VARIANTS if v.startswith("neg_")]
    assert len(negatives) >= 7 and len(FIXED) >= 18
    assert all(expected(v) == [] for v in negatives)


@pytest.mark.parametrize(
    "variant",
    [pytest.param(v, marks=pytest.mark.xfail(strict=True, reason=read(v, "XFAIL").strip())) for v in GAPS],
)
def test_known_gap(variant):
    """Everything the other tests check for a variant, in one test."""
    before = read(variant, "before.py")
    assert findings(before) == expected(variant)
    if expected(variant):
        assert might_match(before.encode()) and worth_parsing(before)
    if variant in HANDWRITTEN:
        after = read(variant, "after.py")
        assert engine.rewrite_source(before) == after
        assert engine.rewrite_source(after) == after and engine.check_source(after) == []
    else:
        assert engine.rewrite_source(before) == before


def test_known_gaps_state_a_reason_and_keep_the_conventions():
    for v in GAPS:
        reason = read(v, "XFAIL").strip()
        assert reason and "\n" not in reason, v
        assert (v in HANDWRITTEN) == any("[*]" in line for line in expected(v)), v
        if v.startswith("neg_"):
            assert expected(v) == [] and v not in HANDWRITTEN, v


@pytest.mark.parametrize("variant", HANDWRITTEN)
def test_golden_output_compiles(variant):
    compile(read(variant, "after.py"), f"{variant}/after.py", "exec")


@pytest.mark.parametrize("variant", FIXED)
def test_rewrite_matches_golden(variant):
    assert engine.rewrite_source(read(variant, "before.py")) == read(variant, "after.py")


@pytest.mark.parametrize("variant", FIXED)
def test_output_compiles_is_idempotent_and_clean(variant):
    after = read(variant, "after.py")
    compile(after, f"{variant}/after.py", "exec")
    assert engine.rewrite_source(after) == after
    assert engine.check_source(after) == []


@pytest.mark.parametrize("variant", FIXED)
def test_crlf_is_preserved(variant):
    before = read(variant, "before.py").replace("\n", "\r\n")
    after = read(variant, "after.py").replace("\n", "\r\n")
    assert engine.rewrite_source(before) == after


@pytest.mark.parametrize("variant", FIXED)
def test_only_edited_lines_change(variant):
    """Every line the rewrite removes holds a mask argument, a signature, a call or a list it edits."""
    before = read(variant, "before.py").splitlines()
    after = read(variant, "after.py").splitlines()
    removed = [l[1:] for l in difflib.unified_diff(before, after, lineterm="", n=0)
               if l.startswith("-") and not l.startswith("---")]
    assert len(removed) <= 8
    for line in removed:
        code, hash_, comment = line.partition("  #")
        if code.rstrip() + "," + hash_ + comment in after:
            continue  # the last item of a one-per-line list gained a comma
        assert re.search(r"attention_mask|padding_mask|use_causal_mask|def call|\(|\)|= None|= mask|\[|mask is None|return|else:", line), line
    comments = [l for l in before if l.strip().startswith("#")]
    assert all(c in after for c in comments)


@pytest.mark.parametrize("variant", VARIANTS)
def test_prefilter_never_costs_recall(variant):
    source = read(variant, "before.py")
    if expected(variant):
        assert might_match(source.encode())


def test_comment_dense_keeps_every_comment_in_place():
    before = read("comment_dense", "before.py")
    after = read("comment_dense", "after.py")
    assert "        mask=None,  # filled by Keras\n        encoder_padding_mask=None,\n    ):" in after
    for line in before.splitlines():
        if "#" in line and "wrong source" not in line and "attention_mask = c" not in line:
            assert line in after.splitlines()


def test_decoder_only_use_anywhere_blocks_the_rewrite():
    before = read("mixed_usage", "before.py")
    (finding,) = engine.check_source(before)
    assert not finding.fixable and "decoder-only" in finding.message
    assert engine.rewrite_source(before) == before


def test_a_decoder_defined_in_one_file_is_threaded_in_another():
    layer = read("book_tf", "before.py").split("def build(")[0]
    user = (
        "from tensorflow import keras\nimport tensorflow as tf\n"
        "from layers_mod import PositionalEmbedding, TransformerEncoder, TransformerDecoder\n\n"
        "src = keras.Input(shape=(None,), dtype='int64')\n"
        "x = PositionalEmbedding(10, 40, 16)(src)\n"
        "enc = TransformerEncoder(16, 32, 2)(x)\n"
        "tgt = keras.Input(shape=(None,), dtype='int64')\n"
        "y = PositionalEmbedding(10, 40, 16)(tgt)\n"
        "y = TransformerDecoder(16, 32, 2)(y, enc)\n"
    )
    out = engine.run({"layers_mod.py": layer, "train.py": user}, fix=True)
    assert out["layers_mod.py"].new_source and "encoder_padding_mask=None" in out["layers_mod.py"].new_source
    new_user = out["train.py"].new_source
    assert "encoder_padding_mask = tf.math.not_equal(src, 0)" in new_user
    assert "TransformerDecoder(16, 32, 2)(y, enc, encoder_padding_mask=encoder_padding_mask)" in new_user


def test_a_list_input_decoder_reads_mask_1_unless_the_run_calls_it():
    """Keras hands a ``[x, enc]`` decoder the encoder's mask as ``mask[1]``; a call site in the run
    gets the mask computed from the token ids instead, through the new parameter."""
    layer = read("list_input_decoder", "before.py")
    alone = engine.rewrite_source(layer)
    assert "mask[1][:, None, :]" in alone and "encoder_padding_mask" not in alone
    user = (
        "import keras\nfrom keras import layers\nfrom layers_mod import PairDecoder\n\n"
        "src = keras.Input(shape=(None,), dtype='int64')\n"
        "enc = layers.Embedding(10, 16, mask_zero=True)(src)\n"
        "tgt = keras.Input(shape=(None,), dtype='int64')\n"
        "y = layers.Embedding(10, 16, mask_zero=True)(tgt)\n"
        "y = PairDecoder(16, 2)([y, enc])\n"
    )
    out = engine.run({"layers_mod.py": layer, "train.py": user}, fix=True)
    fixed = out["layers_mod.py"].new_source
    assert "encoder_padding_mask=None" in fixed and "mask[1]" not in fixed
    assert "PairDecoder(16, 2)([y, enc], encoder_padding_mask=encoder_padding_mask)" in out["train.py"].new_source


SELF_AND_CROSS = """import keras
from keras import layers, ops


class Dec(layers.Layer):
    def __init__(self):
        super().__init__()
        self.sa = layers.MultiHeadAttention(2, 8)
        self.ca = layers.MultiHeadAttention(2, 8)

    def call(self, x, enc, mask=None):
        n = ops.shape(x)[1]
        c = ops.tril(ops.ones((1, n, n), "int32"))
{combine}
        x = x + self.sa(x, x, attention_mask=c)
        return x + self.ca(x, enc, attention_mask=m)
"""
PADDED = 'ops.minimum(ops.cast(mask[:, None, :], "int32"), c)'


@pytest.mark.parametrize("combine,fallback", [
    (f"        m = c if mask is None else {PADDED}", None),
    (f"        m = None if mask is None else {PADDED}", f"m = c if mask is None else {PADDED}"),
    (f"        if mask is None:\n            m = c\n        else:\n            m = {PADDED}", None),
    (f"        if not mask is None:\n            m = {PADDED}\n        else:\n            m = None", "m = c\n"),
    (f"        m = c\n        if mask is not None and n > 1:\n            m = {PADDED}", None),
])
def test_self_attention_gets_the_combined_mask_whichever_way_the_mask_test_reads(combine, fallback):
    """The self-attention is moved to the padding + causal mask wherever the branch without a mask
    falls back to the causal one (edited to do so when it held None)."""
    out = engine.rewrite_source(SELF_AND_CROSS.format(combine=combine))
    assert "self.sa(x, x, attention_mask=m)" in out
    assert "self.ca(x, enc, attention_mask=cross_attention_mask)" in out
    assert fallback is None or fallback in out
    assert engine.check_source(out) == [] and engine.rewrite_source(out) == out


def test_self_attention_keeps_the_causal_mask_when_the_fallback_is_unclear():
    source = SELF_AND_CROSS.format(combine=f"        m = None\n        if isinstance(mask, list):\n            m = {PADDED}")
    out = engine.rewrite_source(source)
    assert "self.sa(x, x, attention_mask=c)" in out and "attention_mask=cross_attention_mask" in out


def test_a_decoder_used_decoder_only_in_another_file_is_not_flagged():
    layer = read("book_tf", "before.py").split("def build(")[0]
    user = "from layers_mod import TransformerDecoder\n\ndef gen(x):\n    return TransformerDecoder(16, 32, 2)(x, x)\n"
    out = engine.run({"layers_mod.py": layer, "gen.py": user}, fix=True)
    assert out["layers_mod.py"].new_source is None and out["layers_mod.py"].findings == []
    assert engine.check_source(layer)[0].code == "MF001"  # alone, the class is flagged


def test_noqa_suppresses_and_is_honoured_by_rewrite():
    before = read("raw_mask", "before.py")
    line = "        return self.a2(query=y, value=enc, key=enc, attention_mask=mask)"
    for comment in ("  # noqa: MF001", "  # noqa"):
        src = before.replace(line, line + comment)
        assert engine.check_source(src) == []
        assert engine.rewrite_source(src) == src
    src = before.replace(line, line + "  # noqa: E501")
    assert len(engine.check_source(src)) == 1


def test_syntax_error_is_reported_not_raised():
    out = engine.run({"bad.py": "class X(:\n    pass\n"})
    assert out["bad.py"].error.startswith("cannot parse: syntax error at line ")


def test_rewritten_layer_keeps_its_constructor_and_config():
    after = read("kerasio_keras3", "after.py")
    module = cst.parse_module(after)
    names = [n.name.value for n in module.body if isinstance(n, cst.ClassDef)]
    assert names == ["PositionalEmbedding", "TransformerEncoder", "TransformerDecoder"]
    assert after.count("def get_config") == read("kerasio_keras3", "before.py").count("def get_config")


@pytest.mark.parametrize("variant", FIXED)
def test_new_lines_fit_the_files_width(variant):
    """Lines the rewrite adds fit; a line it edits in place may stay as long as it already was."""
    before = read(variant, "before.py").splitlines()
    after = read(variant, "after.py").splitlines()
    limit = width_limit("\n".join(before))
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            continue
        overflowing = a1 - a0 == b1 - b0 and any(len(line) > limit for line in before[a0:a1])
        for line in after[b0:b1]:
            assert len(line) <= limit or overflowing, line


def test_width_ignores_prose_and_a_few_long_lines():
    code = "x = 1\n" * 100
    assert width_limit(code + "# " + "y" * 150 + "\n" + '"""' + "z" * 150 + '"""\n') == 88
    wide = "".join(f"value_{i} = call({', '.join(['argument'] * 12)})\n" for i in range(10))
    assert width_limit(code + wide) == max(len(l) for l in wide.splitlines())


def test_cross_file_threading_reads_the_pad_id_of_an_imported_embedding():
    layer = read("book_tf", "before.py").split("def build(")[0].replace("not_equal(inputs, 0)", "not_equal(inputs, 1)")
    user = (
        "from tensorflow import keras\nimport tensorflow as tf\n"
        "from layers_mod import PositionalEmbedding, TransformerEncoder, TransformerDecoder\n\n"
        "src = keras.Input(shape=(None,), dtype='int64')\n"
        "x = PositionalEmbedding(10, 40, 16)(src)\n"
        "enc = TransformerEncoder(16, 32, 2)(x)\n"
        "tgt = keras.Input(shape=(None,), dtype='int64')\n"
        "y = PositionalEmbedding(10, 40, 16)(tgt)\n"
        "y = TransformerDecoder(16, 32, 2)(y, enc)\n"
    )
    out = engine.run({"layers_mod.py": layer, "train.py": user}, fix=True)
    assert "encoder_padding_mask = tf.math.not_equal(src, 1)" in out["train.py"].new_source
    assert out["train.py"].notes == ["pad id 1 read from the embedding's compute_mask"]


def test_a_subclassed_model_in_another_file_is_threaded_like_in_one_file():
    source = read("subclassed_model", "before.py")
    head, model = source.split("class Seq2Seq(")
    user = "import keras\nfrom keras import layers, ops\nfrom layers_mod import Embed, Decoder\n\n\nclass Seq2Seq(" + model
    alone = engine.run({"one.py": source}, fix=True)["one.py"]
    split = engine.run({"layers_mod.py": head, "model.py": user}, fix=True)
    assert [f.code for f in alone.findings] == ["MF001"]
    assert [f.code for f in split["layers_mod.py"].findings] == ["MF001"]
    assert split["model.py"].findings == []  # no MF002: threaded as in one file
    threaded = alone.new_source.split("class Seq2Seq(")[1]
    assert split["model.py"].new_source.split("class Seq2Seq(")[1] == threaded


def test_rewrite_is_the_same_whatever_the_heap_looks_like():
    """Before: an id of a node the layout had dropped was reused by a new node, which was then taken
    for edited and re-wrapped (about one run in forty)."""
    before = read("fam_submodel_callers_tf", "before.py")
    after = read("fam_submodel_callers_tf", "after.py")
    ballast = []
    for n in range(40):
        ballast.append([object() for _ in range(n * 37 % 997)])  # shifts where new nodes land
        assert engine.rewrite_source(before) == after
