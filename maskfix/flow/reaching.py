"""Reaching definitions of one function body, in statement order.

Each local binding is an expression (the value assigned, the iterable of a ``for``, the
item of a ``with``); a parameter is the ``PARAMETER`` binding.  Statements are walked in
order, branches of ``if``/``try``/``match`` are joined, and loops run to a fixpoint, so a
name bound twice resolves to the binding that reaches each use.  Lookups go through the
pre-order index of ``maskfix.syntax``; for a tree that is not indexed, every binding of
a name counts (the flow-insensitive answer).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Sequence, Set, Tuple, Union

import libcst as cst

from ..syntax import iter_nodes, last_name, names_in, span

PARAMETER = -1  # the binding of a parameter (or of a name the caller fills)

Env = Dict[str, FrozenSet[int]]


@dataclass(frozen=True, eq=False)
class Element:
    """Item ``index`` of ``value``, bound by unpacking (``x, enc = inputs``)."""

    value: cst.CSTNode
    index: int


def param_names(fn: Union[cst.FunctionDef, cst.Lambda]) -> List[str]:
    """Parameters of ``fn``, without ``self``/``cls``."""
    ps = fn.params
    names = [p.name.value for p in (*ps.posonly_params, *ps.params, *ps.kwonly_params)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def _join(a: Optional[Env], b: Optional[Env]) -> Optional[Env]:
    if a is None:
        return None if b is None else dict(b)
    if b is None:
        return dict(a)
    out = dict(a)
    for name, ids in b.items():
        out[name] = out[name] | ids if name in out else ids
    return out


class Scope:
    """Which bindings of a local reach each point of a function."""

    def __init__(self, fn: Union[cst.FunctionDef, cst.Lambda], inputs: Sequence[str] = ()):
        self.params = set(param_names(fn))
        self.inputs = set(inputs)  # locals that stand for parameters (a functional model's Inputs)
        self.values: List[cst.CSTNode] = []
        self._index: Dict[int, int] = {}  # id(value) -> its place in ``values`` (which keeps it alive)
        self._elements: Dict[Tuple[int, int], Element] = {}
        self.assigns: Dict[str, List[cst.CSTNode]] = {}  # every binding, in source order
        self._points: Dict[Tuple[int, int], Env] = {}
        env: Env = {p: frozenset([PARAMETER]) for p in self.params}
        if isinstance(fn, cst.FunctionDef):  # a lambda's body is one expression: nothing is bound
            self._block(fn.body, env)
        keys = sorted(self._points)
        self._starts = [k[0] for k in keys]
        self._spans = keys

    # -- queries

    def env_at(self, node: cst.CSTNode) -> Optional[Env]:
        """The bindings reaching the statement (or header) holding ``node``; None if unknown."""
        where = span(node)
        if where is None or not self._starts:
            return None
        i = bisect_right(self._starts, where[0]) - 1
        if i < 0:
            return None
        key = self._spans[i]
        if key[0] <= where[0] and where[1] <= key[1]:
            return self._points[key]
        return None

    def reaching(self, name: str, at: Optional[cst.CSTNode]) -> Tuple[List[cst.CSTNode], bool]:
        """``(values, is_parameter)`` of the bindings of ``name`` that reach ``at``."""
        env = self.env_at(at) if at is not None else None
        if env is None:
            return list(self.assigns.get(name, ())), name in self.params
        ids = env.get(name, frozenset())
        return [self.values[i] for i in sorted(ids) if i != PARAMETER], PARAMETER in ids

    def binds(self, node: cst.CSTNode) -> bool:
        """Whether ``node`` (a nested function, a lambda, a value) is bound to a local here."""
        idx = self._index.get(id(node))
        return idx is not None and self.values[idx] is node

    def binding_key(self, name: str, at: Optional[cst.CSTNode]) -> Tuple[str, FrozenSet[int]]:
        """A key that is equal exactly when two uses see the same bindings."""
        env = self.env_at(at) if at is not None else None
        return name, (env.get(name, frozenset()) if env is not None else frozenset([-2]))

    # -- the walk

    def _point(self, node: cst.CSTNode, env: Optional[Env]) -> None:
        where = span(node)
        if where is None or env is None:
            return
        old = self._points.get(where)
        self._points[where] = _join(old, env) if old is not None else dict(env)

    def _bind(self, env: Env, target: cst.CSTNode, value, keep: bool = False) -> None:
        if isinstance(target, cst.Name):
            idx = self._index.get(id(value))
            if idx is None:
                idx = self._index[id(value)] = len(self.values)
                self.values.append(value)
            raw = value.value if isinstance(value, Element) else value
            known = self.assigns.setdefault(target.value, [])
            if not any(v is raw for v in known):
                known.append(raw)
            new = frozenset([idx])
            env[target.value] = (env.get(target.value, frozenset()) | new) if keep else new
        elif isinstance(target, (cst.Tuple, cst.List)):
            parts = [el.value for el in target.elements]
            starred = any(isinstance(el, cst.StarredElement) for el in target.elements)
            if (isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(parts) and not starred
                    and not any(isinstance(el, cst.StarredElement) for el in value.elements)):
                for part, el in zip(parts, value.elements):  # ``a, b = x, y``
                    self._bind(env, part, el.value, keep)
                return
            for i, part in enumerate(parts):
                if starred or isinstance(value, Element):
                    self._bind(env, part, value, keep)
                    continue
                key = (id(value), i)
                if key not in self._elements:
                    self._elements[key] = Element(value, i)
                self._bind(env, part, self._elements[key], keep)
        elif isinstance(target, cst.StarredElement):
            self._bind(env, target.value, value, keep)

    def _block(self, block, env: Optional[Env]) -> Optional[Env]:
        if isinstance(block, cst.SimpleStatementSuite):
            return self._small(block.body, env)
        body = block.body if isinstance(block, cst.IndentedBlock) else block
        for stmt in body:
            env = self._stmt(stmt, env)
        return env

    def _small(self, smalls, env: Optional[Env]) -> Optional[Env]:
        for small in smalls:
            if env is None:
                return None
            self._point(small, env)
            env = dict(env)
            for walrus in iter_nodes(small, cst.NamedExpr):
                self._bind(env, walrus.target, walrus.value)
            if isinstance(small, cst.Assign):
                for t in small.targets:
                    self._bind(env, t.target, small.value)
            elif isinstance(small, cst.AnnAssign) and small.value is not None:
                self._bind(env, small.target, small.value)
            elif isinstance(small, cst.AugAssign):
                self._bind(env, small.target, small.value, keep=True)
            elif isinstance(small, (cst.Return, cst.Raise)):
                return None
        return env

    def _stmt(self, stmt: cst.CSTNode, env: Optional[Env]) -> Optional[Env]:
        if env is None:
            return None
        if isinstance(stmt, cst.SimpleStatementLine):
            return self._small(stmt.body, env)
        if isinstance(stmt, cst.If):
            self._point(stmt.test, env)
            then = self._block(stmt.body, dict(env))
            other = self._orelse(stmt.orelse, env)
            return _join(then, other) if (then is not None or other is not None) else None
        if isinstance(stmt, (cst.For, cst.While)):
            head = dict(env)
            for _ in range(8):  # bindings only grow; a few rounds reach the fixpoint
                if isinstance(stmt, cst.For):
                    self._point(stmt.iter, head)
                    inner = dict(head)
                    self._bind(inner, stmt.target, stmt.iter)
                else:
                    self._point(stmt.test, head)
                    inner = dict(head)
                end = self._block(stmt.body, inner)
                new = _join(head, end)
                if new == head:
                    break
                head = new
            after = self._block(stmt.orelse.body, dict(head)) if stmt.orelse is not None else head
            return _join(head, after)
        if isinstance(stmt, cst.With):
            env = dict(env)
            for item in stmt.items:
                self._point(item, env)
                if item.asname is not None:
                    self._bind(env, item.asname.name, item.item)
            return self._block(stmt.body, env)
        if isinstance(stmt, cst.Try):
            body = self._block(stmt.body, dict(env))
            start = _join(env, body)
            out = self._block(stmt.orelse.body, dict(body)) if stmt.orelse is not None and body else body
            for handler in stmt.handlers:
                out = _join(out, self._block(handler.body, dict(start)))
            if stmt.finalbody is not None:
                out = self._block(stmt.finalbody.body, _join(out, start))
            return out
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            env = dict(env)
            self._bind(env, stmt.name, stmt)
            return env
        if isinstance(stmt, cst.Match):
            self._point(stmt.subject, env)
            out: Optional[Env] = dict(env)
            for case in stmt.cases:
                out = _join(out, self._block(case.body, dict(env)))
            return out
        return env

    def _orelse(self, orelse, env: Env) -> Optional[Env]:
        if orelse is None:
            return dict(env)
        if isinstance(orelse, cst.If):
            return self._stmt(orelse, dict(env))
        return self._block(orelse.body, dict(env))


# id(fn) -> (fn, scope): a function's scope is built once per analysed module.
_SCOPES: Dict[int, Tuple[cst.CSTNode, Scope]] = {}


def scope_of(fn: Union[cst.FunctionDef, cst.Lambda]) -> Scope:
    """The (shared) scope of ``fn``; ``forget_scopes`` drops them all."""
    hit = _SCOPES.get(id(fn))
    if hit is None or hit[0] is not fn:
        hit = _SCOPES[id(fn)] = (fn, Scope(fn))
    return hit[1]


def forget_scopes() -> None:
    _SCOPES.clear()


def precedes(a: cst.CSTNode, b: cst.CSTNode) -> bool:
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
        values = [v for v in values if precedes(v.value if isinstance(v, Element) else v, name)]
        if is_param or (values and name.value in scope.inputs):
            out.add(name.value)
        for value in values:
            if not isinstance(value, (cst.FunctionDef, cst.ClassDef)):
                out |= roots(value, scope, seen)
    return out


def assigned_values(scope: Scope, expr: cst.BaseExpression, seen: Optional[Set[str]] = None) -> List[cst.BaseExpression]:
    """``expr`` and every value assigned to a local it reads, transitively (any binding, in any
    order: the expressions a mask may be built from)."""
    seen = set() if seen is None else seen
    out = [expr]
    for name in names_in(expr):
        if name not in seen:
            seen.add(name)
            for value in scope.assigns.get(name, ()):
                out.extend(assigned_values(scope, value, seen))
    return out
