"""What an attention call means: which argument is the query, the keys/values, and the mask.

Keras ``MultiHeadAttention`` is known under both runtimes: its 4th positional parameter is
``attention_mask`` in tf_keras and ``query_mask`` in Keras 3.  A project's own layer whose
``call`` forwards its parameters to an attention (directly or through another such layer)
is summarised by the role each parameter plays there, so ``mha(x, enc, enc, m)`` binds
like the attention it wraps.  Summaries are computed once per run, across its files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Set

import libcst as cst

from ..syntax import iter_calls, iter_nodes, last_name, positional_args, self_attr
from .reaching import param_names

KERAS_MHA = "MultiHeadAttention"
HUB_PACKAGES = ("keras_hub", "keras_nlp")
HUB_DECODER = "TransformerDecoder"
# keras_hub's (and keras_nlp's) ``TransformerDecoder.call``, in order: the cross-attention takes
# the encoder's padding ``[B, S]`` and an optional ``[B, T, S]`` mask
HUB_DECODER_PARAMS = ("decoder_sequence", "encoder_sequence", "decoder_padding_mask", "decoder_attention_mask",
                      "encoder_padding_mask", "encoder_attention_mask")
ROLES = ("query", "value", "key", "attention_mask", "use_causal_mask")


@dataclass(frozen=True)
class Signature:
    """How an attention layer's call binds: parameter order and the role of each parameter."""

    params: Sequence[str]
    roles: Dict[str, str]  # parameter -> role in ROLES


def keras_signature(runtime: str) -> Signature:
    """``MultiHeadAttention.call``'s parameters as each runtime declares them."""
    if runtime == "tf.keras":
        masks = ("attention_mask",)
    else:
        masks = ("query_mask", "value_mask", "key_mask", "attention_mask")
    params = ("query", "value", "key", *masks, "return_attention_scores", "training", "use_causal_mask")
    return Signature(params, {p: p for p in ROLES})


@dataclass
class AttentionCall:
    call: cst.Call
    query: Optional[cst.BaseExpression]
    value: Optional[cst.BaseExpression]
    key: Optional[cst.BaseExpression]
    mask_arg: Optional[cst.Arg]  # the Arg carrying attention_mask, if any
    causal_flag: Optional[cst.Arg]  # use_causal_mask=... if any


def bind_attention_args(call: cst.Call, signature: Signature) -> AttentionCall:
    slots: Dict[str, cst.Arg] = {}
    for arg, param in zip(positional_args(call), signature.params):
        role = signature.roles.get(param)
        if role:
            slots[role] = arg
    for a in call.args:
        if a.keyword is not None:
            role = signature.roles.get(a.keyword.value)
            if role:
                slots[role] = a
    get = lambda n: slots[n].value if n in slots else None  # noqa: E731
    return AttentionCall(
        call=call,
        query=get("query"),
        value=get("value"),
        key=get("key"),
        mask_arg=slots.get("attention_mask"),
        causal_flag=slots.get("use_causal_mask"),
    )


def hub_decoder_constructors(module: cst.Module) -> "HubNames":
    """How ``module`` names keras_hub's ``TransformerDecoder``: package aliases and imported names."""
    aliases: Set[str] = set()
    names: Set[str] = set()
    for node in iter_nodes(module, (cst.Import, cst.ImportFrom)):
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = cst.Module([]).code_for_node(alias.name)
                if full.split(".")[0] in HUB_PACKAGES:
                    aliases.add(alias.asname.name.value if alias.asname else full.split(".")[0])
            continue
        source = cst.Module([]).code_for_node(node.module) if node.module is not None else ""
        if source.split(".")[0] not in HUB_PACKAGES or isinstance(node.names, cst.ImportStar):
            continue
        for alias in node.names:
            bound = alias.asname.name.value if alias.asname else cst.Module([]).code_for_node(alias.name)
            if last_name(alias.name) == HUB_DECODER:
                names.add(bound)
            elif last_name(alias.name) == "layers":
                aliases.add(bound)
    names -= {c.name.value for c in iter_nodes(module, cst.ClassDef)}  # a class of the file's own
    return HubNames(frozenset(aliases), frozenset(names))


@dataclass(frozen=True)
class HubNames:
    aliases: frozenset  # names bound to keras_hub, keras_nlp or their ``layers``
    names: frozenset  # names bound to ``TransformerDecoder`` itself

    def builds(self, ctor: cst.BaseExpression) -> bool:
        """Whether calling ``ctor`` builds keras_hub's ``TransformerDecoder``."""
        if isinstance(ctor, cst.Name):
            return ctor.value in self.names
        if isinstance(ctor, cst.Attribute) and ctor.attr.value == HUB_DECODER:
            root = ctor.value
            while isinstance(root, cst.Attribute):
                root = root.value
            return isinstance(root, cst.Name) and root.value in self.aliases
        return False


class Attentions:
    """The attention layers a module can use: Keras' and the run's own wrappers, by class name."""

    def __init__(self, runtime: str, wrappers: Optional[Dict[str, Signature]] = None):
        self.runtime = runtime
        self.wrappers = dict(wrappers or {})

    def signature(self, class_name: Optional[str]) -> Optional[Signature]:
        if class_name in self.wrappers:
            return self.wrappers[class_name]
        if class_name == KERAS_MHA:
            return keras_signature(self.runtime)
        return None

    def names(self) -> Set[str]:
        return {KERAS_MHA, *self.wrappers}


def attention_attributes(cls: cst.ClassDef, attentions: Attentions) -> Dict[str, str]:
    """``self`` attributes holding attention layers (or lists of them) -> the layer's class."""
    names = attentions.names()
    attrs: Dict[str, str] = {}
    for node in iter_nodes(cls.body, (cst.Assign, cst.AnnAssign)):
        if node.value is None:
            continue
        targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        built = next((last_name(c.func) for c in iter_nodes(node.value, cst.Call)
                      if last_name(c.func) in names), None)
        if built is None:
            continue
        for target in targets:
            attr = self_attr(target)
            if attr:
                attrs.setdefault(attr, built)
    return attrs


def bind_loop(target: cst.BaseExpression, it: cst.BaseExpression, attrs: Dict[str, str],
              out: Dict[str, str]) -> None:
    """Bind the loop variables in ``target`` that run over the attention lists ``attrs`` names:
    ``for a in self.attns``, ``for a, b in zip(self.xs, self.ys)``, ``for i, a in enumerate(self.attns)``."""
    if isinstance(target, cst.Name):
        attr = self_attr(it)
        if attr in attrs:
            out[target.value] = attrs[attr]
        return
    if not isinstance(target, (cst.Tuple, cst.List)) or not isinstance(it, cst.Call):
        return
    parts = [el.value for el in target.elements]
    args = [a.value for a in positional_args(it)]
    fname = last_name(it.func)
    if fname == "zip" and len(args) == len(parts):
        for t, a in zip(parts, args):
            bind_loop(t, a, attrs, out)
    elif fname == "enumerate" and len(parts) == 2 and args:
        bind_loop(parts[1], args[0], attrs, out)


def loop_layers(fn: cst.FunctionDef, attrs: Dict[str, str]) -> Dict[str, str]:
    """Loop variables of ``fn`` that run over attention lists (see ``bind_loop``)."""
    out: Dict[str, str] = {}
    for loop in iter_nodes(fn.body, cst.For):
        bind_loop(loop.target, loop.iter, attrs, out)
    return out


def attention_calls(fn: cst.FunctionDef, attrs: Dict[str, str], attentions: Attentions) -> List[AttentionCall]:
    """Attention applications in ``fn``: ``self.attn(...)``, ``self.attns[i](...)``, a loop
    variable over a list of them, ``Attention(...)(...)``, or a local bound to a new one."""
    names = attentions.names()
    local: Dict[str, str] = loop_layers(fn, attrs)
    for node in iter_nodes(fn.body, cst.Assign):
        if isinstance(node.value, cst.Call) and last_name(node.value.func) in names:
            for t in node.targets:
                if isinstance(t.target, cst.Name):
                    local[t.target.value] = last_name(node.value.func)
    out = []
    for call in iter_calls(fn.body):
        func = call.func
        cls_name = None
        attr = self_attr(func)
        if attr in attrs:
            cls_name = attrs[attr]
        elif isinstance(func, cst.Call) and last_name(func.func) in names:
            cls_name = last_name(func.func)
        elif isinstance(func, cst.Name) and func.value in local:
            cls_name = local[func.value]
        signature = attentions.signature(cls_name)
        if signature is not None:
            out.append(bind_attention_args(call, signature))
    return out


def _call_method(cls: cst.ClassDef) -> Optional[cst.FunctionDef]:
    for s in cls.body.body:
        if isinstance(s, cst.FunctionDef) and s.name.value in ("call", "__call__"):
            return s
    return None


def wrapper_signature(cls: cst.ClassDef, attentions: Attentions) -> Optional[Signature]:
    """The roles of ``cls.call``'s parameters when it forwards them to an attention it owns."""
    fn = _call_method(cls)
    if fn is None:
        return None
    attrs = attention_attributes(cls, attentions)
    if not attrs:
        return None
    params = param_names(fn)
    roles: Dict[str, str] = {}
    calls = attention_calls(fn, attrs, attentions)
    if len(calls) != 1:
        return None  # two attentions (self and cross) make a decoder layer, not a wrapper
    for ac in calls:
        for role, value in (("query", ac.query), ("value", ac.value), ("key", ac.key),
                            ("attention_mask", ac.mask_arg.value if ac.mask_arg else None),
                            ("use_causal_mask", ac.causal_flag.value if ac.causal_flag else None)):
            if isinstance(value, cst.Name) and value.value in params:
                roles.setdefault(value.value, role)
    if "query" not in roles.values() or "value" not in roles.values():
        return None
    return Signature(tuple(params), roles)


def find_wrappers(modules: Iterable[cst.Module], runtime_of,
                  known: Optional[Dict[str, Signature]] = None) -> Dict[str, Signature]:
    """Attention wrappers defined in ``modules``, by class name; wrappers of wrappers (also of
    the ``known`` ones) too."""
    classes = [(m, c) for m in modules for c in iter_nodes(m, cst.ClassDef)]
    runtimes: Dict[int, str] = {}  # one walk of each module, not one per class
    for module, _ in classes:
        if id(module) not in runtimes:
            runtimes[id(module)] = runtime_of(module)
    found: Dict[str, Signature] = dict(known or {})
    for _ in range(4):  # a wrapper of a wrapper is found in the next round
        before = len(found)
        for module, cls in classes:
            name = cls.name.value
            if name in found or name == KERAS_MHA:
                continue
            sig = wrapper_signature(cls, Attentions(runtimes[id(module)], found))
            if sig is not None:
                found[name] = sig
        if len(found) == before:
            break
    return found
