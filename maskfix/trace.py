"""Trace a decoder call's encoder outputs back to the encoder's token ids.

Works on the straight-line model-building code of Keras tutorials: a body of
statements where each tensor is the result of applying a layer to another
tensor.  Lookups are flow-sensitive within one body (the latest assignment
before the use), which is what ``x = Layer()(x)`` chains need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import libcst as cst

from .syntax import (
    derived,
    flattened,
    instance_key,
    is_kind,
    iter_nodes,
    keyword_arg,
    last_name,
    positional_args,
    self_attr,
)


@dataclass
class Body:
    """The simple statements of one scope (module or function), in order."""

    owner: cst.CSTNode
    statements: List[cst.SimpleStatementLine] = field(default_factory=list)
    position: Dict[int, int] = field(default_factory=dict)  # id(stmt) -> index

    def assignment_before(self, name: str, index: int) -> Optional[Tuple[int, cst.BaseExpression]]:
        for j in range(index - 1, -1, -1):
            for small in self.statements[j].body:
                if isinstance(small, cst.Assign):
                    for t in small.targets:
                        if isinstance(t.target, cst.Name) and t.target.value == name:
                            return j, small.value
                        if isinstance(t.target, (cst.Tuple, cst.List)) and any(
                            isinstance(e.value, cst.Name) and e.value.value == name
                            for e in t.target.elements
                        ):
                            return j, None  # unpacked: the root of a chain
                elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                    if small.target.value == name and small.value is not None:
                        return j, small.value
        return None

    def names(self) -> set:
        out = set()
        for s in self.statements:
            out |= {n.value for n in iter_nodes(s, cst.Name)}
        return out


class BodyIndex:
    """The module's bodies (the module and every function, in order), the body of each simple
    statement, and the simple statement holding each call (none for a call in a compound
    statement's header).  A class's statements belong to the body around the class."""

    def __init__(self, module: cst.Module):
        self.bodies: List[Body] = []
        self.body_of: Dict[int, Body] = {}
        self.stmt_of: Dict[int, cst.SimpleStatementLine] = {}  # id(call) -> its statement
        index = flattened(module)
        nodes, ends = index.nodes, index.end
        open_bodies: List[Tuple[int, Body]] = []  # (where its owner's subtree ends, body)
        statement: Optional[cst.SimpleStatementLine] = None
        statement_end = 0
        for i in index.of_kind((cst.Call, cst.Module, cst.FunctionDef, cst.SimpleStatementLine)):
            node = nodes[i]
            while open_bodies and open_bodies[-1][0] <= i:
                open_bodies.pop()
            if statement is not None and i >= statement_end:
                statement = None
            if is_kind(node, cst.Call):
                if statement is not None:
                    self.stmt_of[id(node)] = statement
            elif is_kind(node, (cst.Module, cst.FunctionDef)):
                body = Body(owner=node)
                self.bodies.append(body)
                open_bodies.append((ends[i], body))
            else:  # a simple statement line
                body = open_bodies[-1][1]
                body.position[id(node)] = len(body.statements)
                body.statements.append(node)
                self.body_of[id(node)] = body
                statement, statement_end = node, ends[i]


def index_bodies(module: cst.Module) -> BodyIndex:
    """The module's ``BodyIndex``, built once per run (see ``syntax.derived``)."""
    return derived(module, "trace.bodies", BodyIndex)


@dataclass
class Root:
    """Where a traced tensor starts."""

    name: str  # the variable holding the root tensor
    statement_index: int  # where it was bound (-1: a parameter or unknown)
    input_call: Optional[cst.Call]  # the keras.Input(...) call, if any
    layers: List[cst.BaseExpression]  # layer expressions applied, outermost first

    def is_token_input(self, embeddings: frozenset = frozenset()) -> bool:
        """A 1-D ``Input`` (token ids), or a root first fed to an embedding layer."""
        if self.input_call is not None:
            return input_rank(self.input_call) == 1
        if not self.layers or not isinstance(self.layers[-1], cst.Call):
            return False
        name = last_name(self.layers[-1].func) or ""
        return "Embedding" in name or name in embeddings

    @property
    def is_feature_input(self) -> bool:
        return self.input_call is not None and (input_rank(self.input_call) or 0) >= 2


def input_rank(call: cst.Call) -> Optional[int]:
    arg = keyword_arg(call, "shape")
    if arg is None:
        pos = positional_args(call)
        arg = pos[0] if pos else None
    if arg is None:
        return None
    v = arg.value
    if isinstance(v, cst.Tuple):
        return len(v.elements)
    if isinstance(v, cst.List):
        return len(v.elements)
    return None


def is_input_call(node: Optional[cst.CSTNode]) -> bool:
    return isinstance(node, cst.Call) and last_name(node.func) == "Input"


def _first_input(call: cst.Call) -> Optional[cst.BaseExpression]:
    """The tensor a layer is applied to: its first positional argument, or ``inputs=``/``query=``."""
    pos = positional_args(call)
    if pos:
        return pos[0].value
    for name in ("inputs", "query"):
        arg = keyword_arg(call, name)
        if arg is not None:
            return arg.value
    return None


def _is_layer_application(node: cst.CSTNode) -> bool:
    """``Layer(...)(x)``, ``layer(x)``, ``self.layer(x)``: a call taking a tensor first."""
    if not isinstance(node, cst.Call) or _first_input(node) is None:
        return False
    func = node.func
    if isinstance(func, cst.Call):
        return True
    return isinstance(func, cst.Name) or self_attr(func) is not None


def trace_root(expr: cst.BaseExpression, body: Body, index: int,
               instances: Dict[str, cst.Call], depth: int = 0) -> Optional[Root]:
    """Follow ``expr`` back through layer applications to the tensor they start from."""
    layers: List[cst.BaseExpression] = []
    while depth < 50:
        depth += 1
        if isinstance(expr, cst.Name):
            found = body.assignment_before(expr.value, index)
            if found is None:
                return Root(expr.value, -1, None, layers)
            j, value = found
            if value is None:
                return Root(expr.value, j, None, layers)
            if is_input_call(value):
                return Root(expr.value, j, value, layers)
            if not _is_layer_application(value):
                return None
            index, expr = j, value
            continue
        if _is_layer_application(expr):
            func = expr.func
            layer = func if isinstance(func, cst.Call) else instances.get(instance_key(func))
            if layer is None:
                return None
            layers.append(layer)
            expr = _first_input(expr)
            continue
        return None
    return None


def layer_instances(module: cst.Module) -> Dict[str, cst.Call]:
    """Variables and self-attributes bound to a constructed layer or model."""
    out: Dict[str, cst.Call] = {}
    for node in iter_nodes(module, cst.Assign):
        if isinstance(node.value, cst.Call):
            for t in node.targets:
                key = instance_key(t.target)
                if key:
                    out[key] = node.value
    return out


Function = Union[cst.FunctionDef, cst.Lambda]


class LocalFunctions:
    """The module's functions and lambdas that model-building code calls by name.

    A function is found by the name it is bound to (``def f`` or ``f = lambda ...``) in the scope
    of the call or an enclosing one; a name bound to functions more than once in a scope is not
    followed.  This lets the tracer step into a helper that calls a sub-model, and out of it to
    the calls that give the helper its arguments.  ``local_functions`` shares one per module.
    """

    def __init__(self, module: cst.Module):
        self.module = module
        self._scope_of: Dict[int, cst.CSTNode] = {}  # id(node) -> innermost function (or module)
        self._defined: Dict[int, Dict[str, List[Function]]] = {}  # id(scope) -> name -> functions
        self._calls: Dict[int, List[cst.Call]] = {}  # id(function) -> its calls by name
        self._keep: List[cst.CSTNode] = []
        index = flattened(module)
        nodes, ends = index.nodes, index.end
        scopes: List[Tuple[int, cst.CSTNode]] = [(len(nodes), module)]  # (where it ends, scope)
        calls: List[cst.Call] = []
        for i in index.of_kind((cst.Call, cst.Assign, cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            node = nodes[i]
            while scopes[-1][0] <= i:
                scopes.pop()
            scope = scopes[-1][1]
            if is_kind(node, cst.Call):
                self._scope_of[id(node)] = scope
                calls.append(node)
            elif is_kind(node, cst.Assign):
                if isinstance(node.value, cst.Lambda):
                    for t in node.targets:
                        if isinstance(t.target, cst.Name):
                            self._define(scope, t.target.value, node.value)
            else:  # a function, class or lambda
                self._scope_of[id(node)] = scope
                if is_kind(node, cst.FunctionDef):
                    self._define(scope, node.name.value, node)
                scopes.append((ends[i], node))  # a class's methods are not names of the functions below
        for call in calls:
            fn = self.resolve(call)
            if fn is not None:
                self._calls.setdefault(id(fn), []).append(call)

    def _define(self, scope: cst.CSTNode, name: str, fn: Function) -> None:
        self._defined.setdefault(id(scope), {}).setdefault(name, []).append(fn)

    # -- queries

    def enclosing(self, node: cst.CSTNode) -> Optional[Function]:
        """The innermost function or lambda holding ``node`` (a call, a function); None at module level."""
        scope = self._scope_of.get(id(node))
        return scope if isinstance(scope, (cst.FunctionDef, cst.Lambda)) else None

    def resolve(self, call: cst.Call) -> Optional[Function]:
        """The function ``call`` runs, when it calls a name bound to exactly one function."""
        if not isinstance(call.func, cst.Name):
            return None
        name = call.func.value
        scope: Optional[cst.CSTNode] = self._scope_of.get(id(call))
        while scope is not None:
            found = None if isinstance(scope, cst.ClassDef) else self._defined.get(id(scope), {}).get(name)
            if found:
                return found[0] if len(found) == 1 else None
            if isinstance(scope, cst.Module):
                return None
            scope = self._scope_of.get(id(scope), self.module)
        return None

    def callers(self, fn: Function) -> List[cst.Call]:
        """The calls of ``fn`` by its name."""
        return list(self._calls.get(id(fn), ()))

    def argument(self, call: cst.Call, fn: Function, param: str) -> Optional[cst.Arg]:
        """The argument ``call`` passes for ``fn``'s parameter ``param`` (None: none, or unknown)."""
        ps = fn.params
        positional = [p.name.value for p in (*ps.posonly_params, *ps.params)]
        found = keyword_arg(call, param)
        if found is not None:
            return found
        if param in positional:
            pos = positional_args(call)
            i = positional.index(param)
            if any(a.star for a in call.args):
                return None
            return pos[i] if i < len(pos) else None
        return None

    def inline(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        """What a call of a one-line helper returns, its parameters replaced by the call's
        arguments: ``f(ids)`` with ``def f(x): return enc.predict(x)`` gives ``enc.predict(ids)``.
        Names the helper reads from an enclosing scope stay as they are."""
        fn = self.resolve(call)
        if fn is None:
            return None
        if isinstance(fn, cst.Lambda):
            value = fn.body
        else:
            body = fn.body.body if isinstance(fn.body, cst.IndentedBlock) else ()
            stmts = [s for s in body if not _is_docstring_line(s)]
            if len(stmts) != 1 or not isinstance(stmts[0], cst.SimpleStatementLine) \
                    or not isinstance(stmts[0].body[0], cst.Return) or stmts[0].body[0].value is None:
                return None
            value = stmts[0].body[0].value
        mapping: Dict[str, cst.BaseExpression] = {}
        ps = fn.params
        for p in (*ps.posonly_params, *ps.params, *ps.kwonly_params):
            arg = self.argument(call, fn, p.name.value)
            if arg is not None:
                mapping[p.name.value] = arg.value
            elif p.default is not None:
                mapping[p.name.value] = p.default
            else:
                return None
        out = value.visit(_Substitute(mapping))
        self._keep.append(out)  # the tracer keys nodes by id(): keep the new tree alive
        return out


def local_functions(module: cst.Module) -> LocalFunctions:
    """The module's ``LocalFunctions``, built once per run (see ``syntax.derived``)."""
    return derived(module, "trace.functions", LocalFunctions)


class _Substitute(cst.CSTTransformer):
    """Replace the free uses of names; attribute names, keywords and lambdas' own names stay."""

    def __init__(self, mapping: Dict[str, cst.BaseExpression]):
        super().__init__()
        self.mapping = mapping
        self.skip: set = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.skip.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.skip.add(id(node.keyword))

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if id(original) in self.skip:
            return updated
        return self.mapping.get(original.value, updated)


def _is_docstring_line(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))
