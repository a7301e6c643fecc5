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

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import libcst as cst

from ..syntax import (
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
)
from .attention import (
    HUB_DECODER,
    HUB_DECODER_PARAMS,
    AttentionCall,
    Attentions,
    Signature,
    attention_attributes,
    attention_calls,
    bind_attention_args,
    hub_decoder_constructors,
    loop_layers,
)
from .reaching import Scope, forget_scopes, param_names, roots, scope_of
from .values import CAUSAL, TARGET, Interpreter, MaskValue, ModuleValues, padding, sequence_inputs
from ..dialect import Dialect, module_dialect
from ..trace import index_bodies

# What of the decoder's side a cross-attention's mask is made of (``decoder_side``).
DEC_MASK = "dec-mask"  # the decoder padding mask, spread over the key axis
# CAUSAL (a causal mask over the decoder steps) is the abstract values' own kind.


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
    values: Optional[Interpreter] = field(repr=False, default=None)  # the abstract values in ``call``
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


def analyze_module(module: cst.Module, wrappers: Optional[Dict[str, Signature]] = None,
                   values: Optional[ModuleValues] = None) -> ModuleFacts:
    """Find every decoder class with a decoder-side cross-attention mask.

    ``wrappers`` are the attention layers of the run's own (class name -> signature) that this
    module can see; ``values`` the module's abstract mask values (in a run, followed into its
    other sources), by which a cross-attention's mask is judged.
    """
    _free.clear()  # keeps at most one module's functions alive
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
    if values is None:
        values = ModuleValues(module, attentions)
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
            found = _decoder_in_method(cls, fn, attrs, methods, module_funcs, attentions, values, class_methods)
            if found is not None:
                facts.decoders.append(found)
                break
    for fn in iter_nodes(module, cst.FunctionDef):
        # a function or method that builds the decoder as a small functional model
        if _functional_inputs(fn) and not any(d.call is fn for d in facts.decoders):
            found = _decoder_in_method(None, fn, {}, owner.get(id(fn), {}), module_funcs, attentions, values,
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


@dataclass
class HubDecoderCall:
    """A call of keras_hub's ``TransformerDecoder``, its arguments bound to its parameters."""

    call: cst.Call
    fn: cst.FunctionDef
    cls: Optional[cst.ClassDef]
    args: Dict[str, cst.Arg]

    def masks(self, values: ModuleValues) -> Dict[str, MaskValue]:
        """The abstract value of each mask argument, read from the sequences the call is given:
        what ``decoder_sequence`` comes from is the target, what only ``encoder_sequence`` comes
        from the source."""
        seqs = [self.args.get(p) for p in HUB_DECODER_PARAMS[:2]]
        if any(a is None for a in seqs):
            return {}
        inputs = _functional_inputs(self.fn)
        scope = Scope(self.fn, inputs)
        dec, enc = roots(seqs[0].value, scope), roots(seqs[1].value, scope)
        target, source = dec - enc, enc - dec
        given = sequence_inputs(target, source)
        params = set(param_names(self.fn))
        it = Interpreter(values, self.fn, self.cls, {n: v for n, v in given.items() if n in params},
                         inputs={n: v for n, v in given.items() if n not in params})
        return {p: it.value(a.value) for p, a in self.args.items() if p.endswith("_mask")}


def _keyword_args(call: cst.Call) -> Dict[str, cst.Arg]:
    return {a.keyword.value: a for a in call.args if a.keyword is not None and a.keyword.value in HUB_DECODER_PARAMS}


def hub_decoder_calls(module: cst.Module) -> List[HubDecoderCall]:
    """Calls of keras_hub's ``TransformerDecoder``: built in place, or kept in a local or on ``self``."""
    hub = hub_decoder_constructors(module)
    if not hub.aliases and not hub.names:
        return []
    kept: Dict[int, Set[str]] = {}  # id(class) -> self attributes holding one, or a list of them
    for cls in iter_nodes(module, cst.ClassDef):
        mine = kept.setdefault(id(cls), set())
        for method in iter_nodes(cls.body, cst.FunctionDef):
            built = {t.target.value for node in iter_own_nodes(method.body, cst.Assign)
                     if isinstance(node.value, cst.Call) and hub.builds(node.value.func)
                     for t in node.targets if isinstance(t.target, cst.Name)}
            for node in iter_nodes(method.body, cst.Assign):
                if any(hub.builds(c.func) for c in iter_nodes(node.value, cst.Call)):
                    mine.update(a for a in (self_attr(t.target) for t in node.targets) if a)
            for call in iter_nodes(method.body, cst.Call):  # ``self.blocks.append(block)``
                func = call.func
                if (isinstance(func, cst.Attribute) and func.attr.value == "append" and self_attr(func.value)
                        and call.args and ((isinstance(call.args[0].value, cst.Call)
                                            and hub.builds(call.args[0].value.func))
                                           or (isinstance(call.args[0].value, cst.Name)
                                               and call.args[0].value.value in built))):
                    mine.add(self_attr(func.value))
    owner = {id(fn): cls for cls in iter_nodes(module, cst.ClassDef) for fn in iter_nodes(cls.body, cst.FunctionDef)}
    functions = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
    out = []
    for fn in iter_nodes(module, cst.FunctionDef):
        cls = owner.get(id(fn))
        local = {t.target.value for node in iter_own_nodes(fn.body, cst.Assign)
                 if isinstance(node.value, cst.Call) and hub.builds(node.value.func)
                 for t in node.targets if isinstance(t.target, cst.Name)}
        attrs = kept.get(id(cls), set()) if cls is not None else set()
        local |= set(loop_layers(fn, {a: HUB_DECODER for a in attrs}))  # ``for block in self.blocks``

        def holds_decoder(expr: cst.BaseExpression) -> bool:
            return ((isinstance(expr, cst.Call) and hub.builds(expr.func))
                    or (isinstance(expr, cst.Name) and expr.value in local)
                    or self_attr(expr) in attrs)

        methods = {m.name.value: m for m in iter_nodes(cls.body, cst.FunctionDef)} if cls is not None else {}
        for call in iter_calls(fn.body):
            if holds_decoder(call.func):
                out.append(HubDecoderCall(call, fn, cls, _hub_args(call)))
                continue
            helper = _helper_of(call.func, fn, methods, functions)
            if helper is not None:
                out += [HubDecoderCall(call, fn, cls, args) for args in _forwarded_hub_args(call, helper, holds_decoder)]
        # a closure applying the decoder to names of ``fn``: read as if written in ``fn``
        for inner in iter_nodes(fn.body, (cst.FunctionDef, cst.Lambda)):
            own = set(param_names(inner)) | (set(scope_of(inner).assigns) if isinstance(inner, cst.FunctionDef) else set())
            body = inner.body
            for call in iter_calls(body) if isinstance(body, cst.BaseSuite) else iter_nodes(body, cst.Call):
                if not holds_decoder(call.func) or (isinstance(call.func, cst.Name) and call.func.value in own):
                    continue
                args = _hub_args(call)
                if not any(n in own for a in args.values() for n in names_in(a.value)):
                    out.append(HubDecoderCall(call, fn, cls, args))
    seen: Set[int] = set()  # a closure's call is met again as a call of its own function: keep the first
    return [c for c in out if not (id(c.call) in seen or seen.add(id(c.call)))]


def _hub_args(call: cst.Call) -> Dict[str, cst.Arg]:
    # the sequences may come positionally; the masks are read when passed by keyword
    args = dict(zip(HUB_DECODER_PARAMS[:2], positional_args(call)))
    args.update(_keyword_args(call))
    return args


def _helper_of(func: cst.BaseExpression, fn: cst.FunctionDef, methods: Dict[str, cst.FunctionDef],
               functions: Dict[str, cst.FunctionDef]) -> Optional[Union[cst.FunctionDef, cst.Lambda]]:
    """The function a call runs: a method (``self.f``), a def or lambda bound in ``fn``, or a
    module function."""
    attr = self_attr(func)
    if attr:
        return methods.get(attr)
    if not isinstance(func, cst.Name):
        return None
    values, _ = scope_of(fn).reaching(func.value, func)
    local = [v for v in values if isinstance(v, (cst.FunctionDef, cst.Lambda))]
    if local:
        return local[0] if len(local) == 1 else None
    return functions.get(func.value)


def _forwarded_hub_args(call: cst.Call, helper: Union[cst.FunctionDef, cst.Lambda],
                        holds_decoder) -> List[Dict[str, cst.Arg]]:
    """A helper handed the decoder (``apply(block, y, memory, pad_a, pad_b)``): the decoder's
    arguments inside it, mapped back to the arguments of ``call`` they are parameters for."""
    bound = dict(zip(param_names(helper), positional_args(call)))
    bound.update({a.keyword.value: a for a in call.args if a.keyword is not None})
    decoders = {p for p, a in bound.items() if holds_decoder(a.value)}
    if not decoders:
        return []
    out = []
    body = helper.body
    for inner in iter_calls(body) if isinstance(body, cst.BaseSuite) else iter_nodes(body, cst.Call):
        if not (isinstance(inner.func, cst.Name) and inner.func.value in decoders):
            continue
        args = {}
        for name, arg in _hub_args(inner).items():
            if not (isinstance(arg.value, cst.Name) and arg.value.value in bound):
                break  # computed inside the helper: not read from here
            args[name] = bound[arg.value.value]
        else:
            out.append(args)
    return out


def decoder_side(value: MaskValue) -> Set[str]:
    """What of the decoder's side a cross-attention's mask is made of: ``DEC_MASK`` for the
    decoder's padding spread over the keys, ``CAUSAL`` for a causal mask over decoder steps."""
    out = set()
    if padding(TARGET) in value.kinds:
        out.add(DEC_MASK)
    if CAUSAL in value.kinds:
        out.add(CAUSAL)
    return out


def _decoder_in_method(cls, fn, attrs, methods, module_funcs, attentions, values: ModuleValues,
                       classes=None) -> Optional[DecoderClass]:
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
    owner = cls if cls is not None else values.owner.get(id(fn))  # a builder may be a method
    interpreter = values.decoder_interpreter(fn, owner, dec, enc, mask_param)
    labels: Set[str] = set()
    if ac.mask_arg is not None:
        labels = decoder_side(interpreter.value(ac.mask_arg.value))
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
        values=interpreter,
        causal_flag=flag,
    )


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
