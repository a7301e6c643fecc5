"""MF008: a decoder trained by teacher forcing whose self-attention is not causal."""

from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

import libcst as cst

from ..flow.values import TOP, ModuleValues, is_self_attention
from ..flow.attention import AttentionCall
from ..rewrite import Edits, Style
from ..syntax import iter_nodes, last_name
from .base import Context, Problem, Rule

_DECODER = """\
import keras
from keras import layers, ops


class DecoderBlock(layers.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        self.self_attn = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)
        self.cross_attn = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)

    def call(self, x, enc, enc_mask):
        x = x + self.self_attn(x, x{causal})
        return x + self.cross_attn(x, enc, attention_mask=enc_mask[:, None, :])


def split(pairs):
    src, tgt = pairs
    return (src, tgt[:, :-1]), tgt[:, 1:]
"""

# names and keys of the shifted decoder input (``decoder_inputs``, ``dec_input``, ``tar_inp``)
_SHIFTED_NAME = re.compile(r"^(dec(oder)?|tar(get)?)_?inp(ut)?s?$", re.I)
# calls that pick the next token in a generation loop
_PICK = {"argmax", "categorical", "multinomial", "top_k", "sample"}
# names that hold a start-of-sequence token
_START = re.compile(r"(^|_)(start|sos|bos|go)(_|$)", re.I)


class NonCausalSelfAttention(Rule):
    code = "MF008"
    name = "non-causal-decoder-self-attention"
    summary = ("A decoder trained on shifted targets (teacher forcing) calls its self-attention without a "
               "causal mask, so each step sees the later target tokens it must predict.")
    description = (
        "The decoder is trained on shifted targets (`[:, :-1]` in, `[:, 1:]` out, `decoder_inputs`, a "
        "start token, or a generation loop), but its self-attention gets no causal mask, or a causal "
        "flag that is off during training (`use_causal_mask=not training`). Training reads the answer; "
        "generation, which has no future, produces garbage.")
    fixed = ("yes for Keras `MultiHeadAttention` (and the project's attention layers that forward "
             "`use_causal_mask`): `use_causal_mask=True` is added or switched on; reported only otherwise")
    explanation = """\
Under teacher forcing the decoder reads the whole target at once; only a causal mask keeps step
t from attending to steps after t. Keras combines `use_causal_mask=True` with any padding mask
already passed.

Before:

    x = x + self.self_attn(x, x, attention_mask=padding_mask)

After:

    x = x + self.self_attn(x, x, attention_mask=padding_mask, use_causal_mask=True)
"""
    INVALID = (
        _DECODER.format(causal=""),
        _DECODER.format(causal=", use_causal_mask=not training").replace(
            "def call(self, x, enc, enc_mask):", "def call(self, x, enc, enc_mask, training=False):"),
    )
    VALID = (
        _DECODER.format(causal=", use_causal_mask=True"),
        # not trained on shifted targets: a decoder over learned queries, no generation loop
        _DECODER.format(causal="").split("\n\ndef split")[0] + "\n",
    )

    def check(self, ctx: Context) -> Iterable[Problem]:
        evidence = _evidence(ctx)
        if evidence is None:
            return
        mv = ctx.values()
        for fn, cls in mv.functions_with_classes():
            calls = mv.attention_calls(fn, cls)
            selfs = [(n, ac) for n, ac in calls if is_self_attention(ac)]
            if not selfs or not any(ac.query is not None and ac.value is not None and not is_self_attention(ac)
                                    for _, ac in calls):
                continue  # not a decoder of an encoder-decoder model
            for layer, ac in selfs:
                verdict = _causality(mv, fn, cls, ac)
                if verdict is None:
                    continue
                keyword = _causal_keyword(mv, layer)
                key, node, why = evidence
                line = ctx.where(key, node)[0]
                where = f"line {line}" if key == ctx.key else f"{key}:{line}"
                yield Problem(self.code, ac.call, message(ac, ctx.module, verdict, why, where),
                              _fix(ac, keyword) if keyword or ac.causal_flag is not None else None,
                              key=id(ac.call))


def message(ac: AttentionCall, module: cst.Module, verdict: str, why: str, where: str) -> str:
    callee = module.code_for_node(ac.call.func)
    return (f"decoder self-attention `{callee}` {verdict}, but the decoder is autoregressive "
            f"({why}, {where}): under teacher forcing each step sees the tokens it must predict")


def _evidence(ctx: Context) -> Optional[Tuple[str, cst.CSTNode, str]]:
    """Teacher forcing in this source, or in a source of the run that imports one of its classes."""
    found = teacher_forcing(ctx.module)
    if found is not None:
        return (ctx.key, *found)
    mine = {c.name.value for c in iter_nodes(ctx.module, cst.ClassDef)}
    if not mine:
        return None
    for key, module in ctx.modules.items():
        if key == ctx.key or not _imports_any(module, mine):
            continue
        found = teacher_forcing(module)
        if found is not None:
            return (key, *found)
    return None


def _imports_any(module: cst.Module, names: set) -> bool:
    for node in iter_nodes(module, cst.ImportFrom):
        if isinstance(node.names, cst.ImportStar):
            return True
        if any(isinstance(a.name, cst.Name) and a.name.value in names for a in node.names):
            return True
    return False


def _causality(mv: ModuleValues, fn: cst.FunctionDef, cls, ac: AttentionCall) -> Optional[str]:
    """Why the self-attention is not causal, or None when it is (or cannot be told)."""
    flag = ac.causal_flag.value if ac.causal_flag is not None else None
    if flag is not None:
        if _off_in_training(flag):
            return f"has `{mv.module.code_for_node(flag)}` as its causal flag, off during training"
        if not (isinstance(flag, cst.Name) and flag.value == "False"):
            return None  # on, or not known here
    if ac.mask_arg is None:
        return "has no causal mask" if flag is None else "has its causal flag off"
    value = mv.interpreter(fn, cls).value(ac.mask_arg.value)
    if value.opaque or value == TOP or value.causal:
        return None
    return "gets a mask that is not causal" if value.is_mask else "has no causal mask"


def _off_in_training(flag: cst.BaseExpression) -> bool:
    """``not training`` / ``not self.training``: causal only at inference."""
    return (isinstance(flag, cst.UnaryOperation) and isinstance(flag.operator, cst.Not)
            and last_name(flag.expression) == "training")


def _causal_keyword(mv: ModuleValues, layer: str) -> Optional[str]:
    signature = mv.attentions.signature(layer)
    if signature is None:
        return None
    for param, role in signature.roles.items():
        if role == "use_causal_mask":
            return param
    return None


def _fix(ac: AttentionCall, keyword: Optional[str]):
    def fix(edits: Edits, style: Style) -> None:
        if ac.causal_flag is not None:
            edits.replace[id(ac.causal_flag.value)] = cst.Name("True")
            return
        edits.add_args.setdefault(id(ac.call), []).append(
            cst.Arg(keyword=cst.Name(keyword), value=cst.Name("True"),
                    equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
    return fix


def teacher_forcing(module: cst.Module) -> Optional[Tuple[cst.CSTNode, str]]:
    """Where the module shows an autoregressive decoder: shifted targets, a decoder-input name or key,
    a start token concatenated in front, or a loop that picks the next token."""
    for sub in iter_nodes(module, cst.Subscript):
        if _shifted(sub):
            return sub, "`" + module.code_for_node(sub) + "`"
    for node in iter_nodes(module, (cst.Name, cst.SimpleString)):
        text = node.value if isinstance(node, cst.Name) else node.value.strip("'\"bruBRU")
        if _SHIFTED_NAME.match(text):
            return node, f"`{text}`"
    for call in iter_nodes(module, cst.Call):
        if last_name(call.func) in ("concat", "concatenate") and any(
                _START.search(n.value) for n in iter_nodes(call, cst.Name)):
            return call, "a start token in front"
    # a loop that picks the next token, itself or through a function of the module
    pickers = {fn.name.value for fn in iter_nodes(module, cst.FunctionDef)
               if any(last_name(c.func) in _PICK for c in iter_nodes(fn.body, cst.Call))}
    for loop in iter_nodes(module, (cst.For, cst.While)):
        if any(last_name(c.func) in _PICK or (isinstance(c.func, cst.Name) and c.func.value in pickers)
               for c in iter_nodes(loop.body, cst.Call)):
            return loop, "a generation loop"
    return None


def _shifted(sub: cst.Subscript) -> bool:
    """``x[:, :-1]``, ``x[:, 1:]``, ``x[..., :-1]``: a sequence shifted along its second axis or last axis."""
    if len(sub.slice) < 2:
        return False
    *lead, last = [el.slice for el in sub.slice]
    if not all(isinstance(s, cst.Slice) and s.lower is None and s.upper is None and s.step is None
               or isinstance(s, cst.Index) and isinstance(s.value, cst.Ellipsis) for s in lead):
        return False
    if not isinstance(last, cst.Slice) or last.step is not None:
        return False
    lower = _literal(last.lower)
    upper = _literal(last.upper)
    return (last.lower is None and upper == -1) or (lower == 1 and last.upper is None)


def _literal(node: Optional[cst.CSTNode]) -> Optional[int]:
    if isinstance(node, cst.Integer):
        return int(node.value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) \
            and isinstance(node.expression, cst.Integer):
        return -int(node.expression.value)
    return None


RULE = NonCausalSelfAttention()
