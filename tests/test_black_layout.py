"""Lines the rewrite lays out are the lines black writes for the same statement.

Each check formats one statement with black itself, at the statement's
indentation and the width maskfix chose, and compares the result with what
maskfix wrote.
"""

import difflib
import itertools
import random
import textwrap
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from maskfix import engine
from maskfix.layout import black_lines, modern_syntax, width_limit

black = pytest.importorskip("black")

FIXTURES = Path(__file__).parent / "fixtures"
# fixtures marked XFAIL are known gaps: their after.py is hand-written, not maskfix's output
FIXED = sorted(p.name for p in FIXTURES.iterdir() if (p / "after.py").exists() and not (p / "XFAIL").exists())
OLD = set(black.TargetVersion)
NEW = {v for v in black.TargetVersion if v.value >= black.TargetVersion.PY36.value}


def by_black(text: str, indent: int, limit: int, modern: bool) -> str:
    """black's output for one statement (or ``def`` header) written at ``indent`` columns."""
    assert indent % 4 == 0
    levels = indent // 4
    is_def = text.startswith("def ")
    src = "".join("    " * k + "if x:\n" for k in range(levels))
    src += textwrap.indent(text + "\n", "    " * levels)
    if is_def:
        src += "    " * (levels + 1) + "pass\n"
    mode = black.Mode(line_length=limit, string_normalization=False, target_versions=NEW if modern else OLD)
    lines = [line for line in black.format_str(src, mode=mode).splitlines()[levels:] if line.strip()]
    if is_def:
        lines = lines[:-1]
    return "\n".join(line[indent:] for line in lines)


def by_maskfix(text: str, indent: int, limit: int, modern: bool):
    lines = black_lines(text, indent, 4, limit, modern)
    return None if lines is None else "\n".join("    " * depth + line for depth, line in lines)


def header(module: cst.Module, fn: cst.FunctionDef) -> str:
    stub = fn.with_changes(body=cst.SimpleStatementSuite([cst.Pass()]), leading_lines=(), decorators=())
    return module.code_for_node(stub).rstrip("\n")[: -len(" pass")]


def statements(source: str):
    """``(first line, last line, indent, text)`` of every simple statement and ``def`` header."""
    wrapper = MetadataWrapper(cst.parse_module(source))
    module = wrapper.module
    positions = wrapper.resolve(PositionProvider)
    out = []
    for node, pos in positions.items():
        if isinstance(node, cst.SimpleStatementLine):
            text = module.code_for_node(node.with_changes(leading_lines=())).rstrip("\n")
            out.append((pos.start.line, pos.start.line + text.count("\n"), pos.start.column, text))
        elif isinstance(node, cst.FunctionDef):
            text = header(module, node)
            name = positions[node.name]
            start = name.start.line - text.split("(")[0].count("\n")
            out.append((start, start + text.count("\n"), name.start.column - len("def "), text))
    return out


def changed_statements(before: str, after: str):
    """Statements of ``after`` that hold a line the rewrite added or changed."""
    old, new = before.splitlines(), after.splitlines()
    touched = set()
    for op, _, _, b0, b1 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op in ("replace", "insert"):
            touched.update(range(b0 + 1, b1 + 1))
        elif op == "delete":
            touched.update((b0, b0 + 1))  # the statements on either side of the removed lines
    return [s for s in statements(after) if touched & set(range(s[0], s[1] + 1))]


def read(variant: str, name: str) -> str:
    with open(FIXTURES / variant / name, newline="") as fh:
        return fh.read()


# statements whose own (non-black) layout the rewrite keeps: the edit still fits and
# the statement was not laid out the way black lays it out before
KEPT = {
    ("book_tf", "        attention_output_1 = self.attention_1("),
}


def assert_changes_are_black(before: str, after: str, name: str = "") -> int:
    """Every statement the rewrite changed reads as black writes it; returns how many were checked."""
    limit, modern = width_limit(before), modern_syntax(before)
    checked = 0
    for first, last, indent, text in changed_statements(before, after):
        line = after.splitlines()[first - 1]
        if (name, line) in KEPT or "#" in text:
            continue
        assert by_black(text, indent, limit, modern) == text, f"{name}:{first}\n{text}"
        checked += 1
    return checked


@pytest.mark.parametrize("variant", FIXED)
def test_golden_statements_are_laid_out_as_black_does(variant):
    # test_fixtures checks that the rewrite produces after.py
    before, after = read(variant, "before.py"), read(variant, "after.py")
    assert changed_statements(before, after)
    assert_changes_are_black(before, after, variant)


DECODER = """\
from tensorflow import keras
from tensorflow.keras import layers


class Decoder(layers.Layer):
    def __init__(self, dim, heads, **kwargs):
        super().__init__(**kwargs)
        self.a1 = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)
        self.{attn} = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)

{signature}
        y = self.a1(query=x, value=x, key=x, use_causal_mask=True)
        {cross}
"""


def signature(params, indent=4, limit=88):
    """``def call(...)`` with ``params`` as black lays it out (so the original is black-clean)."""
    one = " " * indent + "def call(" + ", ".join(params) + "):"
    if len(one) <= limit and not params[-1].endswith(","):
        return one
    text = by_black("def call(" + ", ".join(params) + "):", indent, limit, False)
    return textwrap.indent(text, " " * indent)


def decoders():
    """Decoders whose edited lines land on both sides of 88 columns."""
    for extra, kwargs, trailing in itertools.product(range(12, 36, 3), (False, True), (False, True)):
        params = ["self", "x", "enc", "mask=None"]
        if extra:
            params.insert(3, "p" * extra)
        if kwargs:
            params.append("**kwargs")
        if trailing:
            params[-1] += ","
        attn = "cross" + "_" * (extra % 7) + "a" * (extra // 2)
        cross = f"return self.{attn}(query=y, value=enc, key=enc, attention_mask=mask)"
        if trailing:
            cross = f"return self.{attn}(\n            query=y, value=enc, key=enc, attention_mask=mask,\n        )"
        elif kwargs:
            cross = f"return self.norm(y + self.{attn}(query=y, value=enc, key=enc, attention_mask=mask))"
        yield DECODER.format(attn=attn, signature=signature(params), cross=cross)


def test_signatures_and_calls_around_the_width_are_laid_out_as_black_does():
    widths = set()
    for source in decoders():
        source = by_black_module(source)  # black-clean before, so black-clean after
        after = engine.rewrite_source(source)
        assert after != source
        assert assert_changes_are_black(source, after) >= 3
        widths.update(len(line) for line in after.splitlines())
        assert engine.rewrite_source(after) == after
    assert {86, 87, 88} & widths and max(widths) <= 88


def by_black_module(source: str) -> str:
    return black.format_str(source, mode=black.Mode(string_normalization=False))


def _name(rng):
    return rng.choice(["a", "bb", "value", "encoder_outputs", "decoder_inputs", "mask"]) + "x" * rng.randint(0, 12)


def _atom(rng, depth=0):
    roll = rng.random()
    if depth < 2 and roll < 0.25:
        return _call(rng, depth + 1)
    if depth < 2 and roll < 0.3:
        return _name(rng) + "[:, None, :]"
    if depth < 2 and roll < 0.35:
        return "[" + ", ".join(_atom(rng, depth + 1) for _ in range(rng.randint(1, 3))) + "]"
    if roll < 0.45:
        return str(rng.randint(0, 100))
    if roll < 0.5:
        return '"' + "s" * rng.randint(1, 10) + '"'
    if depth < 2 and roll < 0.55:
        return _atom(rng, depth + 1) + rng.choice([" + ", " * ", " and ", " == "]) + _atom(rng, depth + 1)
    if depth < 2 and roll < 0.6:
        return _name(rng) + " is not None"
    if roll < 0.65:
        return _name(rng) + "." + _name(rng)
    return _name(rng)


def _call(rng, depth=0):
    args = [_atom(rng, depth) for _ in range(rng.randint(0, 3))]
    args += [f"{_name(rng)}={_atom(rng, depth)}" for _ in range(rng.randint(0, 3))]
    comma = "," if args and rng.random() < 0.1 else ""
    func = rng.choice(["f", "self.attention", "tf.math.not_equal", "keras.Model", "layers.Dense(64)",
                       "TransformerDecoder(16, 32, 2)", "obj.method(a).other"])
    return f"{func}({', '.join(args)}{comma})"


def _statement(rng):
    roll = rng.random()
    if roll < 0.4:
        return f"{_name(rng)} = {_call(rng)}"
    if roll < 0.5:
        return f"return {_call(rng)}"
    if roll < 0.6:
        return _call(rng)
    if roll < 0.7:
        return f"{_name(rng)}, {_name(rng)} = {_call(rng)}"
    if roll < 0.75:
        return f"self.{_name(rng)}[0] = {_call(rng)}"
    if roll < 0.8:
        return f"{_name(rng)} = {_call(rng)} if {_name(rng)} is not None else {_atom(rng)}"
    params = ["self"] + [_name(rng) + rng.choice(["", "=None", "=1", ": int", ": int = 3"])
                         for _ in range(rng.randint(0, 8))]
    if rng.random() < 0.2:
        params.append("**kwargs")
    if rng.random() < 0.1:
        params[-1] += ","
    return f"def {_name(rng)}({', '.join(params)}){rng.choice(['', ' -> tf.Tensor'])}:"


def test_generated_statements_are_laid_out_as_black_does():
    rng = random.Random(13)
    checked = 0
    while checked < 200:
        text = _statement(rng)
        try:
            compile(text + ("\n pass" if text.startswith("def") else ""), "<generated>", "exec")
        except SyntaxError:
            continue
        indent, limit, modern = rng.choice([0, 4, 8]), rng.choice([80, 88, 100]), rng.random() < 0.5
        assert by_maskfix(text, indent, limit, modern) == by_black(text, indent, limit, modern), (text, indent, limit)
        checked += 1


@pytest.mark.parametrize("text", [
    "def call(self, inputs, encoder_outputs, mask=None, encoder_padding_mask=None, x=1):",
    "def call(self, inputs, encoder_outputs, mask=None, encoder_padding_mask=None, **kwargs):",
    "def call(self, inputs, encoder_outputs, mask=None, encoder_padding_mask=None, training=False, **kw):",
    "def call(\n    self,\n    inputs,\n    mask=None,\n    encoder_padding_mask=None,\n):",
    "out = self.attention_2(query=out_1, value=encoder_outputs, key=encoder_outputs, attention_mask=m)",
    "out = self.norm(out_1 + self.attention_2(query=out_1, value=enc, key=enc, attention_mask=cross_mask))",
    "decoder = keras.Model([decoder_inputs, encoded_seq_inputs, encoder_padding_mask], decoder_outputs)",
    "x = TransformerDecoder(embed_dim, latent_dim, num_heads)(x, encoded, encoder_padding_mask=mask)",
])
@pytest.mark.parametrize("modern", [False, True])
def test_signatures_and_calls_near_the_boundary(text, modern):
    for indent, limit in itertools.product((4, 8), range(80, 101)):
        assert by_maskfix(text, indent, limit, modern) == by_black(text, indent, limit, modern), (indent, limit)


def _raw_mask_with(param: str) -> str:
    source = read("raw_mask", "before.py")
    return source.replace("def call(self, x, enc, mask=None):", f"def call(self, x, enc, {param}, mask=None):")


def test_an_85_column_signature_stays_on_one_line():
    param = "p" * (85 - len("    def call(self, x, enc, , mask=None, encoder_padding_mask=None):"))
    after = engine.rewrite_source(_raw_mask_with(param))
    line = f"    def call(self, x, enc, {param}, mask=None, encoder_padding_mask=None):"
    assert len(line) == 85 and line + "\n" in after


def test_a_longer_signature_puts_its_parameters_on_one_indented_line():
    param = "p" * 25
    after = engine.rewrite_source(_raw_mask_with(param))
    assert (
        "    def call(\n"
        f"        self, x, enc, {param}, mask=None, encoder_padding_mask=None\n"
        "    ):\n"
    ) in after
    assert assert_changes_are_black(_raw_mask_with(param), after) >= 2


def test_a_signature_too_long_for_one_indented_line_gets_one_parameter_per_line():
    param = "p" * 60
    after = engine.rewrite_source(_raw_mask_with(param))
    params = ["self", "x", "enc", param, "mask=None", "encoder_padding_mask=None"]
    assert "    def call(\n" + "".join(f"        {p},\n" for p in params) + "    ):\n" in after


@pytest.mark.parametrize("variant", FIXED)
def test_a_black_formatted_file_stays_black_formatted(variant):
    """After black, before the rewrite: the rewrite's lines are then all laid out as black would."""
    mode = black.Mode(string_normalization=False)
    source = black.format_str(read(variant, "before.py"), mode=mode)
    after = engine.rewrite_source(source)
    assert after != source
    if variant == "multiline_no_trailing_comma":
        return  # its edited statements carry comments, whose layout maskfix keeps
    if variant == "closure_mask_helper":
        return  # black wants a blank line between the inserted block and a nested def: not a wrapping matter
    assert black.format_str(after, mode=mode) == after


def test_a_call_wrapped_on_a_continuation_line_is_indented_from_that_line():
    """A decoder call inside a multi-line tuple is wrapped relative to its own line, as black does."""
    call = "    x = TransformerDecoder(embed_dim, dense_dim, num_heads)(x, encoder_outputs)\n"
    source = read("book_tf", "before.py")
    assert call in source
    source = source.replace(call, "    x, extra = (\n        " + call.strip()[len("x = "):] + ",\n        1,\n    )\n")
    after = engine.rewrite_source(source)
    assert ("    x, extra = (\n"
            "        TransformerDecoder(embed_dim, dense_dim, num_heads)(\n"
            "            x, encoder_outputs, encoder_padding_mask=encoder_padding_mask\n"
            "        ),\n"
            "        1,\n"
            "    )\n") in after
    assert assert_changes_are_black(source, after, "book_tf") > 0
