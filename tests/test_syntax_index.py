"""The shared module index: the same nodes in the same order as LibCST's own visit, and the
facts built on it (bodies, local functions) the same as visitors over the module give."""

from pathlib import Path

import libcst as cst
import pytest

from maskfix import syntax
from maskfix.syntax import (TreeIndex, derived, forget_trees, index_tree, iter_calls, iter_nodes, iter_own_nodes, span,
                            tree_index)
from maskfix.trace import BodyIndex, LocalFunctions, index_bodies, local_functions

ROOT = Path(__file__).resolve().parent.parent

# Syntax the fixtures may not hold: every kind of field LibCST visits conditionally or in an
# order other than its fields' declaration order.
VARIETY = '''\
from . import (a, b as c)
from .. x import *
import os.path as p, sys
# a comment

@dec(1)
@other
async def f[T: int, *Ts, **P](x: T, /, y=1, *args, z: "Z" = 2, **kw) -> T:
    """doc"""
    global g
    async with a as (b, c), d:
        async for i in aiter():
            await i
    s = f"{x} {y!r:>{width}.{prec}} {z=} {'q'}"
    t = f"{x:{w}}" f'{y}' "plain"
    return (lambda q=1, *, r: q + r)(2, r=3)


class K(Base, metaclass=M):
    x: int = 1; y = 2
    type Alias[U] = list[U]

    def m(self, *, k):
        nonlocal_free = [i for i in range(3) if i if not i for j in ()]
        match k:
            case {"a": 1, **rest} if rest:
                pass
            case [1, *others] | (2 | 3):
                pass
            case Point(x=0, y=_) as p:
                pass
            case _:
                pass
        try:
            del self[1:2, ::3], self.a
        except* (ValueError, TypeError) as e:
            raise RuntimeError() from e
        else:
            assert k, "k"
        finally:
            yield from ()
        while (n := k - 1) > 0 and not -k ** 2 // 3 @ m:
            k >>= 1
        else:
            print(*k, **{}, sep="")
        return {**{}, 1: 2}, {1, *k}, ..., b"x" if k else None
'''


def _sources():
    for path in sorted((ROOT / "tests" / "fixtures").glob("*/before.py")):  # after.py differs by a few lines
        yield path.parent.name + "/" + path.name, path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "examples").glob("*.py")):
        yield "examples/" + path.name, path.read_text(encoding="utf-8")
    yield "variety", VARIETY


SOURCES = list(_sources())
IDS = [n for n, _ in SOURCES]


class _PreOrder(cst.CSTVisitor):
    def __init__(self):
        super().__init__()
        self.nodes = []
        self.ends = {}

    def on_visit(self, node):
        self.ends[id(node)] = len(self.nodes)
        self.nodes.append(node)
        return True

    def on_leave(self, original_node):
        self.ends[id(original_node)] = (self.ends[id(original_node)], len(self.nodes))


@pytest.mark.parametrize("name,source", SOURCES, ids=IDS)
def test_the_index_and_what_is_built_on_it_match_libcsts_visit(name, source, monkeypatch):
    # every type's visiting order is learned afresh here, from this source's first instance
    monkeypatch.setattr(syntax, "_ORDER", {})
    module = cst.parse_module(source)
    ref = _PreOrder()
    module.visit(ref)
    index = TreeIndex(module)
    assert len(index.nodes) == len(ref.nodes)
    assert all(a is b for a, b in zip(index.nodes, ref.nodes))
    assert [(i, index.end[i]) for i in range(len(index.nodes))] == [ref.ends[id(n)] for n in ref.nodes]
    _check_bodies_and_functions(module)
    _check_walks(module, ref.nodes, ref.ends)


def test_a_field_visited_only_when_present_is_found_after_an_instance_without_it(monkeypatch):
    monkeypatch.setattr(syntax, "_ORDER", {})
    module = cst.parse_module('a = f"{x}"\nb = f"{y:{w}}"\n')
    names = [n.value for n in TreeIndex(module).nodes if isinstance(n, cst.Name)]
    assert names == ["a", "x", "b", "y", "w"]


_KINDS = (cst.Call, cst.Name, (cst.Assign, cst.AnnAssign), cst.BaseExpression, cst.Return,
          (cst.FunctionDef, cst.Lambda), cst.BaseCompoundStatement)


def _ids(nodes):
    return [id(n) for n in nodes]


def _check_walks(module, nodes, ends):
    """The walks over the index give what a scan of LibCST's pre-order gives."""
    scopes = (cst.FunctionDef, cst.ClassDef, cst.Lambda)

    def own(a, b, kind):
        out, i = [], a
        while i < b:
            if i != a and isinstance(nodes[i], scopes):
                i = ends[id(nodes[i])][1]
                continue
            if isinstance(nodes[i], kind):
                out.append(nodes[i])
            i += 1
        return out

    index_tree(module)
    try:
        for root in nodes:
            if not isinstance(root, (cst.Module, cst.FunctionDef, cst.ClassDef, cst.Lambda, cst.If)):
                continue
            a, b = ends[id(root)]
            assert _ids(iter_calls(root)) == _ids(own(a, b, cst.Call))
            for kind in _KINDS:
                assert _ids(iter_nodes(root, kind)) == _ids(n for n in nodes[a:b] if isinstance(n, kind))
                assert _ids(iter_own_nodes(root, kind)) == _ids(own(a, b, kind))
    finally:
        forget_trees()


class _RefBodies(cst.CSTVisitor):
    """The bodies as a visitor over the module finds them."""

    def __init__(self):
        super().__init__()
        self.stack, self.bodies, self.stmt_of, self.statement = [], [], {}, None

    def _push(self, node):
        self.bodies.append((node, []))
        self.stack.append(self.bodies[-1])

    def visit_Module(self, node):
        self._push(node)

    def leave_Module(self, node):
        self.stack.pop()

    def visit_FunctionDef(self, node):
        self._push(node)

    def leave_FunctionDef(self, node):
        self.stack.pop()

    def visit_SimpleStatementLine(self, node):
        self.stack[-1][1].append(node)
        self.statement = node

    def leave_SimpleStatementLine(self, node):
        self.statement = None

    def visit_Call(self, node):
        if self.statement is not None:
            self.stmt_of[id(node)] = self.statement


class _RefScopes(cst.CSTVisitor):
    """The innermost scope of every call and definition, and the functions each scope binds."""

    def __init__(self, module):
        super().__init__()
        self.stack, self.scope_of, self.defined, self.calls = [module], {}, {}, []

    def _define(self, name, fn):
        self.defined.setdefault(id(self.stack[-1]), {}).setdefault(name, []).append(fn)

    def visit_FunctionDef(self, node):
        self.scope_of[id(node)] = self.stack[-1]
        self._define(node.name.value, node)
        self.stack.append(node)

    def leave_FunctionDef(self, node):
        self.stack.pop()

    def visit_ClassDef(self, node):
        self.scope_of[id(node)] = self.stack[-1]
        self.stack.append(node)

    def leave_ClassDef(self, node):
        self.stack.pop()

    def visit_Lambda(self, node):
        self.scope_of[id(node)] = self.stack[-1]
        self.stack.append(node)

    def leave_Lambda(self, node):
        self.stack.pop()

    def visit_Assign(self, node):
        if isinstance(node.value, cst.Lambda):
            for t in node.targets:
                if isinstance(t.target, cst.Name):
                    self._define(t.target.value, node.value)

    def visit_Call(self, node):
        self.scope_of[id(node)] = self.stack[-1]
        self.calls.append(node)


def _check_bodies_and_functions(module):
    ref = _RefBodies()
    module.visit(ref)
    bodies = BodyIndex(module)
    assert [(b.owner, b.statements) for b in bodies.bodies] == ref.bodies
    assert all(b.owner is o for b, (o, _) in zip(bodies.bodies, ref.bodies))
    assert bodies.stmt_of.keys() == ref.stmt_of.keys()
    assert all(bodies.stmt_of[k] is s for k, s in ref.stmt_of.items())
    for b in bodies.bodies:
        assert all(bodies.body_of[id(s)] is b and b.position[id(s)] == i for i, s in enumerate(b.statements))

    scopes = _RefScopes(module)
    module.visit(scopes)
    functions = LocalFunctions(module)
    for call in scopes.calls:
        assert functions.enclosing(call) is (scopes.scope_of[id(call)]
                                             if isinstance(scopes.scope_of[id(call)], (cst.FunctionDef, cst.Lambda))
                                             else None)
        named = scopes.defined.get(id(scopes.scope_of[id(call)]), {})
        fn = functions.resolve(call)
        if isinstance(call.func, cst.Name) and len(named.get(call.func.value, ())) == 1:
            assert fn is named[call.func.value][0]
        if fn is not None:
            assert call in functions.callers(fn)


def test_derived_facts_are_built_once_per_run_for_an_indexed_module():
    module = cst.parse_module("def f(x):\n    return g(x)\n\n\ny = f(1)\n")
    built = []

    def build(m):
        built.append(m)
        return object()

    assert derived(module, "test", build) is not derived(module, "test", build)  # not indexed: each call
    index_tree(module)
    try:
        assert tree_index(module) is not None and span(module) == (0, len(tree_index(module).nodes))
        first = derived(module, "test", build)
        assert derived(module, "test", build) is first
        assert len(built) == 3
        assert index_bodies(module) is index_bodies(module)
        assert local_functions(module) is local_functions(module)
        call = next(c for c in iter_nodes(module, cst.Call) if c.func.value == "f")
        assert local_functions(module).resolve(call) is module.body[0]
    finally:
        forget_trees()
    assert tree_index(module) is None
    assert derived(module, "test", build) is not first
