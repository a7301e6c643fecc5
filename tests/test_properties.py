"""Generated decoder layers: every buggy one is flagged and fixed cleanly, every correct one left alone."""

import builtins
import keyword
from dataclasses import dataclass
from typing import Dict, List

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskfix import engine

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# How each dialect spells the few tensor ops a decoder needs.
DIALECTS: Dict[str, Dict[str, str]] = {
    "tf": dict(
        imports="import tensorflow as tf\nfrom tensorflow import keras\n",
        mha="keras.layers.MultiHeadAttention", base="keras.layers.Layer", new="tf.newaxis",
        shape="tf.shape({x})[1]", arange="tf.range({n})", cast='tf.cast({x}, "int32")',
        minimum="tf.minimum({a}, {b})", ge="tf.math.greater_equal({a}, {b})",
        tri="tf.linalg.band_part(tf.ones(({n}, {n}), dtype=tf.int32), -1, 0)",
    ),
    "ops": dict(
        imports="import keras\nfrom keras import ops\n",
        mha="keras.layers.MultiHeadAttention", base="keras.layers.Layer", new="None",
        shape="ops.shape({x})[1]", arange="ops.arange({n})", cast='ops.cast({x}, "int32")',
        minimum="ops.minimum({a}, {b})", ge="ops.greater_equal({a}, {b})",
        tri='ops.tril(ops.ones(({n}, {n}), dtype="int32"))',
    ),
    "keras.ops": dict(
        imports="import keras\n",
        mha="keras.layers.MultiHeadAttention", base="keras.Layer", new="None",
        shape="keras.ops.shape({x})[1]", arange="keras.ops.arange({n})", cast='keras.ops.cast({x}, "int32")',
        minimum="keras.ops.minimum({a}, {b})", ge="keras.ops.greater_equal({a}, {b})",
        tri='keras.ops.tril(keras.ops.ones(({n}, {n}), dtype="int32"))',
    ),
    "alias": dict(
        imports="import keras\nfrom keras import layers\nfrom keras import ops as K\n",
        mha="layers.MultiHeadAttention", base="layers.Layer", new="None",
        shape="K.shape({x})[1]", arange="K.arange({n})", cast='K.cast({x}, "int32")',
        minimum="K.minimum({a}, {b})", ge="K.greater_equal({a}, {b})",
        tri='K.tril(K.ones(({n}, {n}), dtype="int32"))',
    ),
}

TAKEN = set(keyword.kwlist) | set(dir(builtins)) | {
    "self", "mask", "tf", "ops", "keras", "K", "layers", "training", "kwargs", "build", "dim", "heads",
    "src", "tgt", "x", "y", "out", "model", "layer", "seq", "length",
}
IDENT = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True),
    # names the rewrite itself likes to introduce
    st.sampled_from(["padding_mask", "cross_attention_mask", "causal_mask", "combined_mask",
                     "inputs", "encoder_outputs", "memory", "context", "look_ahead"]),
).filter(lambda s: s not in TAKEN and not keyword.iskeyword(s))
ROLES = ["cls", "dec", "enc", "causal", "comb", "h", "a1", "a2", "helper", "n", "i", "j", "epm", "res"]

BUGGY_SHAPES = ["if", "if_else_none", "if_else_causal", "oneline", "upfront", "raw", "causal_only", "pad_only"]
GOOD_SHAPES = ["encoder_side", "query_side", "implicit", "decoder_only_use", "self_only"]
MASK_BUILDS = ["compare", "tri", "method", "static", "module"]


@dataclass
class Layout:
    """Formatting choices, applied when calls and signatures are written out."""

    multiline_calls: bool
    trailing_comma: bool
    comments: bool
    multiline_def: bool


def _call(func: str, positional: List[str], keywords: List[tuple], lay: Layout, indent: str) -> str:
    args = positional + [f"{k}={v}" for k, v in keywords]
    if not lay.multiline_calls:
        return f"{func}({', '.join(args)})"
    inner = indent + "    "
    lines = [f"{func}("]
    for n, a in enumerate(args):
        if lay.comments and n == 1:
            lines.append(f"{inner}# argument {n}")
        comma = "," if n < len(args) - 1 or lay.trailing_comma else ""
        lines.append(f"{inner}{a}{comma}")
    lines.append(f"{indent})")
    return "\n".join(lines)


def _attention_args(draw, q, v, key, mask_kw, tf_dialect):
    """Positional prefix plus shuffled keywords for one MultiHeadAttention call."""
    slots = [("query", q), ("value", v)] + ([("key", key)] if key else [])
    n_pos = draw(st.integers(0, len(slots)))
    positional = [s[1] for s in slots[:n_pos]]
    keywords = draw(st.permutations(slots[n_pos:] + mask_kw))
    if tf_dialect and n_pos == 3 and mask_kw and mask_kw[0][0] == "attention_mask" and draw(st.booleans()):
        # under tf.keras the 4th positional argument is the attention mask
        positional.append(mask_kw[0][1])
        keywords = [k for k in keywords if k[0] != "attention_mask"]
    return positional, list(keywords)


@st.composite
def decoders(draw, shapes):
    d = DIALECTS[draw(st.sampled_from(sorted(DIALECTS)))]
    tf_dialect = d["new"] == "tf.newaxis"
    names = dict(zip(ROLES, draw(st.lists(IDENT, min_size=len(ROLES), max_size=len(ROLES), unique=True))))
    names["cls"] = names["cls"].title().replace("_", "") + "Block"
    shape = draw(st.sampled_from(shapes))
    build = draw(st.sampled_from(MASK_BUILDS))
    lay = Layout(*(draw(st.booleans()) for _ in range(4)))
    new = d["new"]
    dec, enc, causal, comb, h = (names[k] for k in ("dec", "enc", "causal", "comb", "h"))
    pad = d["cast"].format(x=f"mask[:, {new}, :]")

    # the causal mask: inline, or from a helper method, staticmethod or module function
    def causal_expr(x_len, prefix):
        if draw(st.booleans()):
            return [], d["tri"].format(n=x_len) + f"[{new}]"
        i, j = names["i"], names["j"]
        cmp = draw(st.sampled_from([f"{i} >= {j}", f"{j} <= {i}", d["ge"].format(a=i, b=j)]))
        return ([f"{prefix}{i} = {d['arange'].format(n=x_len)}[:, {new}]",
                 f"{prefix}{j} = {d['arange'].format(n=x_len)}"],
                d["cast"].format(x=cmp) + f"[{new}]")

    helpers, module_helpers, body = [], [], []
    ind = " " * 8
    if build in ("compare", "tri"):
        pre, expr = causal_expr(names["n"], ind)
        body += [f"{ind}{names['n']} = {d['shape'].format(x=dec)}"] + pre + [f"{ind}{causal} = {expr}"]
    elif build == "method":
        pre, expr = causal_expr(names["n"], ind)
        helpers += [f"    def {names['helper']}(self, seq):", f"{ind}{names['n']} = {d['shape'].format(x='seq')}",
                    *pre, f"{ind}return {expr}", ""]
        body.append(f"{ind}{causal} = self.{names['helper']}({dec})")
    elif build == "static":
        pre, expr = causal_expr("length", ind)
        helpers += ["    @staticmethod", f"    def {names['helper']}(length):", *pre, f"{ind}return {expr}", ""]
        body.append(f"{ind}{causal} = self.{names['helper']}({d['shape'].format(x=dec)})")
    else:
        pre, expr = causal_expr(names["n"], "    ")
        module_helpers += [f"def {names['helper']}(seq):", f"    {names['n']} = {d['shape'].format(x='seq')}",
                           *pre, f"    return {expr}", "", ""]
        body.append(f"{ind}{causal} = {names['helper']}({dec})")
    if lay.comments:
        body.append(f"{ind}# combine the masks")

    combined = d["minimum"].format(a=pad, b=causal)
    self_mask, cross_mask = [("attention_mask", causal)], [("attention_mask", comb)]
    params = [dec, enc]
    extras = ["mask=None", "training=None"]
    if shape == "if":
        body += [f"{ind}if mask is not None:", f"{ind}    {comb} = {combined}"]
    elif shape == "if_else_none":
        cond = draw(st.sampled_from(["mask is not None", "mask != None"]))
        body += [f"{ind}if {cond}:", f"{ind}    {comb} = {combined}", f"{ind}else:", f"{ind}    {comb} = None"]
    elif shape == "if_else_causal":
        body += [f"{ind}if mask is not None:", f"{ind}    {comb} = {combined}", f"{ind}else:",
                 f"{ind}    {comb} = {causal}"]
    elif shape == "oneline":
        body.append(f"{ind}{comb} = {combined} if mask is not None else {draw(st.sampled_from(['None', causal]))}")
    elif shape == "upfront":
        body += [f"{ind}{comb} = None", f"{ind}if mask is not None:", f"{ind}    {comb} = {combined}"]
    elif shape == "raw":
        cross_mask = [("attention_mask", "mask")]
    elif shape == "causal_only":
        cross_mask = [("attention_mask", causal)]
    elif shape == "pad_only":
        body += [f"{ind}{comb} = None", f"{ind}if mask is not None:", f"{ind}    {comb} = {pad}"]
    elif shape == "encoder_side":  # the correct layer: decoder padding on self, encoder padding on cross
        epm = names["epm"]
        extras.append(f"{epm}=None")
        body += [f"{ind}{comb} = {causal}", f"{ind}if mask is not None:", f"{ind}    {comb} = {combined}",
                 f"{ind}{names['res']} = None", f"{ind}if {epm} is not None:",
                 f"{ind}    {names['res']} = {d['cast'].format(x=f'{epm}[:, {new}, :]')}"]
        self_mask, cross_mask = [("attention_mask", comb)], [("attention_mask", names["res"])]
    elif shape == "query_side":
        body += [f"{ind}{comb} = None", f"{ind}if mask is not None:",
                 f"{ind}    {comb} = {d['cast'].format(x=f'mask[:, :, {new}]')}"]
    elif shape == "implicit":
        cross_mask = []
    elif shape == "decoder_only_use":
        body += [f"{ind}{comb} = {causal}", f"{ind}if mask is not None:", f"{ind}    {comb} = {combined}"]
    extras = draw(st.permutations(extras))
    params += extras

    # the two attention calls
    self_q = draw(st.sampled_from(["query", "all"]))
    pos, kws = _attention_args(draw, dec, dec, dec if self_q == "all" else None, self_mask, tf_dialect)
    call1 = _call(f"self.{names['a1']}", pos, kws, lay, ind)
    residual = draw(st.booleans())
    body.append(f"{ind}{h} = {dec + ' + ' if residual else ''}{call1}")
    if shape == "self_only":
        body.append(f"{ind}return {h}")
    else:
        with_key = draw(st.booleans())
        pos, kws = _attention_args(draw, h, enc, enc if with_key else None, cross_mask, tf_dialect)
        call2 = _call(f"self.{names['a2']}", pos, kws, lay, ind)
        body.append(draw(st.sampled_from([f"{ind}return {call2}", f"{ind}return {h} + {call2}"])))

    if lay.multiline_def:
        sig = ["    def call(", "        self,"] + [f"        {p}," for p in params[:-1]]
        sig += [f"        {params[-1]}{',' if lay.trailing_comma else ''}"
                + ("  # filled by Keras" if lay.comments else ""), "    ):"]
    else:
        sig = [f"    def call(self, {', '.join(params)}):"]

    mha_positional = draw(st.booleans())
    mha = f"{d['mha']}(heads, dim)" if mha_positional else f"{d['mha']}(num_heads=heads, key_dim=dim)"
    cls = [
        f"class {names['cls']}({d['base']}):",
        "    def __init__(self, dim, heads, **kwargs):",
        "        super().__init__(**kwargs)",
        f"        self.{names['a1']} = {mha}",
    ]
    if shape != "self_only":
        cls.append(f"        self.{names['a2']} = {mha}")
    cls += [""] + helpers + sig + body

    site = []
    if shape == "decoder_only_use":
        site = ["", "", "def build():", '    tgt = keras.Input(shape=(None,), dtype="int64")',
                "    y = keras.layers.Embedding(100, 16, mask_zero=True)(tgt)",
                f"    out = {names['cls']}(16, 2)(y, y)", "    return keras.Model(tgt, out)"]
    elif shape != "self_only" and draw(st.booleans()):
        site = ["", "", "def build():",
                '    src = keras.Input(shape=(None,), dtype="int64")',
                '    tgt = keras.Input(shape=(None,), dtype="int64")',
                "    x = keras.layers.Embedding(100, 16, mask_zero=True)(src)",
                "    y = keras.layers.Embedding(100, 16, mask_zero=True)(tgt)"]
        if draw(st.booleans()):
            site.append(f"    out = {names['cls']}(16, 2)(y, x)")
        else:
            site += [f"    layer = {names['cls']}(16, 2)", f"    out = layer({dec}=y, {enc}=x)"]
        site.append("    return keras.Model([src, tgt], out)")

    header = [d["imports"].rstrip("\n"), "", ""]
    source = "\n".join(header + module_helpers + cls + site) + "\n"
    compile(source, "<generated>", "exec")
    return source


def _once(source):
    """Findings and rewrite from one engine pass."""
    out = engine.run({"generated.py": source}, fix=True)["generated.py"]
    assert out.error is None, (out.error, source)
    return out.findings, out.new_source


@SETTINGS
@given(decoders(BUGGY_SHAPES))
def test_every_buggy_decoder_is_flagged_and_fixed_cleanly(source):
    findings, fixed = _once(source)
    assert [f.code for f in findings if f.code == "MF001"] == ["MF001"], source
    assert {f.code for f in findings} <= {"MF001", "MF002"}, (findings, source)
    assert all(f.fixable for f in findings if f.code == "MF001")
    assert fixed is not None and "encoder_padding_mask" in fixed
    compile(fixed, "<fixed>", "exec")
    assert _once(fixed) == ([], None), fixed  # clean under check, and a second rewrite changes nothing
    _layout_kept(source, fixed)


@settings(SETTINGS, max_examples=80)
@given(decoders(GOOD_SHAPES))
def test_every_correct_or_decoder_only_layer_is_left_alone(source):
    assert _once(source) == ([], None), source


def _layout_kept(source, fixed):
    """Every comment stays at its line's indentation; no line gains trailing blanks."""
    new = fixed.splitlines()
    for line in source.splitlines():
        if "#" in line:
            comment = line[line.index("#"):]
            indent = len(line) - len(line.lstrip())
            assert any(l.endswith(comment) and len(l) - len(l.lstrip()) == indent for l in new), (line, fixed)
    assert all(l == l.rstrip() for l in new), fixed
