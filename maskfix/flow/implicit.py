"""Decoder layers whose cross-attention relies on the masks Keras attaches to tensors.

Such a layer passes no mask to its cross-attention: Keras masks the keys with the mask
attached to the encoder outputs.  That mask exists in one functional model, but a decoder
sub-model built from its own ``keras.Input`` for the encoder outputs starts with none there,
so the cross-attention attends to source padding.  This module finds those layers;
``rewrite.plan_implicit_layer`` gives them an ``encoder_padding_mask`` parameter as it does for MF001.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from .decoders import DecoderClass, ModuleFacts
from .attention import KERAS_MHA, Attentions, attention_attributes, attention_calls, find_wrappers
from .reaching import Scope, param_names, roots
from ..syntax import instance_key, iter_nodes, keyword_arg, last_name, positional_args, self_attr
from ..trace import layer_instances

EXPLICIT_MASKS = ("attention_mask", "key_mask", "value_mask")


def implicit_decoders(module: cst.Module, facts: ModuleFacts) -> List[Tuple[DecoderClass, Optional[str]]]:
    """Layer classes whose cross-attention (keys from another input than the queries) gets no
    explicit mask and no causal flag, each with the keyword that passes that attention a mask
    (``attention_mask`` for Keras' own layer; None when a wrapper of the project's takes none)."""
    runtime = facts.dialect.runtime
    attentions = Attentions(runtime, find_wrappers([module], lambda m: runtime))
    known = {id(d.node) for d in facts.decoders}
    out = []
    for cls in iter_nodes(module, cst.ClassDef):
        if id(cls) in known:
            continue
        fn = next((s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "call"), None)
        if fn is None:
            continue
        attrs = attention_attributes(cls, attentions)
        if not attrs:
            continue
        scope = Scope(fn)
        params = param_names(fn)
        for ac in attention_calls(fn, attrs, attentions):
            if ac.query is None or ac.value is None or ac.causal_flag is not None:
                continue
            q_roots, v_roots = roots(ac.query, scope), roots(ac.value, scope)
            enc = v_roots - q_roots
            if len(v_roots) != 1 or not enc or next(iter(enc)) not in params:
                continue
            if ac.mask_arg is not None or any(keyword_arg(ac.call, k) is not None for k in EXPLICIT_MASKS):
                break  # masked explicitly: MF001's business
            dec = [p for p in params if p in q_roots and p not in enc]
            if not dec:
                continue
            out.append((DecoderClass(
                node=cls, name=cls.name.value, call=fn, params=params, dec_param=dec[0],
                enc_param=next(iter(enc)), self_attention=None, cross_attention=ac, labels=set(),
                mask_param="mask" if "mask" in params else None), _mask_keyword(ac.call, attrs, attentions)))
            break
    return out


def _mask_keyword(call: cst.Call, attrs: Dict[str, str], attentions: Attentions) -> Optional[str]:
    kind = attrs.get(self_attr(call.func) or "")
    if kind is None:  # a loop variable over a list of layers: one kind when they all are one
        kinds = set(attrs.values())
        kind = kinds.pop() if len(kinds) == 1 else None
    signature = attentions.signature(kind)
    if signature is None:
        return None
    return next((p for p in signature.params if signature.roles.get(p) == "attention_mask"),
                "attention_mask" if kind == KERAS_MHA else None)


def padded_ids(module: cst.Module, facts: ModuleFacts, names: Set[str]) -> bool:
    """Whether one of ``names`` (token ids) goes through an embedding that attaches a padding mask:
    ``Embedding(..., mask_zero=True)`` or a layer of the run with a ``compute_mask``."""
    instances = layer_instances(module)

    def masking(ctor: cst.BaseExpression) -> bool:
        if not isinstance(ctor, cst.Call):
            return False
        name = last_name(ctor.func) or ""
        if name in facts.embedding_classes:
            return True
        zero = keyword_arg(ctor, "mask_zero")
        return "Embedding" in name and zero is not None and last_name(zero.value) == "True"

    for call in iter_nodes(module, cst.Call):
        pos = positional_args(call)
        if not pos or not isinstance(pos[0].value, cst.Name) or pos[0].value.value not in names:
            continue
        func = call.func
        ctor = func if isinstance(func, cst.Call) else instances.get(instance_key(func) or "")
        if masking(ctor):
            return True
    return False


__all__ = ["implicit_decoders", "padded_ids", "EXPLICIT_MASKS"]
