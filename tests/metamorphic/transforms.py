"""Verdict-preserving rewrites of a fixture, written as LibCST transformers.

Each transformation takes a fixture's source and returns ``{file key: text}`` (one or more
Python files, or one notebook), or ``None`` when it does not apply to that fixture ("n/a").
The rewrites keep what the program computes: the same masks reach the same attention calls,
so maskfix must give the same verdict (codes and fixability) before and after.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import libcst as cst
from libcst.metadata import FunctionScope, MetadataWrapper, ScopeProvider

from maskfix.verify.runtime import detect_runtime

Files = Dict[str, str]

SIBLING = "layers_mod"
MAIN = "main.py"
NOTEBOOK = "model.ipynb"

# Keras MultiHeadAttention.call parameters, in positional order, with their defaults.
KERAS3_MHA = [("query", None), ("value", None), ("key", "None"), ("query_mask", "None"),
              ("value_mask", "None"), ("key_mask", "None"), ("attention_mask", "None"),
              ("return_attention_scores", "False"), ("training", "None"), ("use_causal_mask", "False")]
TF_KERAS_MHA = [("query", None), ("value", None), ("key", "None"), ("attention_mask", "None"),
                ("return_attention_scores", "False"), ("training", "None"), ("use_causal_mask", "False")]


@lru_cache(maxsize=None)
def parse(source: str) -> cst.Module:
    """Parsed once per text: LibCST trees are immutable, so sharing them is safe."""
    return cst.parse_module(source)


def keras3(source: str) -> bool:
    """Whether the file runs on Keras 3, where the 4th positional MHA argument is query_mask."""
    try:
        return detect_runtime(source).flavour == "keras3"
    except ValueError:
        return False


# --------------------------------------------------------------------------- small helpers


def expr(code: str) -> cst.BaseExpression:
    return cst.parse_expression(code)


def stmt(code: str) -> cst.BaseStatement:
    return cst.parse_statement(code)


def code_of(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


class _Names(cst.CSTVisitor):
    """Names read or written in an expression, leaving out attribute names and keywords."""

    def __init__(self) -> None:
        self.found: List[str] = []
        self.skip: Set[int] = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.skip.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.skip.add(id(node.keyword))

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) not in self.skip:
            self.found.append(node.value)


def names_in(node: cst.CSTNode) -> List[str]:
    v = _Names()
    node.visit(v)
    return v.found


class Substitute(cst.CSTTransformer):
    """Replaces names (not attribute names or keywords) by expressions."""

    def __init__(self, mapping: Dict[str, cst.BaseExpression]) -> None:
        self.mapping = mapping
        self.skip: Set[int] = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.skip.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.skip.add(id(node.keyword))

    def visit_Param(self, node: cst.Param) -> None:
        self.skip.add(id(node.name))

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if id(original) in self.skip or original.value not in self.mapping:
            return updated
        return self.mapping[original.value]


def substitute(node, mapping: Dict[str, cst.BaseExpression]):
    return node.visit(Substitute(mapping)) if mapping else node


def rename(node, mapping: Dict[str, str]):
    return substitute(node, {k: cst.Name(v) for k, v in mapping.items()})


def params_of(fn: cst.FunctionDef) -> List[str]:
    p = fn.params
    out = [x.name.value for x in (*p.posonly_params, *p.params, *p.kwonly_params)]
    for star in (p.star_arg, p.star_kwarg):
        if isinstance(star, cst.Param):
            out.append(star.name.value)
    return out


def assigned_names(fn: cst.FunctionDef) -> Set[str]:
    """Names bound by plain assignments, for-loops and with-statements anywhere in ``fn``."""
    out: Set[str] = set()

    class V(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            out.update(_target_names(node.target))

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            out.update(_target_names(node.target))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            out.update(_target_names(node.target))

        def visit_For(self, node: cst.For) -> None:
            out.update(_target_names(node.target))

    fn.body.visit(V())
    return out


def _target_names(t: cst.BaseExpression) -> List[str]:
    if isinstance(t, cst.Name):
        return [t.value]
    if isinstance(t, (cst.Tuple, cst.List)):
        return [n for el in t.elements for n in _target_names(el.value)]
    if isinstance(t, cst.StarredElement):
        return _target_names(t.value)
    return []


def body_start(block: cst.IndentedBlock) -> int:
    """Index after a docstring, where new statements may go."""
    first = block.body[0] if block.body else None
    if (isinstance(first, cst.SimpleStatementLine) and len(first.body) == 1
            and isinstance(first.body[0], cst.Expr) and isinstance(first.body[0].value, cst.SimpleString)):
        return 1
    return 0


def single_assign(s: cst.CSTNode) -> Optional[Tuple[str, cst.BaseExpression]]:
    """``name = value`` as one statement on its own line."""
    if isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1 and isinstance(s.body[0], cst.Assign):
        a = s.body[0]
        if len(a.targets) == 1 and isinstance(a.targets[0].target, cst.Name):
            return a.targets[0].target.value, a.value
    return None


def fresh(module_code: str, base: str, taken: Set[str]) -> str:
    n = 0
    while True:
        name = f"{base}{n}" if n or base.endswith("_") else base
        if name not in taken and name not in module_code:
            taken.add(name)
            return name
        n += 1


def local_classes(module: cst.Module) -> Dict[str, cst.ClassDef]:
    return {s.name.value: s for s in module.body if isinstance(s, cst.ClassDef)}


def methods(cls: cst.ClassDef) -> Dict[str, cst.FunctionDef]:
    return {s.name.value: s for s in cls.body.body if isinstance(s, cst.FunctionDef)}


def is_keras_mha_ctor(node: cst.CSTNode, classes: Dict[str, cst.ClassDef]) -> bool:
    if not isinstance(node, cst.Call):
        return False
    f = node.func
    if isinstance(f, cst.Attribute) and f.attr.value == "MultiHeadAttention":
        return True
    return isinstance(f, cst.Name) and f.value == "MultiHeadAttention" and f.value not in classes


def attribute_layers(cls: cst.ClassDef) -> Dict[str, cst.BaseExpression]:
    """``self.X = value`` across the class's methods (the last one wins)."""
    out: Dict[str, cst.BaseExpression] = {}

    class V(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            for t in node.targets:
                tt = t.target
                if (isinstance(tt, cst.Attribute) and isinstance(tt.value, cst.Name)
                        and tt.value.value == "self"):
                    out[tt.attr.value] = node.value

    cls.visit(V())
    return out


def local_layers(fn: cst.FunctionDef) -> Dict[str, cst.BaseExpression]:
    out: Dict[str, cst.BaseExpression] = {}
    for s in _all_statements(fn.body):
        a = single_assign(s)
        if a and isinstance(a[1], cst.Call):
            out[a[0]] = a[1]
    return out


def _all_statements(node: cst.CSTNode) -> Iterable[cst.CSTNode]:
    out: List[cst.CSTNode] = []

    class V(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, n: cst.SimpleStatementLine) -> None:
            out.append(n)

    node.visit(V())
    return out


def resolve_layer(call: cst.Call, attrs: Dict[str, cst.BaseExpression],
                  local: Dict[str, cst.BaseExpression]) -> Optional[cst.BaseExpression]:
    """The constructor call behind the callee of ``call``, when it can be read off the file."""
    f = call.func
    if isinstance(f, cst.Call):
        return f
    if isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == "self":
        v = attrs.get(f.attr.value)
        return v if isinstance(v, cst.Call) else None
    if (isinstance(f, cst.Subscript) and isinstance(f.value, cst.Attribute)
            and isinstance(f.value.value, cst.Name) and f.value.value.value == "self"
            and len(f.slice) == 1 and isinstance(f.slice[0].slice, cst.Index)
            and isinstance(f.slice[0].slice.value, cst.Integer)):
        v = attrs.get(f.value.attr.value)
        i = int(f.slice[0].slice.value.value)
        if isinstance(v, (cst.List, cst.Tuple)) and i < len(v.elements):
            el = v.elements[i].value
            return el if isinstance(el, cst.Call) else None
    if isinstance(f, cst.Name):
        return local.get(f.value)
    return None


def signature_of(ctor: cst.BaseExpression, classes: Dict[str, cst.ClassDef], k3: bool
                 ) -> Optional[Tuple[List[Tuple[str, Optional[str]]], bool]]:
    """(parameters with default code, is Keras MHA) of the layer ``ctor`` builds."""
    if is_keras_mha_ctor(ctor, classes):
        return (KERAS3_MHA if k3 else TF_KERAS_MHA), True
    if isinstance(ctor, cst.Call) and isinstance(ctor.func, cst.Name) and ctor.func.value in classes:
        call = methods(classes[ctor.func.value]).get("call")
        if call is None or call.params.posonly_params:
            return None
        ps = list(call.params.params)[1:]
        return [(p.name.value, code_of(p.default) if p.default is not None else None) for p in ps], False
    return None


def each_function(module: cst.Module) -> Iterable[Tuple[Optional[cst.ClassDef], cst.FunctionDef]]:
    for s in module.body:
        if isinstance(s, cst.FunctionDef):
            yield None, s
        elif isinstance(s, cst.ClassDef):
            for m in s.body.body:
                if isinstance(m, cst.FunctionDef):
                    yield s, m


class _ReplaceNodes(cst.CSTTransformer):
    """Swaps given original nodes (by identity) for new nodes or node lists."""

    def __init__(self, table: Dict[int, object]) -> None:
        self.table = table

    def on_leave(self, original, updated):
        if id(original) in self.table:
            return self.table[id(original)]
        return updated


def replace(module: cst.Module, table: Dict[int, object]) -> cst.Module:
    return module.visit(_ReplaceNodes(table)) if table else module


def insert_before(module: cst.Module, anchor: cst.CSTNode, new: Sequence[cst.CSTNode]) -> Dict[int, object]:
    return {id(anchor): cst.FlattenSentinel([*new, anchor])}


# --------------------------------------------------------------------------- renames


def _function_locals(module: cst.Module) -> Dict[int, Dict[str, List[cst.Name]]]:
    """Per function (by id of its FunctionDef): local name -> every Name node that means it."""
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    scopes = wrapper.resolve(ScopeProvider)
    out: Dict[int, Dict[str, List[cst.Name]]] = {}
    seen = set()
    for scope in scopes.values():
        if not isinstance(scope, FunctionScope) or id(scope) in seen:
            continue
        seen.add(id(scope))
        fn = scope.node
        if not isinstance(fn, cst.FunctionDef):
            continue
        params = set(params_of(fn))
        declared = set()
        for s in _all_statements(fn.body):
            for small in s.body:
                if isinstance(small, (cst.Global, cst.Nonlocal)):
                    declared.update(n.name.value for n in small.names)
        names: Dict[str, List[cst.Name]] = {}
        for a in scope.assignments:
            if a.name in params or a.name in declared or not isinstance(a.node, cst.Name):
                continue
            nodes = names.setdefault(a.name, [])
            nodes.append(a.node)
            nodes.extend(r.node for r in a.references if isinstance(r.node, cst.Name))
        if any(not isinstance(a.node, cst.Name) for a in scope.assignments if a.name in names):
            for n in [a.name for a in scope.assignments if not isinstance(a.node, cst.Name)]:
                names.pop(n, None)  # an import or def: leave that name alone
        out[id(fn)] = names
    return out


def _rename_nodes(module: cst.Module, plan: Dict[int, str]) -> cst.Module:
    return replace(module, {k: cst.Name(v) for k, v in plan.items()})


def rename_locals(source: str) -> Optional[Files]:
    """Every local variable of every function gets a meaningless fresh name."""
    module = parse(source)
    taken: Set[str] = set()
    plan: Dict[int, str] = {}
    for names in _function_locals(module).values():
        for name in sorted(names):
            new = fresh(source, "v_", taken)
            for node in names[name]:
                plan[id(node)] = new
    if not plan:
        return None
    return {MAIN: _rename_nodes(module, plan).code}


def swap_local_names(source: str) -> Optional[Files]:
    """Within each function, local names are permuted: masks carry each other's names."""
    module = parse(source)
    plan: Dict[int, str] = {}
    nested = {id(fn) for _, fn in each_function(module) if _has_nested_scope(fn)}
    for fid, names in _function_locals(module).items():
        order = sorted(names)
        if len(order) < 2 or fid in nested:
            continue
        for old, new in zip(order, order[1:] + order[:1]):
            for node in names[old]:
                plan[id(node)] = new
    if not plan:
        return None
    return {MAIN: _rename_nodes(module, plan).code}


def _has_nested_scope(fn: cst.FunctionDef) -> bool:
    found = []

    class V(cst.CSTVisitor):
        def visit_Lambda(self, node) -> None:
            found.append(node)

        def visit_FunctionDef(self, node) -> None:
            found.append(node)

        def visit_ListComp(self, node) -> None:
            found.append(node)

        def visit_GeneratorExp(self, node) -> None:
            found.append(node)

        def visit_DictComp(self, node) -> None:
            found.append(node)

        def visit_SetComp(self, node) -> None:
            found.append(node)

    fn.body.visit(V())
    return bool(found)


# --------------------------------------------------------------------------- re-binding


def dead_store_before(source: str) -> Optional[Files]:
    """Before a local's first (unconditional) binding, bind it to a decoder-side tensor first."""
    module = parse(source)
    table: Dict[int, object] = {}
    for _, fn in each_function(module):
        params = [p for p in params_of(fn) if p != "self"]
        if not params or not isinstance(fn.body, cst.IndentedBlock):
            continue
        decoy = "mask" if "mask" in params else params[0]
        seen: Set[str] = set()
        for s in fn.body.body:
            a = single_assign(s)
            if a and a[0] not in seen and a[0] not in params and a[0] not in names_in(a[1]):
                table[id(s)] = cst.FlattenSentinel([stmt(f"{a[0]} = {decoy}"), s])
            for small in (s.body if isinstance(s, cst.SimpleStatementLine) else []):
                if isinstance(small, cst.Assign):
                    for t in small.targets:
                        seen.update(_target_names(t.target))
            if not isinstance(s, cst.SimpleStatementLine):
                seen.update(assigned_names(cst.FunctionDef(name=cst.Name("f"), params=cst.Parameters(),
                                                           body=cst.IndentedBlock(body=[s]))))
    if not table:
        return None
    return {MAIN: replace(module, table).code}


def rebind_after_use(source: str) -> Optional[Files]:
    """A function's final ``return E`` becomes ``out = E``; every local is re-bound; ``return out``."""
    module = parse(source)
    table: Dict[int, object] = {}
    taken: Set[str] = set()
    for _, fn in each_function(module):
        if not isinstance(fn.body, cst.IndentedBlock) or not fn.body.body:
            continue
        last = fn.body.body[-1]
        if not (isinstance(last, cst.SimpleStatementLine) and len(last.body) == 1
                and isinstance(last.body[0], cst.Return) and last.body[0].value is not None):
            continue
        locals_ = sorted(n for n in assigned_names(fn) if n not in params_of(fn))
        if not locals_:
            continue
        out = fresh(source, "result_", taken)
        new = [last.with_changes(body=[cst.Assign([cst.AssignTarget(cst.Name(out))], last.body[0].value)])]
        new += [stmt(f"{n} = None") for n in locals_]
        new.append(stmt(f"return {out}"))
        table[id(last)] = cst.FlattenSentinel(new)
    if not table:
        return None
    return {MAIN: replace(module, table).code}


# --------------------------------------------------------------------------- extraction


def _layer_attrs(cls: Optional[cst.ClassDef]) -> Set[str]:
    if cls is None:
        return set()
    out = set()
    for name, value in attribute_layers(cls).items():
        if isinstance(value, (cst.Call, cst.List, cst.Tuple)):
            if isinstance(value, cst.Call) and not _calls_capitalised(value):
                continue
            out.add(name)
    return out


def _calls_capitalised(node: cst.CSTNode) -> bool:
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, c: cst.Call) -> None:
            f = c.func
            name = f.attr.value if isinstance(f, cst.Attribute) else f.value if isinstance(f, cst.Name) else ""
            if name[:1].isupper():
                found.append(c)

    node.visit(V())
    return bool(found)


def _is_mask_computation(value: cst.BaseExpression, layer_attrs: Set[str]) -> bool:
    """A tensor computation that calls no layer: helpers, ops, casts, indexing."""
    has_work = []
    bad = []

    class V(cst.CSTVisitor):
        def visit_Call(self, c: cst.Call) -> None:
            has_work.append(c)
            f = c.func
            if isinstance(f, cst.Call):
                bad.append(c)
            if isinstance(f, (cst.Subscript,)):
                bad.append(c)
            if (isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == "self"
                    and f.attr.value in layer_attrs):
                bad.append(c)

        def visit_Subscript(self, s: cst.Subscript) -> None:
            has_work.append(s)

        def visit_Lambda(self, n) -> None:
            bad.append(n)

        def visit_Name(self, n: cst.Name) -> None:
            if n.value == "super":
                bad.append(n)

        def visit_GeneratorExp(self, n) -> None:
            bad.append(n)

        def visit_ListComp(self, n) -> None:
            bad.append(n)

        def visit_Yield(self, n) -> None:
            bad.append(n)

        def visit_Await(self, n) -> None:
            bad.append(n)

    value.visit(V())
    return bool(has_work) and not bad and not _calls_capitalised(value)


def _extract(source: str, how: str) -> Optional[Files]:
    module = parse(source)
    taken: Set[str] = set()
    table: Dict[int, object] = {}
    module_helpers: Dict[int, List[cst.CSTNode]] = {}  # id(top-level stmt) -> helpers before it
    class_helpers: Dict[int, List[cst.CSTNode]] = {}  # id(method) -> helpers before it
    for cls, fn in each_function(module):
        if fn.name.value == "__init__":
            continue
        is_method = cls is not None and params_of(fn)[:1] == ["self"] and not fn.decorators
        if how in ("method", "staticmethod") and not is_method:
            continue
        known = set(params_of(fn)) | assigned_names(fn)
        attrs = _layer_attrs(cls)
        for s in _all_statements(fn.body):
            a = single_assign(s)
            if not a or a[0] in params_of(fn) or not _is_mask_computation(a[1], attrs):
                continue
            target, value = a
            free = [n for n in dict.fromkeys(names_in(value)) if n in known]
            helper = fresh(source, "mask_part_", taken)
            outer = {n: ("layer" if n == "self" else n) for n in free}
            args = ", ".join(free)
            if how == "module":
                params = ", ".join(outer[n] for n in free)
                body = code_of(rename(value, {k: v for k, v in outer.items() if k != v}))
                module_helpers.setdefault(id(cls if cls is not None else fn), []).append(
                    _def(f"def {helper}({params}):\n    return {body}\n", 2))
                call = f"{helper}({args})"
                table[id(s)] = _assign_like(s, target, call)
            elif how == "nested":
                table[id(s)] = cst.FlattenSentinel([
                    stmt(f"def {helper}():\n    return {code_of(value)}\n"), _assign_like(s, target, f"{helper}()")])
            elif how == "lambda":
                params = ", ".join(outer[n] for n in free)
                body = code_of(rename(value, {k: v for k, v in outer.items() if k != v}))
                table[id(s)] = cst.FlattenSentinel([
                    _assign_like(s, helper, f"lambda {params}: {body}"), _assign_like(s, target, f"{helper}({args})")])
            elif how == "method":
                rest = [n for n in free if n != "self"]
                params = ", ".join(["self"] + rest)
                class_helpers.setdefault(id(fn), []).append(
                    _def(f"def {helper}({params}):\n    return {code_of(value)}\n", 1))
                table[id(s)] = _assign_like(s, target, f"self.{helper}({', '.join(rest)})")
            elif how == "staticmethod":
                params = ", ".join(outer[n] for n in free)
                body = code_of(rename(value, {k: v for k, v in outer.items() if k != v}))
                class_helpers.setdefault(id(fn), []).append(
                    _def(f"@staticmethod\ndef {helper}({params}):\n    return {body}\n", 1))
                table[id(s)] = _assign_like(s, target, f"self.{helper}({args})")
    if not table:
        return None
    for key, helpers in list(module_helpers.items()) + list(class_helpers.items()):
        table[key] = ("pending", helpers)
    return {MAIN: _apply_with_helpers(module, table).code}


def _def(code: str, blank_lines: int) -> cst.BaseStatement:
    return stmt(code).with_changes(leading_lines=_blank(blank_lines))


def _blank(n: int) -> List[cst.EmptyLine]:
    return [cst.EmptyLine(indent=False)] * n


def _assign_like(s: cst.SimpleStatementLine, target: str, value: str) -> cst.SimpleStatementLine:
    """``target = value`` keeping the line's leading comments and trailing whitespace."""
    return s.with_changes(body=[cst.Assign([cst.AssignTarget(cst.Name(target))], expr(value))])


class _WithHelpers(cst.CSTTransformer):
    def __init__(self, table: Dict[int, object]) -> None:
        self.table = table

    def on_leave(self, original, updated):
        entry = self.table.get(id(original))
        if entry is None:
            return updated
        if isinstance(entry, tuple) and entry and entry[0] == "pending":
            return cst.FlattenSentinel([*entry[1], updated])
        return entry


def _apply_with_helpers(module: cst.Module, table: Dict[int, object]) -> cst.Module:
    return module.visit(_WithHelpers(table))


def extract_module_function(source: str) -> Optional[Files]:
    """Mask computations move into module-level functions."""
    return _extract(source, "module")


def extract_nested_function(source: str) -> Optional[Files]:
    """Mask computations move into closures defined just before their use."""
    return _extract(source, "nested")


def extract_method(source: str) -> Optional[Files]:
    """Mask computations move into methods of the layer."""
    return _extract(source, "method")


def extract_staticmethod(source: str) -> Optional[Files]:
    """Mask computations move into staticmethods of the layer."""
    return _extract(source, "staticmethod")


def extract_lambda(source: str) -> Optional[Files]:
    """Mask computations become lambdas bound to a local and called."""
    return _extract(source, "lambda")


# --------------------------------------------------------------------------- inlining


def _inlinable(fn: cst.FunctionDef) -> bool:
    if not isinstance(fn.body, cst.IndentedBlock) or not fn.body.body:
        return False
    p = fn.params
    if p.posonly_params or p.kwonly_params or isinstance(p.star_arg, cst.Param) or p.star_kwarg:
        return False
    if any(d.decorator.value != "staticmethod" for d in fn.decorators
           if isinstance(d.decorator, cst.Name)) or any(not isinstance(d.decorator, cst.Name) for d in fn.decorators):
        return False
    body = fn.body.body[body_start(fn.body):]
    if not body or _has_nested_scope(fn):
        return False
    for s in body[:-1]:
        if not (isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1 and isinstance(s.body[0], cst.Assign)
                and all(_target_names(t.target) for t in s.body[0].targets)):
            return False
    last = body[-1]
    return (isinstance(last, cst.SimpleStatementLine) and len(last.body) == 1
            and isinstance(last.body[0], cst.Return) and last.body[0].value is not None)


class _Calls(cst.CSTVisitor):
    """Calls in a statement that may be hoisted (not under a lambda, comprehension or branch)."""

    def __init__(self) -> None:
        self.calls: List[cst.Call] = []
        self.depth = 0

    def _enter(self, _node) -> None:
        self.depth += 1

    def _leave(self, _node) -> None:
        self.depth -= 1

    visit_Lambda = visit_IfExp = visit_BooleanOp = visit_ListComp = visit_GeneratorExp = _enter
    visit_DictComp = visit_SetComp = _enter
    leave_Lambda = leave_IfExp = leave_BooleanOp = leave_ListComp = leave_GeneratorExp = _leave
    leave_DictComp = leave_SetComp = _leave

    def leave_Call(self, node: cst.Call) -> None:  # inner calls first: evaluation order
        if self.depth == 0:
            self.calls.append(node)


def inline_helpers(source: str) -> Optional[Files]:
    """Calls of small helper functions and methods are replaced by the helper's body."""
    module = parse(source)
    mod_funcs = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef) and _inlinable(s)}
    taken: Set[str] = set()
    table: Dict[int, object] = {}
    for cls, fn in each_function(module):
        meths = {k: m for k, m in methods(cls).items() if _inlinable(m)} if cls is not None else {}
        shadow = set(params_of(fn)) | assigned_names(fn)
        for s in _all_statements(fn.body):
            v = _Calls()
            s.visit(v)
            pre: List[cst.BaseStatement] = []
            swap: Dict[int, cst.BaseExpression] = {}
            for call in v.calls:
                f = call.func
                helper, receiver = None, None
                if isinstance(f, cst.Name) and f.value in mod_funcs and f.value not in shadow \
                        and f.value != fn.name.value:
                    helper = mod_funcs[f.value]
                elif (isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == "self"
                      and f.attr.value in meths and meths[f.attr.value] is not fn and params_of(fn)[:1] == ["self"]):
                    helper, receiver = meths[f.attr.value], f.value
                if helper is None or any(a.star for a in call.args):
                    continue
                ps = params_of(helper)
                static = any(isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod"
                             for d in helper.decorators)
                mapping: Dict[str, cst.BaseExpression] = {}
                if receiver is not None and not static:
                    mapping[ps[0]] = receiver
                    ps = ps[1:]
                bound: Dict[str, cst.BaseExpression] = {}
                positional = [a for a in call.args if a.keyword is None]
                if len(positional) > len(ps):
                    continue
                for p, a in zip(ps, positional):
                    bound[p] = a.value
                for a in call.args:
                    if a.keyword is not None:
                        bound[a.keyword.value] = a.value
                defaults = {p.name.value: p.default for p in helper.params.params if p.default is not None}
                if any(p not in bound and p not in defaults for p in ps):
                    continue
                hname = helper.name.value.strip("_")
                for p in ps:
                    new = fresh(source, f"{hname}_{p}_", taken)
                    pre.append(stmt(f"{new} = {code_of(bound.get(p, defaults.get(p)))}"))
                    mapping[p] = cst.Name(new)
                body = helper.body.body[body_start(helper.body):]
                local_names = sorted(assigned_names(helper) - set(params_of(helper)))
                for n in local_names:
                    mapping[n] = cst.Name(fresh(source, f"{hname}_{n}_", taken))
                for b in body[:-1]:
                    pre.append(cst.SimpleStatementLine(body=[substitute(b.body[0], mapping)]))
                ret = substitute(body[-1].body[0].value, mapping)
                swap[id(call)] = ret.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()]) \
                    if not ret.lpar else ret
            if swap:
                new_s = replace(s, swap)
                table[id(s)] = cst.FlattenSentinel([*pre, new_s])
    if not table:
        return None
    return {MAIN: replace(module, table).code}


# --------------------------------------------------------------------------- argument style


def _layer_calls(module: cst.Module, k3: bool):
    """(call, parameters, is Keras MHA) for every call whose layer the file shows."""
    classes = local_classes(module)
    out = []
    for cls, fn in each_function(module):
        attrs = attribute_layers(cls) if cls is not None else {}
        local = local_layers(fn)

        class V(cst.CSTVisitor):
            def visit_Call(self, call: cst.Call) -> None:
                ctor = resolve_layer(call, attrs, local)
                sig = signature_of(ctor, classes, k3) if ctor is not None else None
                if sig is not None:
                    out.append((call, sig[0], sig[1]))

        fn.body.visit(V())
    return out


def _binding(call: cst.Call, params) -> Optional[Dict[str, cst.Arg]]:
    names = [p for p, _ in params]
    bound: Dict[str, cst.Arg] = {}
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if any(a.star for a in call.args) or len(positional) > len(names):
        return None
    for p, a in zip(names, positional):
        bound[p] = a
    for a in call.args:
        if a.keyword is not None:
            if a.keyword.value in bound:
                return None
            bound[a.keyword.value] = a
    return bound


def _plain(a: cst.Arg, keyword: Optional[str]) -> cst.Arg:
    if keyword is None:
        return cst.Arg(value=a.value)
    return cst.Arg(value=a.value, keyword=cst.Name(keyword),
                   equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                         whitespace_after=cst.SimpleWhitespace("")))


def to_positional(source: str) -> Optional[Files]:
    """Keyword arguments of layer calls become positional, filling skipped slots with defaults.

    tf_keras takes ``attention_mask`` 4th.  Keras 3 puts ``query_mask, value_mask, key_mask``
    before it, and its ``Layer.__call__`` passes those three by keyword from the inputs' own
    masks, so a positional one collides with them at run time ("multiple values"): there the
    masks stay keywords and only query, value and key move.
    """
    module = parse(source)
    k3 = keras3(source)
    table: Dict[int, object] = {}
    for call, params, mha in _layer_calls(module, k3):
        bound = _binding(call, params)
        if bound is None:
            continue
        names = [p for p, _ in params]
        last = max((names.index(k) for k in bound if k in names), default=-1)
        limit = (names.index("key") if k3 else names.index("attention_mask")) if mha else last
        new: List[cst.Arg] = []
        used = set()
        for i, (p, default) in enumerate(params):
            if i > min(last, limit):
                break
            if p in bound:
                new.append(_plain(bound[p], None))
                used.add(p)
            elif default is not None and any(names.index(k) > i for k in bound if k in names):
                new.append(cst.Arg(value=expr(default)))
            else:
                break
        rest = [_plain(a, k) for k, a in bound.items() if k not in used]
        if len(used) == len([a for a in call.args if a.keyword is None]):
            continue  # nothing moved
        table[id(call)] = call.with_changes(args=_commas(new + rest))
    if not table:
        return None
    return {MAIN: replace(module, table).code}


def to_keywords(source: str) -> Optional[Files]:
    """Positional arguments of layer calls become keywords (the first stays positional for own
    layers, as Keras fills ``mask=`` from it)."""
    module = parse(source)
    table: Dict[int, object] = {}
    for call, params, mha in _layer_calls(module, keras3(source)):
        bound = _binding(call, params)
        if bound is None:
            continue
        positional = [a for a in call.args if a.keyword is None]
        keep = 0 if mha else 1
        if len(positional) <= keep:
            continue
        names = [p for p, _ in params]
        new = [_plain(a, None if i < keep else names[i]) for i, a in enumerate(positional)]
        new += [_plain(a, a.keyword.value) for a in call.args if a.keyword is not None]
        table[id(call)] = call.with_changes(args=_commas(new))
    if not table:
        return None
    return {MAIN: replace(module, table).code}


def _commas(args: List[cst.Arg]) -> List[cst.Arg]:
    out = []
    for i, a in enumerate(args):
        last = i == len(args) - 1
        comma = cst.MaybeSentinel.DEFAULT if last else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        out.append(a.with_changes(comma=comma))
    return out


# --------------------------------------------------------------------------- layers in lists


def attention_list_zip(source: str) -> Optional[Files]:
    """Attention sublayers move into one-element lists built in ``build()``, and ``call`` loops
    over them with ``zip`` (the shape of stacked decoders)."""
    module = parse(source)
    classes = local_classes(module)
    table: Dict[int, object] = {}
    for cls in classes.values():
        ms = methods(cls)
        init, call = ms.get("__init__"), ms.get("call")
        if init is None or call is None or not isinstance(call.body, cst.IndentedBlock):
            continue
        init_params = set(params_of(init)) | assigned_names(init)
        ctors = {}
        for s in init.body.body:
            if not (isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1 and isinstance(s.body[0], cst.Assign)):
                continue
            a = s.body[0]
            t = a.targets[0].target
            if (len(a.targets) == 1 and isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name)
                    and t.value.value == "self" and _is_attention_ctor(a.value, classes)):
                ctors[t.attr.value] = (s, a.value)
        uses = {}
        for i, s in enumerate(call.body.body):
            for name in ctors:
                if f"self.{name}(" in code_of(s):
                    uses.setdefault(name, []).append(i)
        uses = {k: v for k, v in uses.items()
                if len(v) == 1 and len(re.findall(rf"\bself\.{k}\b", code_of(cls))) == 2}
        if not uses:
            continue
        order = sorted(uses, key=lambda k: uses[k][0])
        first, last = uses[order[0]][0], uses[order[-1]][0]
        loop_vars = [f"attn_{k}" for k in order]
        lists = [f"attn_list_{k}" for k in order]
        stored: Set[str] = set()
        build_lines = []
        for k, lst in zip(order, lists):
            ctor = ctors[k][1]
            free = [n for n in names_in(ctor) if n in init_params]
            stored.update(free)
            stored_ctor = substitute(ctor, {n: expr('self.ctor_' + n) for n in free})
            build_lines.append(stmt(f"self.{lst} = [{code_of(stored_ctor)}]"))
        for k in order:
            table[id(ctors[k][0])] = cst.RemovalSentinel.REMOVE
        store = [stmt(f"self.ctor_{n} = {n}") for n in sorted(stored)]
        if store:
            table[id(init.body.body[-1])] = cst.FlattenSentinel([init.body.body[-1], *store])
        build = ms.get("build")
        if build is not None:
            at = build.body.body[body_start(build.body)]
            table[id(at)] = cst.FlattenSentinel([*build_lines, at])
        else:
            method = stmt("def build(self, input_shape):\n    super().build(input_shape)\n").with_changes(
                leading_lines=_blank(1))
            method = method.with_changes(body=method.body.with_changes(body=[*build_lines, *method.body.body]))
            table[id(call)] = ("before", method)
        mapping = {f"self.{k}(": f"{v}(" for k, v in zip(order, loop_vars)}
        block = [_retarget(s, mapping) for s in call.body.body[first:last + 1]]
        target = ", ".join(loop_vars) + ("," if len(loop_vars) == 1 else "")
        loop = stmt(f"for {target} in zip({', '.join('self.' + l for l in lists)}):\n    pass\n")
        loop = loop.with_changes(body=loop.body.with_changes(body=block))
        new_body = [*call.body.body[:first], loop, *call.body.body[last + 1:]]
        call_key = id(call.body)
        table[call_key] = call.body.with_changes(body=new_body)
    if not table:
        return None

    class T(cst.CSTTransformer):
        def on_leave(self, original, updated):
            entry = table.get(id(original))
            if entry is None:
                return updated
            if isinstance(entry, tuple):  # a new method before this one; keep this one's edits
                return cst.FlattenSentinel([entry[1], updated])
            return entry

    return {MAIN: module.visit(T()).code}


def _is_attention_ctor(node: cst.CSTNode, classes: Dict[str, cst.ClassDef]) -> bool:
    if is_keras_mha_ctor(node, classes):
        return True
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value in classes:
        return "MultiHeadAttention" in code_of(classes[node.func.value]) or "Attention" in node.func.value
    return False


def _retarget(s: cst.CSTNode, mapping: Dict[str, str]) -> cst.CSTNode:
    """``self.attr(`` -> ``loop_var(`` in one statement."""

    class T(cst.CSTTransformer):
        def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
            f = updated.func
            if isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == "self":
                new = mapping.get(f"self.{f.attr.value}(")
                if new:
                    return updated.with_changes(func=cst.Name(new[:-1]))
            return updated

    return s.visit(T())


# --------------------------------------------------------------------------- own attention class


def own_attention_class(source: str) -> Optional[Files]:
    """Every Keras MultiHeadAttention is wrapped in a project class that forwards its arguments."""
    module = parse(source)
    classes = local_classes(module)
    ctors: List[cst.Call] = []

    class V(cst.CSTVisitor):
        def visit_Call(self, c: cst.Call) -> None:
            if is_keras_mha_ctor(c, classes):
                ctors.append(c)

    module.visit(V())
    bases = [b.value for c in classes.values() for b in c.bases
             if code_of(b.value).endswith("Layer")]
    if not ctors or not bases:
        return None
    k3 = keras3(source)
    params = KERAS3_MHA if k3 else TF_KERAS_MHA
    name = fresh(source, "ProjectAttention", set())
    sig = ", ".join(p if d is None else f"{p}={d}" for p, d in params)
    fwd = ", ".join(f"{p}={p}" for p, _ in params)
    wrapper = stmt(
        f"class {name}({code_of(bases[0])}):\n"
        f"    def __init__(self, *args, **kwargs):\n"
        f"        super().__init__()\n"
        f"        self.inner = {code_of(ctors[0].func)}(*args, **kwargs)\n\n"
        f"    def call(self, {sig}):\n"
        f"        return self.inner({fwd})\n"
    )
    table: Dict[int, object] = {id(c): c.with_changes(func=cst.Name(name)) for c in ctors}
    first_def = next(s for s in module.body if isinstance(s, (cst.ClassDef, cst.FunctionDef))
                     or not _is_import_line(s))
    table[id(first_def)] = ("before", wrapper.with_changes(leading_lines=_blank(2)))

    class T(cst.CSTTransformer):
        def on_leave(self, original, updated):
            entry = table.get(id(original))
            if entry is None:
                return updated
            if isinstance(entry, tuple):
                return cst.FlattenSentinel([entry[1], updated])
            return entry

    return {MAIN: module.visit(T()).code}


def _is_import_line(s: cst.CSTNode) -> bool:
    if not isinstance(s, cst.SimpleStatementLine):
        return False
    return all(isinstance(x, (cst.Import, cst.ImportFrom)) or
               (isinstance(x, cst.Expr) and isinstance(x.value, cst.SimpleString)) for x in s.body)


# --------------------------------------------------------------------------- files and cells


def _defined(s: cst.CSTNode) -> List[str]:
    if isinstance(s, (cst.ClassDef, cst.FunctionDef)):
        return [s.name.value]
    if isinstance(s, cst.SimpleStatementLine):
        return [n for x in s.body if isinstance(x, cst.Assign) for t in x.targets for n in _target_names(t.target)]
    return []


def _sibling(source: str, star: bool, anchor_line: Optional[int]) -> Optional[Files]:
    module = parse(source)
    body = list(module.body)
    imports = [s for s in body if _is_import_line(s)]
    classes = [s for s in body if isinstance(s, cst.ClassDef)]
    if not classes:
        return None
    start = None
    if anchor_line is not None:
        line = 1 + len(module.header)
        for s in body:
            n = len(module.code_for_node(s).splitlines())
            if isinstance(s, cst.ClassDef) and line <= anchor_line < line + n:
                start = s
            line += n
    if start is None:
        start = next((c for c in classes if "Attention(" in code_of(c)), None)
    if start is None:
        return None
    defs = {n: s for s in body if not _is_import_line(s) for n in _defined(s)}
    moved = [start]
    todo = [start]
    while todo:
        node = todo.pop()
        for n in names_in(node):
            dep = defs.get(n)
            if dep is not None and dep not in moved:
                moved.append(dep)
                todo.append(dep)
    moved_ids = {id(s) for s in moved}
    sib_body = imports + [s for s in body if id(s) in moved_ids]
    rest = [s for s in body if id(s) not in moved_ids and not _is_import_line(s)]
    names = sorted(n for s in moved for n in _defined(s))
    imp = stmt(f"from {SIBLING} import *" if star else f"from {SIBLING} import {', '.join(names)}")
    last_import = max((i for i, s in enumerate(body) if _is_import_line(s)), default=-1)
    head = body[: last_import + 1]
    main_body = head + [imp] + rest
    sib = module.with_changes(body=sib_body)
    main = module.with_changes(body=main_body)
    return {f"{SIBLING}.py": sib.code, MAIN: main.code}


@lru_cache(maxsize=None)
def _anchor(source: str) -> Optional[int]:
    from maskfix import engine

    found = engine.run({"x.py": source})["x.py"].findings
    return found[0].line if found else None


def sibling_module(source: str) -> Optional[Files]:
    """The decoder (and what it needs) moves to a sibling module, imported by name."""
    return _sibling(source, False, _anchor(source))


def sibling_module_star(source: str) -> Optional[Files]:
    """As ``sibling_module``, imported with ``from layers_mod import *``."""
    return _sibling(source, True, _anchor(source))


def notebook_cells(source: str) -> Optional[Files]:
    """One code cell per top-level statement, markdown cells in between, a magic in front."""
    module = parse(source)
    if len(module.body) < 2:
        return None
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Model\n"]},
             {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": ["%matplotlib inline"]}]
    header = module.code_for_node(module.with_changes(body=[])) if module.header else ""
    for i, s in enumerate(module.body):
        text = (header if i == 0 else "") + module.code_for_node(s)
        lines = text.strip("\n").splitlines(keepends=True)
        cells.append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                      "source": lines})
        if isinstance(s, (cst.ClassDef, cst.FunctionDef)):
            cells.append({"cell_type": "markdown", "metadata": {}, "source": [f"Cell after {i}.\n"]})
    kernel = {"language": "python", "name": "python3", "display_name": "Python 3"}
    doc = {"cells": cells, "metadata": {"kernelspec": kernel, "language_info": {"name": "python"}},
           "nbformat": 4, "nbformat_minor": 5}
    return {NOTEBOOK: json.dumps(doc, indent=1) + "\n"}


TRANSFORMS: Dict[str, Callable[[str], Optional[Files]]] = {
    "rename_locals": rename_locals,
    "swap_local_names": swap_local_names,
    "dead_store_before": dead_store_before,
    "rebind_after_use": rebind_after_use,
    "extract_module_function": extract_module_function,
    "extract_nested_function": extract_nested_function,
    "extract_method": extract_method,
    "extract_staticmethod": extract_staticmethod,
    "extract_lambda": extract_lambda,
    "inline_helpers": inline_helpers,
    "to_positional": to_positional,
    "to_keywords": to_keywords,
    "attention_list_zip": attention_list_zip,
    "own_attention_class": own_attention_class,
    "sibling_module": sibling_module,
    "sibling_module_star": sibling_module_star,
    "notebook_cells": notebook_cells,
}
