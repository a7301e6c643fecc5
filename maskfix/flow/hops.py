"""Follow a factory's masks hop by hop, from the call that passes them on to the attentions.

A tutorial factory returns (encoder padding, combined look-ahead, cross padding).  The two
decoder masks travel through several calls (model -> decoder -> decoder layer) before the layer
hands them to its self-attention and its cross-attention.  Each hop keeps or exchanges their
order: a call keeps it when the mask that came in first (the earlier parameter of the calling
function, or the earlier factory slot at the first hop) goes to the earlier parameter of the
callee; the layer keeps it when the earlier one goes to the self-attention (the attention whose
keys are the query's own sequence).  The combined look-ahead mask reaches the cross-attention
exactly when an odd number of hops exchange them, and the hop to fix is the one that does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import libcst as cst

from .factories import (
    Factory,
    LayerClass,
    MaskCall,
    applications,
    bind_args,
    call_params,
    factory_mask_calls,
    layer_classes,
)
from .reaching import Scope, roots
from ..syntax import positional_args

LOOK_AHEAD, CROSS = 1, 2  # factory slots of the two decoder masks


@dataclass
class Hop:
    """One place the two decoder masks are passed on."""

    where: str  # ``Class.call``, or "the call" for the first hop
    nodes: Tuple[cst.CSTNode, ...]  # the call, or the two attention calls
    args: Tuple[cst.Arg, cst.Arg]  # what carries (first, second) in the order they arrived
    names: Tuple[str, str]  # how they are called there (parameter names, or the argument text)
    exchanged: bool
    key: Optional[str] = None  # the source holding ``nodes``; None: the one the route starts in


@dataclass
class Route:
    """The two masks of one factory call, followed down to one decoder layer's attentions."""

    factory: Factory
    start: MaskCall
    hops: List[Hop] = field(default_factory=list)

    @property
    def look_ahead_reaches_cross(self) -> bool:
        return sum(h.exchanged for h in self.hops) % 2 == 1


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _walk(cls_name: str, carried: Dict[str, int], classes: Dict[str, LayerClass], hops: List[Hop],
          out: List[List[Hop]], depth: int = 0) -> None:
    """Extend ``hops`` below ``cls_name``'s call, where parameter -> slot is ``carried``."""
    cls = classes.get(cls_name)
    if cls is None or cls.call is None or depth > 6:
        return
    fn = cls.call
    params = call_params(cls)
    rank = {slot: params.index(p) for p, slot in carried.items() if p in params}
    if LOOK_AHEAD not in rank or CROSS not in rank:
        return
    first, second = sorted((LOOK_AHEAD, CROSS), key=rank.get)
    name_of = {slot: p for p, slot in carried.items()}
    where = f"{cls_name}.{fn.name.value}"
    scope = Scope(fn)
    attention: Dict[str, Tuple[cst.Call, cst.Arg, int]] = {}  # "self"/"cross" -> (call, mask arg, slot)
    for app in applications(cls, classes):
        call, inner = app.call, app.layer
        if app.slots is not None:
            q, v, m, mask_arg = app.slot("query"), app.slot("value"), app.slot("mask"), app.slots.get("mask")
            if q is None or v is None or m is None:
                continue
            hit = [carried[n] for n in roots(m, scope) if n in carried]
            if len(hit) != 1:
                continue
            q_roots, v_roots = roots(q, scope), roots(v, scope)
            kind = "cross" if v_roots and not (v_roots & q_roots) else "self"
            attention.setdefault(kind, (call, mask_arg, hit[0]))
            continue
        if inner not in classes:
            continue
        inner_params = call_params(classes[inner])
        bound = bind_args(call, inner_params)
        inner_carried: Dict[str, int] = {}
        for param, value in bound.items():
            hit = [carried[n] for n in roots(value, scope) if n in carried]
            if len(hit) == 1:
                inner_carried[param] = hit[0]
        arg_of = _args_of(call, inner_params, inner_carried)
        if LOOK_AHEAD in arg_of and CROSS in arg_of:
            out_rank = {slot: inner_params.index(p) for p, slot in inner_carried.items()}
            hop = Hop(where, (call,), (arg_of[first], arg_of[second]), (name_of[first], name_of[second]),
                      exchanged=out_rank[first] > out_rank[second], key=cls.key)
            _walk(inner, inner_carried, classes, hops + [hop], out, depth + 1)
    if "self" in attention and "cross" in attention:
        (s_call, s_arg, s_slot), (c_call, c_arg, c_slot) = attention["self"], attention["cross"]
        if {s_slot, c_slot} == {LOOK_AHEAD, CROSS}:
            args = (s_arg, c_arg) if s_slot == first else (c_arg, s_arg)
            out.append(hops + [Hop(where, (s_call, c_call), args, (name_of[first], name_of[second]),
                                   exchanged=s_slot != first, key=cls.key)])


def _args_of(call: cst.Call, params: List[str], carried: Dict[str, int]) -> Dict[int, cst.Arg]:
    out: Dict[int, cst.Arg] = {}
    for arg, param in zip(positional_args(call), params):
        if param in carried:
            out.setdefault(carried[param], arg)
    for a in call.args:
        if a.keyword is not None and a.keyword.value in carried:
            out.setdefault(carried[a.keyword.value], a)
    return out


def routes(module: cst.Module, factories: List[Factory],
           classes: Optional[Dict[str, LayerClass]] = None) -> List[Route]:
    """Every route of the two decoder masks from a factory call to a decoder layer's attentions
    (``classes``: the layer classes ``module`` can use, by default its own)."""
    classes = layer_classes(module) if classes is None else classes
    out = []
    for mc in factory_mask_calls(module, factories, classes):
        if LOOK_AHEAD not in mc.arg_of or CROSS not in mc.arg_of:
            continue
        params = call_params(classes[mc.cls_name])
        rank = {slot: params.index(p) for p, slot in mc.carried.items() if p in params}
        if LOOK_AHEAD not in rank or CROSS not in rank:
            continue
        args = (mc.arg_of[LOOK_AHEAD], mc.arg_of[CROSS])
        first = Hop("the call", (mc.call,), args, (_code(args[0].value), _code(args[1].value)),
                    exchanged=rank[LOOK_AHEAD] > rank[CROSS])
        found: List[List[Hop]] = []
        _walk(mc.cls_name, mc.carried, classes, [first], found)
        out += [Route(mc.factory, mc, hops) for hops in found]
    return out


def swapped_hops(module: cst.Module, factories: List[Factory],
                 classes: Optional[Dict[str, LayerClass]] = None) -> List[Tuple[Route, Hop]]:
    """``(route, hop)`` for each route whose look-ahead mask reaches the cross-attention through
    exactly one exchanging hop, the hop to fix."""
    out = []
    for r in routes(module, factories, classes):
        exchanged = [h for h in r.hops if h.exchanged]
        if r.look_ahead_reaches_cross and len(exchanged) == 1:
            out.append((r, exchanged[0]))
    return out


__all__ = ["Hop", "Route", "routes", "swapped_hops", "LOOK_AHEAD", "CROSS"]
