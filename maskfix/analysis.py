"""Find decoder layers whose cross-attention is masked from the decoder side.

The analysis is structural: a Keras ``Layer``/``Model`` subclass that owns
``MultiHeadAttention`` sublayers, calls one of them with the decoder sequence
as query and a *different* tensor (the encoder outputs) as key/value, and
feeds that cross-attention a mask whose data flow leads back to the decoder
side -- the decoder's ``mask`` expanded over keys, or a causal mask.  Names
are never trusted; only where values come from.

The module also finds where such a layer is called (``Layer(...)(x, enc)``,
``layer = Layer(...); layer(x, enc)``, ``self.dec(x, enc)``), and traces the
encoder outputs back to the encoder's token ``Input`` so that the rewrite can
thread an encoder padding mask through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import libcst as cst

from .syntax import (
    dotted,
    instance_key,
    is_none,
    iter_calls,
    iter_nodes,
    iter_own_nodes,
    keyword_arg,
    last_name,
    names_in,
    positional_args,
    self_attr,
    span,
)
from .flow.attention import (
    AttentionCall,
    Attentions,
    Signature,
    attention_attributes,
    attention_calls,
    bind_attention_args,
)
from .flow.reaching import Element, Scope, forget_scopes, param_names, scope_of
from .trace import index_bodies

# Labels attached to mask expressions by the data-flow walk.
CAUSAL = "causal"  # built from a lower-triangular pattern over the decoder steps
DEC_MASK = "dec-mask"  # the decoder padding mask, spread over the key axis
DEC_MASK_Q = "dec-mask-query"  # the decoder padding mask over the query axis only
DEC = "dec"  # derived from the decoder sequence's values or shape
ENC = "enc"  # derived from the encoder outputs
EXTERNAL = "external"  # another parameter: provenance unknown here
MASK_LIST = "mask-list"  # the masks of a list input, one per item (decoder's first, encoder's second)
RANGE = "range"  # positions from range/arange: two of them compared make a causal pattern
SELF = "self"  # the layer itself, passed to a helper that calls its methods (``layer.causal(x)``)

_CAUSAL_CALLS = {"band_part", "tril", "triu"}
_RANGE_CALLS = {"range", "arange"}
_ORDER_CALLS = {"greater_equal", "greater", "less_equal", "less"}
_PASS_THROUGH_ATTRS = {"shape", "dtype"}


# --------------------------------------------------------------------------
# module facts: imports and dialect


@dataclass
class Dialect:
    """How a module spells tensor ops, so that new code reads like the old."""

    runtime: str = "keras3"  # "keras3" or "tf.keras"
    tf: Optional[str] = None  # alias bound to tensorflow
    ops: Optional[str] = None  # alias bound to keras.ops
    keras: Optional[str] = None  # alias bound to keras (Keras 3)
    numpy: Optional[str] = None

    def not_equal(self, tokens: str, pad: int) -> str:
        if self.runtime == "keras3" and self.ops:
            return f"{self.ops}.not_equal({tokens}, {pad})"
        if self.runtime == "keras3" and self.keras:
            return f"{self.keras}.ops.not_equal({tokens}, {pad})"
        if self.tf:
            return f"{self.tf}.math.not_equal({tokens}, {pad})"
        if self.ops:
            return f"{self.ops}.not_equal({tokens}, {pad})"
        return f"{tokens} != {pad}"


def module_dialect(module: cst.Module) -> Dialect:
    d = Dialect()
    tf_keras = False
    keras3 = False
    for node in iter_nodes(module, (cst.Import, cst.ImportFrom)):
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = dotted(alias.name) or ""
                bound = alias.asname.name.value if alias.asname else full.split(".")[0]
                if full == "tensorflow":
                    d.tf = bound
                elif full in ("tensorflow.keras", "tf_keras") or full.startswith("tf_keras."):
                    tf_keras = True
                elif full == "keras.ops" and alias.asname:
                    d.ops, keras3 = bound, True
                elif full == "keras" or full.startswith("keras."):
                    keras3 = True
                    if full == "keras":
                        d.keras = bound
                elif full == "numpy":
                    d.numpy = bound
        else:
            mod = dotted(node.module) if node.module else ""
            mod = mod or ""
            # keras._tf_keras is Keras 3's tf.keras surface, not the legacy package
            if mod.startswith("tensorflow") or mod.startswith("tf_keras"):
                tf_keras = True
            elif mod == "keras" or mod.startswith("keras."):
                keras3 = True
            if isinstance(node.names, cst.ImportStar):
                continue
            for alias in node.names:
                name = dotted(alias.name) or ""
                bound = alias.asname.name.value if alias.asname else name
                if mod == "keras" and name == "ops":
                    d.ops = bound
                elif mod == "tensorflow" and name == "keras":
                    tf_keras = True
    if tf_keras and not (keras3 and (d.ops or d.keras)):
        d.runtime = "tf.keras"
    elif keras3:
        d.runtime = "keras3"
    elif d.tf:
        d.runtime = "tf.keras"
    return d


# --------------------------------------------------------------------------
# decoder classes


@dataclass
class DecoderClass:
    """A layer whose cross-attention reads a decoder-side mask."""

    node: cst.ClassDef
    name: str
    call: cst.FunctionDef
    params: List[str]  # call parameters without self
    dec_param: str
    enc_param: str
    self_attention: Optional[AttentionCall]
    cross_attention: AttentionCall
    labels: Set[str]
    mask_param: Optional[str]  # the parameter Keras fills with the mask
    flow: "Flow" = field(repr=False, default=None)
    causal_flag: bool = False  # use_causal_mask switched on for the cross-attention (MF003)
    functional: bool = False  # built as a functional model from its own Inputs: reported, not rewritten

    @property
    def mask_bug(self) -> bool:
        """MF001: the explicit mask comes from the decoder side."""
        return bool(self.labels & {CAUSAL, DEC_MASK})


def _is_layer_class(node: cst.ClassDef, local_layers: Set[str]) -> bool:
    for base in node.bases:
        name = last_name(base.value)
        if name in ("Layer", "Model") or name in local_layers:
            return True
    return False


def _methods(cls: cst.ClassDef) -> Dict[str, cst.FunctionDef]:
    return {
        s.name.value: s for s in cls.body.body if isinstance(s, cst.FunctionDef)
    }


class Flow:
    """Labels for expressions inside one method, following local assignments."""

    def __init__(self, cls_methods: Dict[str, cst.FunctionDef], fn: cst.FunctionDef,
                 dec: str, enc: str, mask_param: Optional[str], module_funcs: Dict[str, cst.FunctionDef],
                 self_attrs: Optional[Dict[str, List[Tuple[cst.BaseExpression, cst.FunctionDef]]]] = None,
                 classes: Optional[Dict[str, Dict[str, cst.FunctionDef]]] = None,
                 bound: Optional[Dict[str, Set[str]]] = None, calling: frozenset = frozenset(),
                 parent: Optional[Tuple["Flow", cst.CSTNode]] = None):
        self.bound = bound  # a helper's summary: parameter -> labels of the caller's argument
        self.parent = parent  # a closure's enclosing flow and the call its free names are read at
        self.calling = calling | {id(fn)}  # helpers being summarised (no recursion)
        self.self_attrs = self_attrs or {}
        self.classes = classes or {}  # class name -> its methods, for ``Cls.helper(...)``
        self.scope = scope_of(fn)
        first = fn.params.params[0].name.value if fn.params.params else None
        self.is_method = first == "self" and bool(cls_methods)
        self.methods = cls_methods
        self.module_funcs = module_funcs
        self.dec, self.enc, self.mask_param = dec, enc, mask_param
        self.list_input = "[" in dec  # the decoder takes ``[x, enc]`` as one input
        self._memo: Dict[object, Set[str]] = {}
        self._active: Set[object] = set()

    def name_labels(self, name: str, at: Optional[cst.CSTNode] = None) -> Set[str]:
        """Labels of the bindings of ``name`` that reach ``at`` (every binding without ``at``)."""
        key = self.scope.binding_key(name, at)
        if key in self._memo:
            return self._memo[key]
        if key in self._active:
            return set()
        self._active.add(key)
        values, is_param = self.scope.reaching(name, at)
        out: Set[str] = set()
        if (self.parent is not None and not is_param and not values
                and name not in self.scope.assigns and name not in self.scope.params):
            outer, call = self.parent  # a free name of a closure: its value where the closure runs
            out = set(outer.name_labels(name, call))
        elif name == self.dec:
            out.add(DEC)
        elif name == self.enc:
            out.add(ENC)
        elif name == self.mask_param and is_param:
            out.add(MASK_LIST if self.list_input else DEC_MASK)
        elif is_param:
            out |= self.bound.get(name, {EXTERNAL}) if self.bound is not None else {EXTERNAL}
        elif name == "self" and self.is_method and not values:
            out.add(SELF)
        for value in values:
            if isinstance(value, Element):
                value = value.value
            if not isinstance(value, (cst.FunctionDef, cst.ClassDef)):
                out |= self.labels(value)
        self._active.discard(key)
        self._memo[key] = out
        return out

    def labels(self, node: cst.CSTNode) -> Set[str]:
        if isinstance(node, cst.Name):
            return self.name_labels(node.value, node)
        if isinstance(node, cst.Subscript):
            item = int_index(node)
            base = self.labels(node.value)
            if item is not None and MASK_LIST in base:
                # ``call(self, [x, enc], mask)``: Keras fills ``mask`` with one mask per input
                return {DEC_MASK} if item == 0 else {ENC}
            side = expansion_side(node)
            if side == "query" and DEC_MASK in base:
                base = (base - {DEC_MASK}) | {DEC_MASK_Q}
            return base
        if isinstance(node, cst.Attribute):
            if node.attr.value in _PASS_THROUGH_ATTRS:
                return set()  # a size or dtype carries no mask values
            attr = self_attr(node)
            if attr and attr in self.self_attrs:
                return self._attr_labels(attr)
            return self.labels(node.value) - {SELF}
        if isinstance(node, cst.Call):
            return self._call_labels(node)
        if isinstance(node, cst.Comparison):
            sides = [self.labels(node.left)] + [self.labels(c.comparator) for c in node.comparisons]
            out = set().union(*sides)
            if _orders(node) and all(RANGE in side for side in sides):
                out.add(CAUSAL)
            return out
        out: Set[str] = set()
        for child in node.children:
            if isinstance(child, (cst.BaseExpression, cst.Arg, cst.Element, cst.BaseSlice,
                                  cst.SubscriptElement, cst.ComparisonTarget, cst.DictElement)):
                out |= self.labels(child)
        return out

    def _attr_labels(self, attr: str) -> Set[str]:
        """A mask kept on ``self`` (built once, e.g. for a fixed length): only causality carries over."""
        key = f"self.{attr}"
        if key in self._memo or key in self._active:
            return self._memo.get(key, set())
        self._active.add(key)
        out: Set[str] = set()
        for value, method in self.self_attrs[attr]:
            sub = Flow(self.methods, method, "", "", None, self.module_funcs, self.self_attrs, self.classes)
            out |= sub.labels(value) & {CAUSAL}
        self._active.discard(key)
        self._memo[key] = out
        return out

    def _call_labels(self, call: cst.Call) -> Set[str]:
        fname = last_name(call.func)
        if fname in ("shape", "len"):
            return set()  # a size carries no mask values
        each = [self.labels(a.value) for a in call.args]
        arg_labels: Set[str] = set().union(*each)
        if fname in _RANGE_CALLS:
            arg_labels.add(RANGE)
        sides = [labels for a, labels in zip(call.args, each) if a.keyword is None and not a.star]
        if fname in _CAUSAL_CALLS or (fname in _ORDER_CALLS and len(sides) == 2
                                      and all(RANGE in side for side in sides)):
            return arg_labels | {CAUSAL}
        if fname == "expand_dims":
            axis = _axis_arg(call)
            if axis is not None and axis != 1 and DEC_MASK in arg_labels:
                arg_labels = (arg_labels - {DEC_MASK}) | {DEC_MASK_Q}
            return arg_labels
        attr = self_attr(call.func)
        helpers = self._helpers(call.func)
        if helpers:
            out: Set[str] = set()
            for helper in helpers:
                if _builds_causal(helper):
                    out |= arg_labels | {CAUSAL}
                out |= self._summary(helper, call, arg_labels)
            return out
        if attr or (isinstance(call.func, cst.Attribute) and last_name(call.func.value) is None):
            # A method on a computed object: conservatively pass labels through.
            return arg_labels | self.labels(call.func)
        return arg_labels

    def _summary(self, helper: Union[cst.FunctionDef, cst.Lambda], call: cst.Call,
                 arg_labels: Set[str]) -> Set[str]:
        """Labels of what ``helper`` returns, its parameters standing for ``call``'s arguments."""
        if id(helper) in self.calling:
            return set(arg_labels)
        params = param_names(helper)
        bound: Dict[str, Set[str]] = {}
        for arg, name in zip(positional_args(call), params):
            bound[name] = self.labels(arg.value)
        for a in call.args:
            if a.keyword is not None and a.keyword.value in params:
                bound[a.keyword.value] = self.labels(a.value)
        key = (id(helper), tuple(sorted((p, frozenset(v)) for p, v in bound.items())))
        if self.scope.binds(helper):
            # a closure reads this function's bindings: its summary holds for this flow and the
            # bindings of its free names that reach the call
            key += tuple(self.scope.binding_key(n, call) for n in free_names(helper))
            if key not in self._memo:
                sub = Flow(self.methods, helper, "", "", None, self.module_funcs, self.self_attrs,
                           self.classes, bound, self.calling, parent=(self, call))
                self._memo[key] = _returned_labels(sub, helper)
            return set(self._memo[key])
        if key not in _summaries or _summaries[key][0] is not helper:
            sub = Flow(self.methods, helper, "", "", None, self.module_funcs, self.self_attrs,
                       self.classes, bound, self.calling)
            _summaries[key] = (helper, _returned_labels(sub, helper))
        return set(_summaries[key][1])

    def _helpers(self, func: cst.BaseExpression) -> List[Union[cst.FunctionDef, cst.Lambda]]:
        """The functions a call may run: a method (``self.f``, ``Cls.f`` for a staticmethod), a
        nested function or lambda bound in this function, or a module function."""
        attr = self_attr(func)
        if attr:
            return [self.methods[attr]] if attr in self.methods else []
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            method = self.classes.get(func.value.value, {}).get(func.attr.value)
            if method is None and func.attr.value in self.methods and SELF in self.labels(func.value):
                method = self.methods[func.attr.value]  # ``layer.f(...)`` with the layer passed in
            return [method] if method is not None else []
        if not isinstance(func, cst.Name):
            return []
        values, _ = self.scope.reaching(func.value, func)
        local = [v for v in values if isinstance(v, (cst.FunctionDef, cst.Lambda))]
        if local:
            return local
        helper = self.module_funcs.get(func.value)
        return [helper] if helper is not None else []


def _returned_labels(flow: Flow, helper: Union[cst.FunctionDef, cst.Lambda]) -> Set[str]:
    if isinstance(helper, cst.Lambda):
        returns = [helper.body]
    else:
        returns = [r.value for r in iter_own_nodes(helper.body, cst.Return) if r.value is not None]
    out: Set[str] = set()
    for r in returns:
        out |= flow.labels(r)
    return out


# id(fn) -> (fn, names it reads but does not bind)
_free: Dict[int, Tuple[cst.CSTNode, Tuple[str, ...]]] = {}


def free_names(fn: Union[cst.FunctionDef, cst.Lambda]) -> Tuple[str, ...]:
    """Names a function reads from outside: neither its parameters nor its locals."""
    hit = _free.get(id(fn))
    if hit is None or hit[0] is not fn:
        scope = scope_of(fn)
        names = names_in(fn.body) - scope.params - set(scope.assigns)
        hit = _free[id(fn)] = (fn, tuple(sorted(names)))
    return hit[1]


def _axis_arg(call: cst.Call) -> Optional[int]:
    arg = keyword_arg(call, "axis")
    if arg is None:
        pos = positional_args(call)
        arg = pos[1] if len(pos) > 1 else None
    if arg is None:
        return None
    v = arg.value
    if isinstance(v, cst.Integer):
        return int(v.value)
    if isinstance(v, cst.UnaryOperation) and isinstance(v.operator, cst.Minus) and isinstance(v.expression, cst.Integer):
        return -int(v.expression.value)
    return None


def _is_new_axis(node: cst.BaseExpression) -> bool:
    return is_none(node) or last_name(node) == "newaxis"


def expansion_side(node: cst.Subscript) -> Optional[str]:
    """'query' for ``m[:, :, None]`` (a [B, T, 1] mask), 'key' for ``m[:, None, :]``."""
    items = [el.slice for el in node.slice]
    shape = []
    for it in items:
        if isinstance(it, cst.Slice):
            shape.append(":")
        elif isinstance(it, cst.Index) and _is_new_axis(it.value):
            shape.append("new")
        elif isinstance(it, cst.Index) and isinstance(it.value, cst.Ellipsis):
            shape.append("...")
        else:
            shape.append("x")
    if shape in ([":", ":", "new"], ["...", "new"]):
        return "query"
    if shape in ([":", "new", ":"], [":", "new"]):
        return "key"
    return None


def _orders(cmp: cst.Comparison) -> bool:
    ops = [type(c.operator) for c in cmp.comparisons]
    return bool(ops) and all(o in (cst.GreaterThanEqual, cst.GreaterThan, cst.LessThan, cst.LessThanEqual)
                             for o in ops)


def _looks_causal(cmp: Union[cst.Comparison, cst.Call], flow: Optional[Flow] = None) -> bool:
    """``i >= j`` (or ``greater_equal(i, j)``) with both sides from range/arange."""
    if isinstance(cmp, cst.Call):
        sides = [a.value for a in positional_args(cmp)]
        return len(sides) == 2 and all(_from_range(s, flow) for s in sides)
    if not _orders(cmp):
        return False
    sides = [cmp.left] + [c.comparator for c in cmp.comparisons]
    return all(_from_range(s, flow) for s in sides)


def _from_range(node: cst.CSTNode, flow: Optional[Flow]) -> bool:
    if flow is not None:
        return RANGE in flow.labels(node)
    return any(last_name(call.func) in _RANGE_CALLS for call in iter_nodes(node, cst.Call))


# (id(helper), argument labels) -> (helper, labels it returns): each summary is computed once.
_summaries: Dict[tuple, Tuple[cst.CSTNode, Set[str]]] = {}

# id -> (node, answer); the node is kept so that a recycled id cannot alias it.
_causal_cache: Dict[int, Tuple[cst.FunctionDef, bool]] = {}


def _builds_causal(fn: Union[cst.FunctionDef, cst.Lambda]) -> bool:
    """Whether a helper function builds a lower-triangular (causal) mask."""
    hit = _causal_cache.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    result = False
    for call in iter_nodes(fn.body, cst.Call):
        if last_name(call.func) in _CAUSAL_CALLS:
            result = True
            break
    if not result:
        flow = Flow({}, fn, "", "", None, {}) if isinstance(fn, cst.FunctionDef) else None
        for cmp in iter_nodes(fn.body, (cst.Comparison, cst.Call)):
            if isinstance(cmp, cst.Call) and last_name(cmp.func) not in _ORDER_CALLS:
                continue
            if _looks_causal(cmp, flow):
                result = True
                break
    _causal_cache[id(fn)] = (fn, result)
    return result


def _precedes(a: cst.CSTNode, b: cst.CSTNode) -> bool:
    """Whether ``a`` ends before ``b`` starts in source order (True if unknown)."""
    sa, sb = span(a), span(b)
    if sa is None or sb is None:
        return True
    return sa[1] <= sb[0]


def int_index(node: cst.Subscript) -> Optional[int]:
    """``i`` for ``x[i]`` with a literal integer ``i``."""
    if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
        value = node.slice[0].slice.value
        if isinstance(value, cst.Integer):
            return int(value.value)
    return None


def roots(node, scope: Scope, seen: Optional[Set[object]] = None) -> Set[str]:
    """Parameters of the function that an expression's value depends on, along the bindings
    that reach it (so in ``x = x + attn(x, enc)`` the query is the earlier ``x``) on the first
    pass through a loop.  An item of a list parameter is a root of its own: ``inputs[1]``."""
    if node is None:
        return set()
    seen = set() if seen is None else seen
    if isinstance(node, Element):
        inner = roots(node.value, scope, seen)
        if isinstance(node.value, cst.Name) and inner == {node.value.value}:
            return {f"{node.value.value}[{node.index}]"}
        return inner
    items: Dict[int, int] = {}  # id(name) -> i, for ``name[i]``
    for sub in iter_nodes(node, cst.Subscript):
        i = int_index(sub)
        if i is not None and isinstance(sub.value, cst.Name):
            items[id(sub.value)] = i
    # configuration is not data: ``Layer(units)(x)`` depends on ``x``, ``Input(shape=(n,))`` on nothing
    config: Set[int] = set()
    for call in iter_nodes(node, cst.Call):
        if isinstance(call.func, cst.Call):
            config |= {id(n) for n in iter_nodes(call.func, cst.Name)}
        elif last_name(call.func) == "Input":
            config |= {id(n) for a in call.args for n in iter_nodes(a, cst.Name)}
    out: Set[str] = set()
    for name in iter_nodes(node, cst.Name):
        if id(name) in config:
            continue
        key = scope.binding_key(name.value, name)
        values, is_param = scope.reaching(name.value, name)
        if is_param and id(name) in items:
            out.add(f"{name.value}[{items[id(name)]}]")
            continue
        if key in seen:
            continue
        seen.add(key)
        # a binding made later in a loop is left out: what the first pass reads decides
        values = [v for v in values if _precedes(v.value if isinstance(v, Element) else v, name)]
        if is_param or (values and name.value in scope.inputs):
            out.add(name.value)
        for value in values:
            if not isinstance(value, (cst.FunctionDef, cst.ClassDef)):
                out |= roots(value, scope, seen)
    return out


def _same(a: Optional[cst.CSTNode], b: Optional[cst.CSTNode]) -> bool:
    return a is not None and b is not None and a.deep_equals(b)


@dataclass
class ModuleFacts:
    module: cst.Module
    dialect: Dialect
    decoders: List[DecoderClass] = field(default_factory=list)
    pad_id: Optional[int] = None  # read from an embedding's compute_mask
    embedding_classes: Set[str] = field(default_factory=set)  # local layers with compute_mask
    lazy_masks: List["LazyMask"] = field(default_factory=list)  # MF007


def analyze_module(module: cst.Module, wrappers: Optional[Dict[str, Signature]] = None) -> ModuleFacts:
    """Find every decoder class with a decoder-side cross-attention mask.

    ``wrappers`` are the attention layers of the run's own (class name -> signature) that this
    module can see.
    """
    _causal_cache.clear()  # keeps at most one module's helpers alive
    _summaries.clear()
    _free.clear()
    forget_scopes()
    dialect = module_dialect(module)
    facts = ModuleFacts(module=module, dialect=dialect)
    classes = [n for n in iter_nodes(module, cst.ClassDef)]
    module_funcs = {
        s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)
    }
    class_methods = {c.name.value: _methods(c) for c in classes}
    owner = {id(m): ms for ms in class_methods.values() for m in ms.values()}  # a method -> its class's
    attentions = Attentions(dialect.runtime, wrappers)
    layer_names: Set[str] = set()
    changed = True
    while changed:  # local subclasses of local layers are layers too
        changed = False
        for c in classes:
            if c.name.value not in layer_names and _is_layer_class(c, layer_names):
                layer_names.add(c.name.value)
                changed = True
    for cls in classes:
        if cls.name.value not in layer_names:
            continue
        methods = _methods(cls)
        if "compute_mask" in methods:
            lazy = _lazy_mask(cls, methods["compute_mask"])
            if lazy is not None:
                facts.lazy_masks.append(lazy)
            facts.embedding_classes.add(cls.name.value)
            if facts.pad_id is None:
                facts.pad_id = _pad_id(methods["compute_mask"])
        attrs = attention_attributes(cls, attentions)
        if not attrs:
            continue
        for fn in methods.values():
            found = _decoder_in_method(cls, fn, attrs, methods, module_funcs, attentions, class_methods)
            if found is not None:
                facts.decoders.append(found)
                break
    for fn in iter_nodes(module, cst.FunctionDef):
        # a function or method that builds the decoder as a small functional model
        if _functional_inputs(fn) and not any(d.call is fn for d in facts.decoders):
            found = _decoder_in_method(None, fn, {}, owner.get(id(fn), {}), module_funcs, attentions,
                                       class_methods)
            if found is not None and found.functional:
                facts.decoders.append(found)
    return facts


@dataclass
class LazyMask:
    """A ``compute_mask`` that returns None unless a mask already comes in.

    The first layer of a model (the token embedding) never receives a mask,
    so such a layer never creates the padding mask at all.
    """

    cls: cst.ClassDef
    fn: cst.FunctionDef
    guard: cst.If  # ``if mask is None: return None``


def _lazy_mask(cls: cst.ClassDef, fn: cst.FunctionDef) -> Optional[LazyMask]:
    params = param_names(fn)
    if len(params) < 2 or not isinstance(fn.body, cst.IndentedBlock):
        return None
    inputs, mask = params[0], params[1]
    for stmt in fn.body.body:
        if not isinstance(stmt, cst.If):
            continue
        test = stmt.test
        if not (isinstance(test, cst.Comparison) and isinstance(test.left, cst.Name)
                and test.left.value == mask and len(test.comparisons) == 1
                and isinstance(test.comparisons[0].operator, cst.Is)
                and is_none(test.comparisons[0].comparator)):
            continue
        body = list(iter_nodes(stmt.body, cst.Return))
        if len(body) != 1 or not (body[0].value is None or is_none(body[0].value)):
            continue
        # the padding mask it would build must come from the token ids
        rest = [n for n in iter_nodes(fn.body, cst.Return) if n is not body[0] and n.value is not None]
        if any(inputs in names_in(r.value) and _compares_ids(r.value) for r in rest):
            return LazyMask(cls, fn, stmt)
    return None


def _compares_ids(node: cst.CSTNode) -> bool:
    if any(last_name(c.func) in ("not_equal", "greater", "logical_not") for c in iter_nodes(node, cst.Call)):
        return True
    return any(
        isinstance(c.operator, (cst.NotEqual, cst.GreaterThan))
        for cmp in iter_nodes(node, cst.Comparison) for c in cmp.comparisons
    )


def _pad_id(fn: cst.FunctionDef) -> Optional[int]:
    for call in iter_nodes(fn.body, cst.Call):
        if last_name(call.func) == "not_equal":
            for a in positional_args(call)[1:2]:
                if isinstance(a.value, cst.Integer):
                    return int(a.value.value)
    for cmp in iter_nodes(fn.body, cst.Comparison):
        for c in cmp.comparisons:
            if isinstance(c.operator, cst.NotEqual) and isinstance(c.comparator, cst.Integer):
                return int(c.comparator.value)
    return None


def _functional_inputs(fn: cst.FunctionDef) -> List[str]:
    """Names bound to ``keras.Input(...)`` in ``fn``: the tensors a functional builder starts from."""
    names = []
    for node in iter_nodes(fn.body, cst.Assign):
        if isinstance(node.value, cst.Call) and last_name(node.value.func) == "Input":
            names += [t.target.value for t in node.targets if isinstance(t.target, cst.Name)]
    return names


def _forwarded_attention_calls(fn: cst.FunctionDef, attrs: Dict[str, str], attentions: Attentions,
                               methods: Dict[str, cst.FunctionDef], module_funcs: Dict[str, cst.FunctionDef],
                               classes: Dict[str, Dict[str, cst.FunctionDef]]) -> List[AttentionCall]:
    """Attentions that ``fn`` applies through a helper: ``helper(x, self.cross, enc, m)`` whose body
    calls its parameter as an attention layer, or a closure calling an attention local of ``fn``.
    Arguments are mapped back to ``fn``'s: a parameter of a helper to the caller's argument, a free
    name of a closure to ``fn``'s own name; what the helper computes itself stays unknown."""
    names = attentions.names()
    local: Dict[str, str] = {}
    for node in iter_own_nodes(fn.body, cst.Assign):
        if isinstance(node.value, cst.Call) and last_name(node.value.func) in names:
            for t in node.targets:
                if isinstance(t.target, cst.Name):
                    local[t.target.value] = last_name(node.value.func)

    def layer_of(expr: cst.BaseExpression) -> Optional[str]:
        attr = self_attr(expr)
        if attr in attrs:
            return attrs[attr]
        if isinstance(expr, cst.Name):
            return local.get(expr.value)
        if isinstance(expr, cst.Call) and last_name(expr.func) in names:
            return last_name(expr.func)
        return None

    scope = scope_of(fn)
    out: List[AttentionCall] = []
    for call in iter_calls(fn.body):
        func = call.func
        closure = False
        if self_attr(func) in methods:
            helper = methods[self_attr(func)]
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            helper = classes.get(func.value.value, {}).get(func.attr.value)
        elif isinstance(func, cst.Name):
            values, _ = scope.reaching(func.value, func)
            local_fns = [v for v in values if isinstance(v, (cst.FunctionDef, cst.Lambda))]
            helper = local_fns[0] if len(local_fns) == 1 else module_funcs.get(func.value)
            closure = bool(local_fns)
        else:
            helper = None
        if helper is None:
            continue
        bound: Dict[str, cst.Arg] = {}
        for arg, name in zip(positional_args(call), param_names(helper)):
            bound[name] = arg
        for a in call.args:
            if a.keyword is not None:
                bound[a.keyword.value] = a
        layers = {p: layer_of(a.value) for p, a in bound.items()}
        layers = {p: c for p, c in layers.items() if c is not None}
        if closure:
            inner_params = set(param_names(helper))
            layers.update({n: c for n, c in local.items() if n in free_names(helper) and n not in inner_params})
        if not layers:
            continue

        def mapped(arg: Optional[cst.Arg]) -> Optional[cst.Arg]:
            if arg is None:
                return None
            if isinstance(arg.value, cst.Name) and arg.value.value in bound:
                return bound[arg.value.value]
            return arg if closure else None

        for inner in iter_calls(helper.body):
            if not (isinstance(inner.func, cst.Name) and inner.func.value in layers):
                continue
            signature = attentions.signature(layers[inner.func.value])
            if signature is None:
                continue
            ac = bind_attention_args(inner, signature)
            slot = {a.value: a for a in inner.args}  # value node -> its Arg
            q, v, k = (mapped(slot.get(e)) if e is not None else None for e in (ac.query, ac.value, ac.key))
            out.append(AttentionCall(
                call=call,
                query=q.value if q is not None else None,
                value=v.value if v is not None else None,
                key=k.value if k is not None else None,
                mask_arg=mapped(ac.mask_arg),
                causal_flag=mapped(ac.causal_flag),
            ))
    return out


def _decoder_in_method(cls, fn, attrs, methods, module_funcs, attentions, classes=None) -> Optional[DecoderClass]:
    calls = attention_calls(fn, attrs, attentions)
    calls += _forwarded_attention_calls(fn, attrs, attentions, methods, module_funcs, classes or {})
    if not calls:
        return None
    params = param_names(fn)
    inputs = _functional_inputs(fn)
    scope = Scope(fn, inputs)  # a functional builder: its Inputs play the parameters' part
    if inputs:
        params = params + [n for n in inputs if n not in params]
    self_attn = None
    cross = None
    for ac in calls:
        if ac.query is None or ac.value is None:
            continue
        if _same(ac.query, ac.value) and (ac.key is None or _same(ac.query, ac.key)):
            self_attn = self_attn or ac
            continue
        q_roots, v_roots = roots(ac.query, scope), roots(ac.value, scope)
        enc_roots = v_roots - q_roots
        if len(v_roots) == 1 and enc_roots:
            cross = cross or (ac, next(iter(enc_roots)), q_roots)
    if cross is None:
        return None
    ac, enc, q_roots = cross
    if self_attn is not None:
        dec_roots = roots(self_attn.query, scope)
    else:
        dec_roots = q_roots
    # items of a list input (``call(self, inputs)`` with ``x, enc = inputs``) count as parameters
    order = [q for p in params for q in (p, f"{p}[0]", f"{p}[1]")]
    dec_candidates = [p for p in order if p in dec_roots and p != enc]
    if not dec_candidates or enc not in order:
        return None
    dec = dec_candidates[0]
    if ("[" in dec) != ("[" in enc) or ("[" in dec and dec.split("[")[0] != enc.split("[")[0]):
        return None  # one list input holds both, or neither is in a list
    mask_param = "mask" if "mask" in params else None
    if mask_param is not None and order.index(dec) > order.index(enc):
        # tf.keras fills ``mask`` from the first argument: here the encoder's.
        mask_param = None
    flow = Flow(methods, fn, dec, enc, mask_param, module_funcs,
                _self_assignments(cls) if cls is not None else {}, classes)
    labels: Set[str] = set()
    if ac.mask_arg is not None:
        labels = flow.labels(ac.mask_arg.value)
    flag = ac.causal_flag is not None and _truthy(ac.causal_flag.value, fn)
    if not (labels & {CAUSAL, DEC_MASK}) and not flag:
        return None
    return DecoderClass(
        node=cls if cls is not None else fn,
        name=cls.name.value if cls is not None else fn.name.value,
        functional=bool(inputs),
        call=fn,
        params=params,
        dec_param=dec,
        enc_param=enc,
        self_attention=self_attn,
        cross_attention=ac,
        labels=labels,
        mask_param="mask" if "mask" in params else None,
        flow=flow,
        causal_flag=flag,
    )


def _self_assignments(cls: cst.ClassDef) -> Dict[str, List[Tuple[cst.BaseExpression, cst.FunctionDef]]]:
    out: Dict[str, List[Tuple[cst.BaseExpression, cst.FunctionDef]]] = {}
    for fn in _methods(cls).values():
        for node in iter_nodes(fn.body, cst.Assign):
            for t in node.targets:
                attr = self_attr(t.target)
                if attr and not isinstance(t.target, cst.Subscript):
                    out.setdefault(attr, []).append((node.value, fn))
    return out


def _truthy(value: cst.BaseExpression, fn: cst.FunctionDef) -> bool:
    """``True``, or a parameter of ``fn`` whose default is ``True``."""
    if isinstance(value, cst.Name) and value.value == "True":
        return True
    if isinstance(value, cst.Name):
        ps = fn.params
        for p in (*ps.params, *ps.kwonly_params):
            if p.name.value == value.value and p.default is not None:
                return isinstance(p.default, cst.Name) and p.default.value == "True"
    return False


# --------------------------------------------------------------------------
# call sites


@dataclass
class CallSite:
    """One place a decoder layer is applied."""

    decoder: DecoderClass
    call: cst.Call  # the layer application
    statement: cst.CSTNode  # the simple statement holding it
    dec_arg: Optional[cst.BaseExpression]
    enc_arg: Optional[cst.BaseExpression]
    has_mask_kwarg: bool

    @property
    def decoder_only(self) -> bool:
        return _same(self.dec_arg, self.enc_arg)


def _bind_layer_args(call: cst.Call, dec: DecoderClass):
    pos = positional_args(call)
    slots: Dict[str, cst.BaseExpression] = {}
    for arg, name in zip(pos, dec.params):
        slots[name] = arg.value
    for a in call.args:
        if a.keyword is not None:
            slots[a.keyword.value] = a.value
    if len(pos) == 1 and isinstance(pos[0].value, (cst.List, cst.Tuple)) and dec.enc_param not in slots:
        # ``layer([x, enc])``: a list input
        els = [e.value for e in pos[0].value.elements]
        if len(els) >= 2:
            return els[0], els[1]
    return slots.get(dec.dec_param), slots.get(dec.enc_param)


def find_call_sites(module: cst.Module, decoders: Sequence[DecoderClass]) -> List[CallSite]:
    """Calls of the given decoder classes anywhere in ``module``."""
    by_name = {d.name: d for d in decoders}
    if not by_name:
        return []
    index = index_bodies(module)
    instances: Dict[str, DecoderClass] = {}  # variable or self-attribute -> class
    stacks: Dict[str, DecoderClass] = {}  # the same for lists of layers: ``[Block() for _ in ...]``
    for node in iter_nodes(module, (cst.Assign, cst.AnnAssign)):
        value = node.value
        if value is None:
            continue
        targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        if isinstance(value, cst.Call) and last_name(value.func) in by_name:
            into, dec = instances, by_name[last_name(value.func)]
        elif isinstance(value, (cst.List, cst.Tuple, cst.ListComp, cst.GeneratorExp)):
            built = [c for c in iter_nodes(value, cst.Call) if last_name(c.func) in by_name]
            if not built:
                continue
            into, dec = stacks, by_name[last_name(built[0].func)]
        else:
            continue
        for t in targets:
            key = instance_key(t, subscripts=False)
            if key:
                into[key] = dec
    if stacks:  # ``for block in blocks:`` and ``for i, block in enumerate(self.blocks):``
        for loop in iter_nodes(module, cst.For):
            it, target = loop.iter, loop.target
            if isinstance(it, cst.Call) and last_name(it.func) == "enumerate" and it.args \
                    and isinstance(target, cst.Tuple) and len(target.elements) == 2:
                it, target = it.args[0].value, target.elements[1].value
            key = instance_key(it, subscripts=False)
            if key in stacks and isinstance(target, cst.Name):
                instances[target.value] = stacks[key]
    sites = []
    for call in iter_nodes(module, cst.Call):
        dec = None
        func = call.func
        if isinstance(func, cst.Call) and last_name(func.func) in by_name:
            dec = by_name[last_name(func.func)]
        elif isinstance(func, cst.Subscript) and instance_key(func.value, subscripts=False) in stacks:
            dec = stacks[instance_key(func.value, subscripts=False)]
        else:
            key = instance_key(func, subscripts=False)
            if key and key in instances:
                dec = instances[key]
        if dec is None:
            continue
        d, e = _bind_layer_args(call, dec)
        sites.append(CallSite(
            decoder=dec,
            call=call,
            statement=index.stmt_of.get(id(call)),
            dec_arg=d,
            enc_arg=e,
            has_mask_kwarg=keyword_arg(call, "encoder_padding_mask") is not None,
        ))
    return sites


_SUPPRESS = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)


def suppressed(line_text: str, code: str) -> bool:
    """``# noqa`` or ``# noqa: MF001`` on the line."""
    m = _SUPPRESS.search(line_text)
    if not m:
        return False
    codes = m.group("codes")
    if not codes:
        return True
    return code.upper() in {c.upper() for c in re.split(r"[,\s]+", codes) if c}
