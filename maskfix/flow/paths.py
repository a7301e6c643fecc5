"""Calls of one decoder that disagree on where its cross-attention mask comes from.

For each layer or model class of a module, the walk below finds which parameters of its
``call`` reach the mask of a cross-attention (in the class or in the layers it calls), and
which feed that attention's keys (the source side) and its queries (the target side).  Each
call of the class is then read in its own function: the argument for the cross-attention
mask is built from the arguments that carry the source, from those that carry the target,
or it is missing.  When one call builds it from the source and another from the target (or
drops it), the other call is the one path that is wrong: typically a generation method next
to a correct training path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from .factories import (
    Factory,
    LayerClass,
    applications,
    attention_roles,
    bind_args,
    call_params,
    layer_classes,
)
from .reaching import Element, Scope, param_names, roots
from ..syntax import (instance_key, is_none, iter_nodes, iter_own_nodes, last_name, names_in,
                     positional_args, self_attr)
from ..trace import Function, local_functions


@dataclass
class CrossRoles:
    """Parameters of a class's ``call`` by what they become at a cross-attention below it."""

    mask: Set[str] = field(default_factory=set)
    source: Set[str] = field(default_factory=set)  # feed the keys/values only
    target: Set[str] = field(default_factory=set)  # feed the queries only


def _walk(cls_name: str, carried: Dict[str, Set[str]], classes: Dict[str, LayerClass],
          out: CrossRoles, depth: int = 0) -> None:
    cls = classes.get(cls_name)
    if cls is None or cls.call is None or depth > 6:
        return
    scope = Scope(cls.call)

    def origin(expr: cst.BaseExpression) -> Set[str]:
        return {top for n in roots(expr, scope) for top in carried.get(n, ())}

    for app in applications(cls, classes):
        call, inner = app.call, app.layer
        if app.slots is not None:
            q, v, m = app.slot("query"), app.slot("value"), app.slot("mask")
            if q is None or v is None:
                continue
            q_roots, v_roots = roots(q, scope), roots(v, scope)
            if not v_roots or v_roots & q_roots:
                continue  # self-attention
            q_top, v_top = origin(q), origin(v)
            out.source |= v_top - q_top
            out.target |= q_top - v_top
            if m is not None and not is_none(m):
                out.mask |= origin(m)
            continue
        if inner not in classes:
            continue
        inner_carried: Dict[str, Set[str]] = {}
        for param, value in bind_args(call, call_params(classes[inner])).items():
            top = origin(value)
            if top:
                inner_carried[param] = top
        if inner_carried:
            _walk(inner, inner_carried, classes, out, depth + 1)


def cross_roles(cls_name: str, classes: Dict[str, LayerClass]) -> CrossRoles:
    out = CrossRoles()
    cls = classes.get(cls_name)
    if cls is None or cls.call is None:
        return out
    _walk(cls_name, {p: {p} for p in call_params(cls)}, classes, out)
    # a parameter that is both (e.g. a flag passed everywhere) tells nothing
    both = out.source & out.target
    out.source -= both | out.mask
    out.target -= both | out.mask
    return out


@dataclass
class PathCall:
    """One call of a class, with where its cross-attention mask comes from."""

    cls_name: str
    call: cst.Call
    where: str  # ``Class.method`` or ``function`` holding the call
    param: str  # the parameter that reaches the cross-attention mask
    arg: Optional[cst.Arg]  # what is passed for it (None: nothing)
    kind: str  # "source", "target", "missing", "factory" (one of its slots), "unknown"
    source: List[str]  # the local names carrying the source at this call
    target: List[str]
    source_ids: Optional[str] = None  # the plain name passed for the source, when there is one
    target_ids: Optional[str] = None
    to_replace: List[cst.Name] = field(default_factory=list)  # target names in the mask's own expression


def _enclosing(module: cst.Module) -> Dict[int, Tuple[str, cst.FunctionDef]]:
    """id(call) -> (qualified name, function) of the innermost function holding it."""
    out: Dict[int, Tuple[str, cst.FunctionDef]] = {}

    def visit(body, prefix: str) -> None:
        for stmt in body:
            if isinstance(stmt, cst.ClassDef):
                visit(stmt.body.body, f"{prefix}{stmt.name.value}.")
            elif isinstance(stmt, cst.FunctionDef):
                name = f"{prefix}{stmt.name.value}"
                for call in iter_nodes(stmt.body, cst.Call):
                    out[id(call)] = (name, stmt)
                if isinstance(stmt.body, cst.IndentedBlock):
                    visit(stmt.body.body, f"{name}.")
    visit(module.body, "")
    return out


_SIZES = {"shape", "len", "dtype", "size"}


class _Helpers:
    """The helpers a function's calls run (module functions, closures, lambdas, methods of its
    class), each summarised by the parameters and free names its returned value is built from."""

    def __init__(self, module: cst.Module):
        self.functions = local_functions(module)
        self.methods: Dict[int, Dict[str, cst.FunctionDef]] = {}  # id(method) -> its class's methods
        for cls in iter_nodes(module, cst.ClassDef):
            own = {s.name.value: s for s in cls.body.body if isinstance(s, cst.FunctionDef)}
            for m in own.values():
                self.methods[id(m)] = own
        self.summaries: Dict[int, Tuple[Set[str], Set[str]]] = {}

    def resolve(self, call: cst.Call, fn: Function) -> Optional[Function]:
        attr = self_attr(call.func)
        if attr is not None:
            return self.methods.get(id(fn), {}).get(attr)
        return self.functions.resolve(call)

    def summary(self, helper: Function, deps: "_Deps") -> Tuple[Set[str], Set[str]]:
        """(parameters, free names) the helper's returned value is built from."""
        if id(helper) not in self.summaries:
            self.summaries[id(helper)] = (set(), set())  # a recursive call adds nothing
            sub = _Deps(helper, deps.stop, deps.factories, self)
            values = [helper.body] if isinstance(helper, cst.Lambda) else \
                [r.value for r in iter_own_nodes(helper.body, cst.Return) if r.value is not None]
            found: Dict[str, cst.Name] = {}
            for value in values:
                found.update(sub.of(value))
            self.summaries[id(helper)] = (set(found) & set(param_names(helper)), sub.free)
        return self.summaries[id(helper)]


class _Deps:
    """Local names an expression is built from, in one function, stopping at layer calls
    (a model's output carries no mask) and reading a factory's unpacked masks by its contract.
    A helper's call is built from the arguments its returned value reads (not those it only
    takes a size of), and from the names a closure reads where it runs."""

    def __init__(self, fn: Function, stop: Set[str], factories: Dict[str, Factory],
                 helpers: Optional[_Helpers] = None):
        self.fn = fn
        self.scope = Scope(fn)
        self.local = set(param_names(fn)) | set(self.scope.assigns)
        self.reads = Counter(n.value for n in iter_nodes(fn.body, cst.Name))  # binding targets included
        self.stop = stop
        self.factories = factories
        self.helpers = helpers
        self.free: Set[str] = set()  # names read that this function does not bind

    def of(self, expr: cst.CSTNode, seen: Optional[Set[str]] = None) -> Dict[str, cst.Name]:
        seen = set() if seen is None else seen
        out: Dict[str, cst.Name] = {}
        skip: Set[int] = set()
        through: List[cst.BaseExpression] = []  # arguments a helper's result is built from
        reads: List[Tuple[str, cst.CSTNode]] = []  # names a closure reads, where it runs
        inside: Set[int] = set()  # calls within one whose names are all skipped
        for call in iter_nodes(expr, cst.Call):
            if id(call) in inside:
                continue
            helper = self.helpers.resolve(call, self.fn) if self.helpers is not None else None
            if instance_key(call.func, subscripts=False) in self.stop or (
                    isinstance(call.func, cst.Call) and last_name(call.func.func) in self.stop) \
                    or last_name(call.func) in _SIZES:  # a model's output, or a size, carries no mask
                skip |= {id(n) for n in iter_nodes(call, cst.Name)}
                inside |= {id(c) for c in iter_nodes(call, cst.Call)}
            elif helper is not None and helper is not self.fn:
                skip |= {id(n) for n in iter_nodes(call, cst.Name)}
                inside |= {id(c) for c in iter_nodes(call, cst.Call)}
                params, free = self.helpers.summary(helper, self)
                through += [value for p, value in bind_args(call, param_names(helper)).items() if p in params]
                reads += [(n, call) for n in sorted(free)]
            elif isinstance(call.func, cst.Attribute):
                skip |= {id(n) for n in iter_nodes(call.func, cst.Name)}
            else:
                skip.add(id(call.func))
        for attr in iter_nodes(expr, cst.Attribute):
            if attr.attr.value in _SIZES:
                skip |= {id(n) for n in iter_nodes(attr.value, cst.Name)}
        names = [(n.value, n) for n in iter_nodes(expr, cst.Name) if id(n) not in skip] + reads
        for name, at in names:
            if name not in self.local:
                self.free.add(name)
                continue
            out.setdefault(name, at if isinstance(at, cst.Name) else cst.Name(name))
            if name in seen:
                continue
            seen.add(name)
            values, _ = self.scope.reaching(name, at)
            for value in values:
                out.update({k: v for k, v in self._value(value, seen).items() if k not in out})
        for value in through:
            out.update({k: v for k, v in self.of(value, seen).items() if k not in out})
        return out

    def _value(self, value, seen: Set[str]) -> Dict[str, cst.Name]:
        if isinstance(value, Element):
            inner = value.value
            if isinstance(inner, cst.Call) and last_name(inner.func) in self.factories:
                factory = self.factories[last_name(inner.func)]
                bound = bind_args(inner, [factory.src, factory.tgt])
                # the contract: slots 0 and 2 are the source's padding, slot 1 the target's
                side = bound.get(factory.tgt if value.index == 1 else factory.src)
                return self.of(side, seen) if side is not None else {}
            return self.of(inner, seen)
        if isinstance(value, (cst.FunctionDef, cst.ClassDef)):
            return {}
        return self.of(value, seen)


def path_calls(module: cst.Module, factories: List[Factory],
               classes: Optional[Dict[str, LayerClass]] = None) -> List[PathCall]:
    """Calls of the module's classes (``classes``: those it can use, by default its own), each
    with the provenance of its cross-attention mask."""
    classes = layer_classes(module) if classes is None else classes
    # an attention layer of the project's (a wrapper) is called for self- and cross-attention alike
    roles = {name: cross_roles(name, classes) for name in classes if attention_roles(name, classes) is None}
    roles = {name: r for name, r in roles.items() if r.mask and r.source and r.target}
    if not roles:
        return []
    instances: Dict[str, str] = {}
    for node in iter_nodes(module, cst.Assign):
        value = node.value
        if isinstance(value, (cst.List, cst.ListComp)):
            value = next(iter(iter_nodes(value, cst.Call)), None)
        if isinstance(value, cst.Call) and last_name(value.func) in classes:
            for t in node.targets:
                key = instance_key(t.target, subscripts=False)
                if key:
                    instances[key] = last_name(value.func)
    # a decoder's or model's output carries no mask: provenance stops at their calls
    stop = {key for key, name in instances.items() if name in roles} | set(roles)
    by_name = {f.name: f for f in factories if f.site is None}
    # masks built in place: each value of ``a, b, c = (x, y, z)`` -> its slot
    in_place = {id(el.value): k for f in factories if f.site is not None for k, el in enumerate(f.ret.elements)}
    enclosing = _enclosing(module)
    deps_of: Dict[int, _Deps] = {}
    helpers = _Helpers(module)
    out = []
    for call in iter_nodes(module, cst.Call):
        func = call.func
        if isinstance(func, cst.Call):
            cls_name = last_name(func.func)
        elif isinstance(func, cst.Subscript):
            cls_name = instances.get(instance_key(func.value, subscripts=False) or "")
        else:
            cls_name = instances.get(instance_key(func, subscripts=False) or "")
        if cls_name not in roles or id(call) not in enclosing:
            continue
        r = roles[cls_name]
        params = call_params(classes[cls_name])
        for where, fn, bound, args in _readings(call, params, enclosing, helpers):
            out += _path_calls(cls_name, call, where, fn, bound, args, r, params,
                               deps_of.setdefault(id(fn), _Deps(fn, stop, by_name, helpers)), by_name, in_place)
    return out


def _readings(call: cst.Call, params: List[str], enclosing: Dict[int, Tuple[str, cst.FunctionDef]],
              helpers: _Helpers):
    """``(where, function, bound values, args)`` to read a call of a class at: in the function
    holding it or, when that is a helper that only passes its own parameters on, at each of the
    helper's calls, with their arguments in place of those parameters."""
    where, fn = enclosing[id(call)]
    args: Dict[str, cst.Arg] = {}
    for arg, p in zip(positional_args(call), params):
        args[p] = arg
    for a in call.args:
        if a.keyword is not None:
            args[a.keyword.value] = a
    own = [(where, fn, {p: a.value for p, a in args.items()}, args)]
    if id(fn) in helpers.methods:
        return own
    fn_params = set(param_names(fn))
    local = fn_params | set(Scope(fn).assigns)
    if any(not (isinstance(a.value, cst.Name) and a.value.value in fn_params) and names_in(a.value) & local
           for a in args.values()):
        return own  # built inside the helper: read there
    callers = helpers.functions.callers(fn)
    if not callers or any(id(c) not in enclosing for c in callers):
        return own
    out = []
    for c in callers:
        outer: Dict[str, cst.Arg] = {}
        for p, a in args.items():
            if isinstance(a.value, cst.Name) and a.value.value in fn_params:
                given = helpers.functions.argument(c, fn, a.value.value)
                if given is None:
                    return own
                outer[p] = given
            else:
                outer[p] = a
        c_where, c_fn = enclosing[id(c)]
        out.append((c_where, c_fn, {p: a.value for p, a in outer.items()}, outer))
    return out


def _path_calls(cls_name: str, call: cst.Call, where: str, fn: cst.FunctionDef, bound: Dict[str, cst.BaseExpression],
                args: Dict[str, cst.Arg], r: CrossRoles, params: List[str], deps: _Deps,
                by_name: Dict[str, Factory], in_place: Dict[int, int]) -> List[PathCall]:
    out: List[PathCall] = []
    if any(bound.get(p) is not None and bound[p].deep_equals(bound[q])
           for p in r.source for q in r.target if q in bound):
        return out  # the same tensor on both sides: used decoder-only, no cross-attention here
    source = {n: node for p in r.source if p in bound for n, node in deps.of(bound[p]).items()}
    target = {n: node for p in r.target if p in bound for n, node in deps.of(bound[p]).items()}
    shared = source.keys() & target.keys()
    source = {n: v for n, v in source.items() if n not in shared}
    target = {n: v for n, v in target.items() if n not in shared}
    # the source's ids: the one parameter of the function the source arguments are built from
    fn_params = [p for p in param_names(fn) if p in source]
    source_ids = fn_params[0] if len(fn_params) == 1 else None
    for param in sorted(r.mask):
        value = bound.get(param)
        replace: List[cst.Name] = []
        target_ids = None
        if value is None and (param == "mask" or param in {f"{p}_mask" for p in params}):
            kind = "unknown"  # Keras fills ``mask`` / ``<input>_mask`` from the attached masks
        elif value is None or is_none(value):
            kind = "missing"
        elif _factory_slots(value, deps.scope, by_name, in_place):
            # by the factory's contract slots 0 and 2 are the source's padding; its look-ahead
            # mask here is a swap, which MF006 and MF010 judge
            slots = _factory_slots(value, deps.scope, by_name, in_place)
            kind = "source" if slots <= {0, 2} else "factory"
        else:
            mask = deps.of(value)
            from_source = [n for n in mask if n in source]
            from_target = [n for n in mask if n in target]
            kind = ("source" if from_source and not from_target else
                    "target" if from_target and not from_source else "unknown")
            if kind == "target":
                named = {n.value for n in _definition_names(value, deps) if n.value in target}
                target_ids = named.pop() if len(named) == 1 else None
            if target_ids and source_ids:
                replace = [n for n in _definition_names(value, deps) if n.value == target_ids]
        out.append(PathCall(cls_name, call, where, param, args.get(param), kind,
                            sorted(source), sorted(target), source_ids, target_ids, replace))
    return out


def _factory_slots(value: cst.BaseExpression, scope: Scope, factories: Dict[str, Factory],
                   in_place: Dict[int, int]) -> Set[int]:
    """The slots of factory results that ``value`` (a name) is unpacked from, or bound from masks
    built in place (``in_place``: id of each value -> its slot); empty otherwise."""
    if not isinstance(value, cst.Name):
        return set()
    values, is_param = scope.reaching(value.value, value)
    slots = set()
    for v in values:
        if isinstance(v, Element) and isinstance(v.value, cst.Call) and last_name(v.value.func) in factories:
            slots.add(v.index)
        elif id(v) in in_place:
            slots.add(in_place[id(v)])
        else:
            return set()
    return set() if is_param else slots


def _definition(name: cst.Name, deps: "_Deps") -> Optional[cst.BaseExpression]:
    """The one plain assignment that reaches ``name``, if there is exactly one."""
    values, is_param = deps.scope.reaching(name.value, name)
    if is_param or len(values) != 1 or isinstance(values[0], (Element, cst.FunctionDef, cst.ClassDef)):
        return None
    return values[0]


def _definition_names(value: cst.BaseExpression, deps: "_Deps") -> List[cst.Name]:
    """The names read by the mask's own expression: the argument, or the one plain assignment
    that reaches it, and the free names of a closure it calls (defined for this one call).  A name
    there that only aliases another (``ids = out``, bound once and read only here, as an inlined
    helper binds its parameter) stands for the name it aliases."""
    expr = value
    if isinstance(value, cst.Name):
        expr = _definition(value, deps)
        if expr is None:
            return []
    funcs = {id(c.func) for c in iter_nodes(expr, cst.Call) if isinstance(c.func, cst.Name)}
    out = []
    for n in iter_nodes(expr, cst.Name):
        if id(n) in funcs:
            continue
        seen = {n.value}
        # two occurrences: the binding and this read
        while len(deps.scope.assigns.get(n.value, ())) == 1 and deps.reads[n.value] == 2:
            alias = _definition(n, deps)
            if not isinstance(alias, cst.Name) or alias.value in seen:
                break
            seen.add(alias.value)
            n = alias
        out.append(n)
    # a closure it calls, defined for this one call: the names it reads where it runs
    for call in iter_nodes(expr, cst.Call):
        helper = deps.helpers.resolve(call, deps.fn) if deps.helpers is not None else None
        if helper is None or not deps.scope.binds(helper) or len(deps.helpers.functions.callers(helper)) != 1:
            continue
        body = helper.body if isinstance(helper, cst.Lambda) else None
        if isinstance(helper, cst.FunctionDef):
            returns = [r.value for r in iter_own_nodes(helper.body, cst.Return) if r.value is not None]
            body = returns[0] if len(returns) == 1 else None
        if body is None:
            continue
        own = set(param_names(helper)) | set(Scope(helper).assigns)
        inner = {id(c.func) for c in iter_nodes(body, cst.Call) if isinstance(c.func, cst.Name)}
        out += [n for n in iter_nodes(body, cst.Name) if id(n) not in inner and n.value not in own]
    return out


def divergent_paths(module: cst.Module, factories: List[Factory],
                    classes: Optional[Dict[str, LayerClass]] = None) -> List[Tuple[PathCall, PathCall]]:
    """``(wrong call, a right call of the same class)``: one path builds the cross-attention mask
    from the target or drops it while another builds it from the source."""
    calls = path_calls(module, factories, classes)
    out = []
    for pc in calls:
        if pc.kind not in ("target", "missing"):
            continue
        right = [c for c in calls if c.cls_name == pc.cls_name and c.param == pc.param and c.kind == "source"]
        if right:
            out.append((pc, right[0]))
    return out


__all__ = ["CrossRoles", "PathCall", "cross_roles", "path_calls", "divergent_paths"]
