"""Mask factories of the TensorFlow-tutorial lineage.

A factory ``f(inp, tar)`` returns three masks by a documented contract:
(encoder padding, combined look-ahead for decoder self-attention, padding of
the encoder outputs for the decoder's cross-attention).  Three mistakes are
found by following values, never names:

- MF004: the third mask is built from the target instead of the source;
- MF005: the second slot holds the bare look-ahead mask, without the
  target's padding;
- MF006: a caller passes the masks on in swapped slots, so the combined
  look-ahead mask reaches the cross-attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import libcst as cst

from .attention import KERAS_MHA, Attentions, keras_signature, loop_layers
from .reaching import Element, Scope, assigned_values, param_names, roots, scope_of
from .values import SOURCE, TARGET, Interpreter, ModuleValues, depends_on
from ..dialect import module_dialect
from ..symbols import Symbols
from ..syntax import (
    instance_key,
    iter_calls,
    iter_nodes,
    iter_own_nodes,
    last_name,
    positional_args,
    self_attr,
)

# How attention layers of a project name their call parameters.
ROLES = {
    "q": "query", "query": "query", "queries": "query",
    "k": "key", "key": "key", "keys": "key",
    "v": "value", "value": "value", "values": "value",
    "mask": "mask", "attention_mask": "mask", "attn_mask": "mask",
}
_KERAS_MHA = ["query", "value", "key", "mask"]  # tf.keras positional order


@dataclass
class Factory:
    fn: cst.FunctionDef
    src: str  # first parameter: source ids
    tgt: str  # second parameter: target ids
    ret: cst.Tuple  # the returned triple
    values: Interpreter  # the abstract values in ``fn``, from ``src`` and ``tgt``
    funcs: Dict[str, cst.FunctionDef]  # the module's functions, by name
    cross_from_target: bool = False  # MF004: the third mask comes from the target
    bare_lookahead: bool = False  # MF005: the second mask lacks the target's padding
    # ``a, b, c = (x, y, z)`` inside ``fn``: the masks are built in place (a factory's body
    # written out at its call) and bound here, not returned
    site: Optional[cst.Assign] = None

    @property
    def name(self) -> str:
        return self.fn.name.value

    def slot_names(self) -> Dict[str, int]:
        """For masks built in place: the names bound to the three masks -> their slot."""
        if self.site is None:
            return {}
        target = self.site.targets[0].target
        return {el.value.value: k for k, el in enumerate(target.elements) if isinstance(el.value, cst.Name)}


def _returned_triple(fn: cst.FunctionDef) -> Optional[cst.Tuple]:
    rets = [r for r in iter_own_nodes(fn.body, cst.Return) if r.value is not None]
    if len(rets) != 1:
        return None
    t = rets[0].value
    if isinstance(t, cst.Name):  # ``masks = a, b, c`` ... ``return masks``
        values, is_param = scope_of(fn).reaching(t.value, t)
        t = values[0] if len(values) == 1 and not is_param else None
    return t if isinstance(t, cst.Tuple) and len(t.elements) == 3 else None


def _by_contract(values: ModuleValues, fn: cst.FunctionDef, src: str, tgt: str, triple: cst.BaseExpression,
                 site: Optional[cst.Assign] = None) -> Optional[Factory]:
    """A ``Factory`` when the three masks of ``triple``, built from ``src`` and ``tgt`` in ``fn``,
    follow the contract (source padding first, a look-ahead mask second)."""
    it = values.decoder_interpreter(fn, values.owner.get(id(fn)), tgt, src, None)
    first, second, third = (it.value(e.value) for e in triple.elements)
    if not second.causal or not depends_on(first, SOURCE):
        return None  # not the contract: no look-ahead in the second slot
    return Factory(fn, src, tgt, triple, it, values.functions,
                   cross_from_target=depends_on(third, TARGET) and not depends_on(third, SOURCE),
                   bare_lookahead=not depends_on(second, TARGET), site=site)


def _values_of(module: cst.Module, values: Optional[ModuleValues]) -> ModuleValues:
    return values if values is not None else ModuleValues(module, Attentions(module_dialect(module).runtime))


def find_factories(module: cst.Module, values: Optional[ModuleValues] = None) -> List[Factory]:
    """The module's mask factories (``values``: its abstract values, built here when not given)."""
    out = []
    for fn in iter_nodes(module, cst.FunctionDef):
        params = param_names(fn)
        if len(params) != 2:
            continue
        ret = _returned_triple(fn)
        if ret is None:
            continue
        values = _values_of(module, values)
        f = _by_contract(values, fn, params[0], params[1], ret)
        if f is not None:
            out.append(f)
    return out


def _triple_site(node: cst.Assign) -> bool:
    """``a, b, c = (x, y, z)``: three names bound to three values."""
    if len(node.targets) != 1:
        return False
    target, value = node.targets[0].target, node.value
    return (isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List))
            and len(target.elements) == 3 and len(value.elements) == 3
            and all(isinstance(el, cst.Element) and isinstance(el.value, cst.Name) for el in target.elements)
            and all(isinstance(el, cst.Element) for el in value.elements))


def inline_factories(module: cst.Module, values: Optional[ModuleValues] = None) -> List[Factory]:
    """Masks built in place by the factory contract and bound to three names at once, as a
    factory's body written out at its call leaves them: ``a, b, c = (x, y, z)``.  The source is
    the one parameter the first mask is built from, the target the one the second adds."""
    sites = [n for n in iter_nodes(module, cst.Assign) if _triple_site(n)]
    if not sites:
        return []
    values = _values_of(module, values)
    wanted = {id(n) for n in sites}
    out = []
    for fn in iter_nodes(module, cst.FunctionDef):
        mine = [n for n in iter_own_nodes(fn.body, cst.Assign) if id(n) in wanted]
        if not mine:
            continue
        scope = scope_of(fn)
        for node in mine:
            first, second = (roots(el.value, scope) - {"self"} for el in node.value.elements[:2])
            second = second - first
            if len(first) != 1 or len(second) != 1:
                continue
            f = _by_contract(values, fn, first.pop(), second.pop(), node.value, node)
            if f is not None:
                out.append(f)
    return out


# --------------------------------------------------------------------------
# fixes inside the factory


def target_to_source(f: Factory) -> List[cst.Name]:
    """The ``tar`` arguments that the third mask is built from (to become ``inp``)."""
    hits = []
    third = f.ret.elements[2].value
    for value in assigned_values(f.values.scope, third):
        if value is not third and isinstance(value, cst.Name) and value.value == f.tgt:
            hits.append(value)  # ``seq = tar``: an alias the mask is built from
            continue
        for call in iter_nodes(value, cst.Call):
            for a in call.args:
                if isinstance(a.value, cst.Name) and a.value.value == f.tgt:
                    hits.append(a.value)
    return hits


def _calls_made(funcs: Dict[str, cst.FunctionDef], name: str, depth: int = 3) -> Set[str]:
    """Names of the functions ``funcs[name]`` calls, through the module functions it calls in turn
    (a wrapper of the padding helper keeps its polarity)."""
    used = {last_name(c.func) for c in iter_nodes(funcs[name].body, cst.Call)}
    if depth > 0:
        for inner in [n for n in used if n in funcs and n != name]:
            used |= _calls_made(funcs, inner, depth - 1)
    return used


@dataclass
class SourcePadding:
    """How the factory builds the source's padding: an expression that reads the source ids only
    through ``reads`` (the source parameter, or a name bound to it alone)."""

    expr: cst.BaseExpression
    reads: List[cst.Name]
    combine: str  # how a padding mask of this polarity joins a look-ahead mask: maximum or minimum

    def of(self, ids: str) -> cst.BaseExpression:
        """The same padding, built from ``ids``."""
        mine = {id(n) for n in self.reads}

        class Swap(cst.CSTTransformer):
            def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
                return cst.Name(ids) if id(original) in mine else updated

        return self.expr.visit(Swap())


def _aliases_source(f: Factory, name: cst.Name) -> bool:
    """``name`` holds the source ids: the source parameter, or a chain of plain aliases of it."""
    seen = set()
    while name.value != f.src:
        if name.value in seen:
            return False
        seen.add(name.value)
        values, is_param = f.values.scope.reaching(name.value, name)
        if is_param or len(values) != 1 or not isinstance(values[0], cst.Name):
            return False
        name = values[0]
    return True


def _combine_op(funcs: Dict[str, cst.FunctionDef], expr: cst.CSTNode) -> Optional[str]:
    """1 marks padding (``equal`` 0): maximum; 1 marks tokens (``not_equal``): minimum."""
    used = {last_name(c.func) for c in iter_nodes(expr, cst.Call)}
    for inner in [n for n in used if n in funcs]:
        used |= _calls_made(funcs, inner)
    if "not_equal" in used:
        return "minimum"
    if "equal" in used:
        return "maximum"
    return None


def source_padding(f: Factory) -> Optional[SourcePadding]:
    """The source padding of the first slot: a helper called on the source (``pad(inp)``), else
    the computation written out (``tf.cast(tf.math.equal(ids, 0), ...)`` with ``ids = inp``)."""
    funcs = f.funcs
    for value in assigned_values(f.values.scope, f.ret.elements[0].value):
        for call in iter_nodes(value, cst.Call):
            args = positional_args(call)
            if (isinstance(call.func, cst.Name) and call.func.value in funcs
                    and len(args) == 1 and isinstance(args[0].value, cst.Name) and args[0].value.value == f.src):
                op = _combine_op(funcs, call)
                if op is not None:
                    return SourcePadding(call, [args[0].value], op)
    expr = f.ret.elements[0].value
    while isinstance(expr, cst.Name):  # the padding's own computation, through the names bound to it
        values, is_param = f.values.scope.reaching(expr.value, expr)
        if is_param or len(values) != 1 or isinstance(values[0], (Element, cst.FunctionDef, cst.ClassDef)):
            return None
        expr = values[0]
    local = set(f.values.scope.assigns) | f.values.scope.params
    skip = {id(c.func) for c in iter_nodes(expr, cst.Call)} | {id(a.attr) for a in iter_nodes(expr, cst.Attribute)}
    reads = [n for n in iter_nodes(expr, cst.Name) if id(n) not in skip and n.value in local]
    if not reads or not all(_aliases_source(f, n) for n in reads):
        return None
    op = _combine_op(funcs, expr)
    return SourcePadding(expr, reads, op) if op is not None else None


# --------------------------------------------------------------------------
# callers: follow the three masks into the cross-attention


@dataclass
class LayerClass:
    node: cst.ClassDef
    call: Optional[cst.FunctionDef]
    attrs: Dict[str, str]  # self attribute -> local class name
    key: Optional[str] = None  # the source defining it, when the run's symbols are known
    runtime: Optional[str] = None  # the Keras of its source, which binds its attention calls


def _layer_class(cls: cst.ClassDef, key: Optional[str] = None, runtime: Optional[str] = None) -> LayerClass:
    methods = {s.name.value: s for s in cls.body.body if isinstance(s, cst.FunctionDef)}
    attrs: Dict[str, str] = {}
    for node in iter_nodes(cls.body, cst.Assign):
        for t in node.targets:
            attr = self_attr(t.target)
            if not attr:
                continue
            for call in iter_nodes(node.value, cst.Call):
                name = last_name(call.func)
                if name:
                    attrs.setdefault(attr, name)
                    break
    return LayerClass(cls, methods.get("call") or methods.get("__call__"), attrs, key, runtime)


def layer_classes(module: cst.Module, symbols: Optional[Symbols] = None,
                  key: Optional[str] = None) -> Dict[str, LayerClass]:
    """The layer classes ``module`` can use, by name: its own and, given the run's ``symbols``,
    those it imports from the run, with the classes these use in their own source."""
    if symbols is None or key not in symbols.modules:
        runtime = module_dialect(module).runtime
        return {cls.name.value: _layer_class(cls, None, runtime) for cls in iter_nodes(module, cst.ClassDef)}
    runtimes: Dict[str, str] = {}

    def runtime_of(home: str) -> str:
        if home not in runtimes:
            runtimes[home] = module_dialect(symbols.modules[home]).runtime
        return runtimes[home]

    out = {}
    for name, d in symbols.classes(key).items():
        out[name] = _layer_class(d.node, d.key, runtime_of(d.key))
    for home in sorted({d.key for d in symbols.classes(key).values()} - {key}):
        for name, d in symbols.classes(home).items():
            if name not in out:
                out[name] = _layer_class(d.node, d.key, runtime_of(d.key))
    return out


def call_params(cls: LayerClass) -> List[str]:
    return param_names(cls.call) if cls.call is not None else []


def bind_args(call: cst.Call, params: Sequence[str]) -> Dict[str, cst.BaseExpression]:
    slots = {}
    for arg, name in zip(positional_args(call), params):
        slots[name] = arg.value
    for a in call.args:
        if a.keyword is not None:
            slots[a.keyword.value] = a.value
    return slots


def attention_roles(cls_name: str, classes: Dict[str, LayerClass],
                    runtime: Optional[str] = None) -> Optional[List[str]]:
    """Positional roles of an attention layer's call, or None if it is not one; Keras'
    MultiHeadAttention binds as in ``runtime`` (the Keras of the source calling it)."""
    if cls_name == KERAS_MHA and cls_name not in classes:
        if runtime is None:
            return _KERAS_MHA
        return [ROLES.get(p, "") for p in keras_signature(runtime).params]
    cls = classes.get(cls_name)
    if cls is None:
        return None
    roles = [ROLES.get(p) for p in call_params(cls)]
    if {"query", "value", "mask"} <= set(roles):
        return [r or "" for r in roles]
    return None


@dataclass
class Application:
    """A call, in a layer's ``call``, of a layer it holds on ``self`` (or loops over)."""

    call: cst.Call
    layer: str  # the applied layer's class name
    slots: Optional[Dict[str, cst.Arg]]  # for an attention: role (query, value, key, mask) -> argument

    def slot(self, role: str) -> Optional[cst.BaseExpression]:
        arg = (self.slots or {}).get(role)
        return arg.value if arg is not None else None


def applications(cls: LayerClass, classes: Dict[str, LayerClass]) -> Iterator[Application]:
    """The layers ``cls.call`` applies: ``self.x(...)``, ``self.xs[i](...)``, or a loop variable
    over a list of them; an attention's arguments bound to their roles."""
    loops = loop_layers(cls.call, {a: a for a in cls.attrs})  # loop variable -> the attribute it runs over
    for call in iter_calls(cls.call.body):
        attr = self_attr(call.func)
        if attr is None and isinstance(call.func, cst.Name):
            attr = loops.get(call.func.value)
        if not attr or attr not in cls.attrs:
            continue
        inner = cls.attrs[attr]
        roles = attention_roles(inner, classes, cls.runtime)
        slots = None
        if roles is not None:
            slots = dict(zip(roles, positional_args(call)))
            slots.update({ROLES.get(a.keyword.value, a.keyword.value): a for a in call.args if a.keyword is not None})
        yield Application(call, inner, slots)


def _slots_reaching_cross(cls_name: str, slot_of: Dict[str, int], classes: Dict[str, LayerClass],
                          depth: int = 0) -> Set[int]:
    """Factory slots that reach the mask of a cross-attention below ``cls_name``'s call."""
    cls = classes.get(cls_name)
    if cls is None or cls.call is None or depth > 6:
        return set()
    scope = Scope(cls.call)
    found: Set[int] = set()
    for app in applications(cls, classes):
        call, inner = app.call, app.layer
        if app.slots is not None:
            q, v, m = app.slot("query"), app.slot("value"), app.slot("mask")
            if q is None or v is None or m is None:
                continue
            q_roots, v_roots = roots(q, scope), roots(v, scope)
            if v_roots and not (v_roots & q_roots):
                found |= {slot_of[n] for n in roots(m, scope) if n in slot_of}
            continue
        inner_slots = {}
        for param, value in bind_args(call, call_params(classes[inner]) if inner in classes else []).items():
            hit = [slot_of[n] for n in roots(value, scope) if n in slot_of]
            if len(hit) == 1:
                inner_slots[param] = hit[0]
        if inner_slots:
            found |= _slots_reaching_cross(inner, inner_slots, classes, depth + 1)
    return found


@dataclass
class MaskCall:
    """A call of a local layer that receives masks unpacked from a factory."""

    factory: Factory
    call: cst.Call
    cls_name: str  # the layer class called
    carried: Dict[str, int]  # callee parameter -> factory slot
    arg_of: Dict[int, cst.Arg]  # factory slot -> the argument carrying it


def factory_mask_calls(module: cst.Module, factories: List[Factory],
                       classes: Optional[Dict[str, LayerClass]] = None) -> List[MaskCall]:
    """Calls of the module's layers (``classes``: those it can use, by default its own) that pass
    on at least two masks unpacked from a factory."""
    by_name = {f.name: f for f in factories if f.site is None}
    in_place = [f for f in factories if f.site is not None]
    if not by_name and not in_place:
        return []
    classes = layer_classes(module) if classes is None else classes
    instances: Dict[str, str] = {}
    for node in iter_nodes(module, cst.Assign):
        if isinstance(node.value, cst.Call) and last_name(node.value.func) in classes:
            for t in node.targets:
                key = instance_key(t.target)
                if key:
                    instances[key] = last_name(node.value.func)
    out = []
    # names unpacked from a factory call anywhere in the module
    unpacked: Dict[str, Tuple[Factory, int]] = {}
    for f in in_place:
        unpacked.update({name: (f, k) for name, k in f.slot_names().items()})
    for node in iter_nodes(module, cst.Assign):
        value = node.value
        if not (isinstance(value, cst.Call) and last_name(value.func) in by_name):
            continue
        target = node.targets[0].target
        if isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 3:
            for k, el in enumerate(target.elements):
                if isinstance(el.value, cst.Name):
                    unpacked[el.value.value] = (by_name[last_name(value.func)], k)
    if not unpacked:
        return out
    # renamed on the way: ``look_ahead = combined`` or ``a, b = combined, padding``
    pairs = []
    for node in iter_nodes(module, cst.Assign):
        for t in node.targets:
            target, value = t.target, node.value
            if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)) \
                    and len(target.elements) == len(value.elements):
                pairs += [(a.value, b.value) for a, b in zip(target.elements, value.elements)]
            else:
                pairs.append((target, value))
    pairs = [(a.value, b.value) for a, b in pairs if isinstance(a, cst.Name) and isinstance(b, cst.Name)]
    for _ in range(3):
        for new, old in pairs:
            if old in unpacked and new not in unpacked:
                unpacked[new] = unpacked[old]
    for call in iter_nodes(module, cst.Call):
        func = call.func
        key = instance_key(func)
        cls_name = instances.get(key) if key else None
        if cls_name is None:
            continue
        params = call_params(classes[cls_name])
        carried = {}
        arg_of = {}
        for arg, param in zip(positional_args(call), params):
            if isinstance(arg.value, cst.Name) and arg.value.value in unpacked:
                carried[param] = unpacked[arg.value.value]
                arg_of[unpacked[arg.value.value][1]] = arg
        for a in call.args:
            if a.keyword is not None and isinstance(a.value, cst.Name) and a.value.value in unpacked:
                carried[a.keyword.value] = unpacked[a.value.value]
                arg_of[unpacked[a.value.value][1]] = a
        if len(carried) < 2:
            continue
        factory = next(iter(carried.values()))[0]
        out.append(MaskCall(factory, call, cls_name, {p: s for p, (_, s) in carried.items()}, arg_of))
    return out


@dataclass
class SwappedCall:
    factory: Factory
    call: cst.Call
    args: Tuple[cst.Arg, cst.Arg]  # the args carrying slot 1 and slot 2


def find_swapped_calls(module: cst.Module, factories: List[Factory],
                       classes: Optional[Dict[str, LayerClass]] = None) -> List[SwappedCall]:
    """Calls after which the factory's combined look-ahead mask reaches a cross-attention."""
    classes = layer_classes(module) if classes is None else classes
    out = []
    for mc in factory_mask_calls(module, factories, classes):
        reach = _slots_reaching_cross(mc.cls_name, mc.carried, classes)
        if 1 in reach and 1 in mc.arg_of and 2 in mc.arg_of:
            out.append(SwappedCall(mc.factory, mc.call, (mc.arg_of[1], mc.arg_of[2])))
    return out
