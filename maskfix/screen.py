"""Second prefilter stage: a structural screen with the standard ``ast`` module.

LibCST parsing and the data-flow analysis cost far more than ``ast.parse``,
and most files that pass the byte prefilter (``prefilter.might_match``) hold
the needle for an unrelated reason.  ``worth_parsing`` keeps a source only
when it has the shape some finding needs; each test below is a necessary
condition of the matching analysis, loosened wherever mirroring it exactly
would be fragile:

- a decoder (MF001-MF003, flow.decoders.analyze_module): a class that stores a
  ``MultiHeadAttention(...)`` in ``self.X`` (or ``self.X[i]``) and has a method
  with two or more parameters that calls ``self.X`` with a query, a value, and
  a mask (``attention_mask=``, a 4th positional) or ``use_causal_mask=``;
  Query and value must differ, or no key can come from the encoder.  A
  function that builds a functional decoder from ``Input``s needs such a call
  of any attention layer;
- a decoder's self-attention (MF008): such a class whose method applies one
  attention with the same query and value and another with different ones;
- a mask that hides with 1 (MF009): such a class (or a functional builder)
  that applies an attention with an explicit mask, self-attention included,
  in a source that spells one of the ways such a mask is built (``equal``,
  ``== 0`` outside the test of an ``if``, ``1 - m``, ``logical_not``, ``~m``,
  ``triu``, a large negative constant such as ``-1e9``);
- a cross-attention that relies on implicit masks inside a decoder sub-model (MF012,
  implicit.implicit_decoders): the same class shape with a query and a different value but no
  mask, in a source that also builds a model from ``Input``s;
- keras_hub's decoder given decoder-side masks (MF001, flow.decoders.hub_decoder_calls): a
  call with an ``encoder_padding_mask=`` or ``encoder_attention_mask=`` keyword in a source that
  names ``TransformerDecoder`` and keras_hub or keras_nlp;
- a lazy embedding mask (MF007, flow.decoders.LazyMask): a ``compute_mask``
  method with ``if <mask> is None:`` directly in its body and a ``return``
  that uses its first parameter;
- a mask factory (MF004-MF006, flow.factories.find_factories): a function of two
  parameters that returns a 3-tuple whose first item can depend on the first
  parameter and whose second item can carry a causal
  label: following local bindings from it reaches an order comparison, a call
  named like a triangle or order op, or a call of a function (``f(...)`` or
  ``self.f(...)``) that itself holds one of those.

A finding kind added to the analysis needs a test here; tests/test_prefilter.py
checks every fixture with a finding against this screen.  Sources with a
syntax error are kept, so that LibCST reports the error as before; sources
nested too deeply for ``ast`` raise ``limits.TooDeep`` (LibCST would crash).
"""

from __future__ import annotations

import ast
import gc
import re
from typing import Dict, Iterator, List, Set

from .limits import parse_python, remember_tree
from .slicing import needs_slicing

MHA = "MultiHeadAttention"
_MASK_KEYWORDS = {"attention_mask", "use_causal_mask"}
_ANY_MASK = {"attention_mask", "query_mask", "key_mask", "value_mask"}
# What builds a mask with 1 marking what is hidden (values.py's transfer functions, loosened):
# equal(...)/== 0 outside the test of an if, while or assert, 1 - m, logical_not, ~m, triu, a
# large negative constant (-1e9, -10000, -inf; not a small one such as an epsilon of 1e-6).
_HIDING = re.compile(
    r"(?<!not_)equal\(|^(?![ \t]*(?:el)?if\b|[ \t]*while\b|[ \t]*assert\b)[^\n]*==\s*0\b"
    r"|\b1(?:\.0*)?\s*-\s*[\w(]|logical_not|~\s*[\w(]|triu|-\s*\d[\d_]*\.?\d*[eE]\+?\d|-\s*\d[\d_]{3}|inf\b",
    re.M,
)
# Calls that make a mask causal (the transfer functions of flow.values for triangles and ranges).
_CAUSAL_NAMES = {"band_part", "tril", "triu", "greater_equal", "greater", "less_equal", "less"}
_ORDER_OPS = (ast.Gt, ast.GtE, ast.Lt, ast.LtE)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def worth_parsing(source: str, keep_tree: bool = False) -> bool:
    """False only when no maskfix finding can be defined in ``source``.

    ``keep_tree``: the engine will run in this process, so a large file's tree is kept for it.
    """
    # Python's trees hold no reference cycles, so the cyclic collector, which parsing a large
    # file sets off again and again, only costs time here (about 40% on large modules).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _worth_parsing(source, keep_tree)
    finally:
        if enabled:
            gc.enable()


def _worth_parsing(source: str, keep_tree: bool) -> bool:
    tree = parse_python(source)  # TooDeep when Python's parser gives up: LibCST's would crash
    if tree is None:
        return True
    # Walking a class is costly: only classes whose lines hold the word are walked.
    mha, compute_mask = _lines_with(source, MHA), _lines_with(source, "compute_mask")
    inputs = _lines_with(source, "Input") if mha else []
    polar = bool(mha) and _HIDING.search(source) is not None  # needed only where the word is
    submodel = "Input(" in source
    cache = []

    def helpers() -> Set[str]:  # walks every function: only when a factory shape needs it
        if not cache:
            cache.append(causal_helpers(tree))
        return cache[0]

    if _hub_decoder_masks(source, tree):
        return True
    for node in _definitions(tree.body):
        if isinstance(node, ast.ClassDef):
            if (_spans(node, mha) and _decoder_shape(node, mha, polar, submodel)) or \
                    (_spans(node, compute_mask) and _lazy_mask_shape(node)):
                break
        elif _factory_shape(node, helpers) or (
                _spans(node, mha) and _spans(node, inputs) and _functional_decoder_shape(node, polar)):
            break
    else:
        return False
    if keep_tree and needs_slicing(source):
        remember_tree(source, tree)
    return True


_HUB_MASKS = {"encoder_padding_mask", "encoder_attention_mask"}


def _hub_decoder_masks(source: str, tree: ast.Module) -> bool:
    if "TransformerDecoder" not in source or ("keras_hub" not in source and "keras_nlp" not in source):
        return False
    return any(isinstance(n, ast.Call) and any(k.arg in _HUB_MASKS for k in n.keywords) for n in ast.walk(tree))


def _lines_with(source: str, word: str) -> List[int]:
    lines, line, last, at = [], 1, 0, source.find(word)
    while at != -1:
        line += source.count("\n", last, at)
        lines.append(line)
        last, at = at, source.find(word, at + len(word))
    return lines


def _spans(node: ast.stmt, lines: List[int]) -> bool:
    return any(node.lineno <= line <= node.end_lineno for line in lines)


_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(body: List[ast.stmt], into_definitions: bool = True) -> Iterator[ast.stmt]:
    """Every statement, at any depth (expressions are many, and none is visited); the bodies of
    nested classes and functions only with ``into_definitions``."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if not into_definitions and isinstance(node, (ast.ClassDef, *_DEFS)):
            continue
        for name in _BLOCKS:
            children = getattr(node, name, None)
            if children:
                stack.extend(reversed(children))


def _definitions(body: List[ast.stmt]) -> Iterator[ast.stmt]:
    """Every class and function, at any depth."""
    return (n for n in _statements(body) if isinstance(n, (ast.ClassDef, *_DEFS)))


def _params(fn) -> List[str]:
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def _last_name(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _self_attr(node) -> str:
    """``X`` for ``self.X`` or ``self.X[i]``."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return ""


def _mha_attributes(cls: ast.ClassDef, lines: List[int]) -> Set[str]:
    """``X`` for every ``self.X = ...MultiHeadAttention(...)...`` in ``cls`` (``lines``: where the word is)."""
    attrs = set()
    for node in _statements(cls.body):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if _spans(node, lines) and any(
                isinstance(c, ast.Call) and _last_name(c.func) == MHA for c in ast.walk(node.value)):
            attrs.update(a for a in map(_self_attr, targets) if a)
    return attrs


def _decoder_shape(cls: ast.ClassDef, lines: List[int], polar: bool = False, implicit: bool = False) -> bool:
    attrs = _mha_attributes(cls, lines)
    if not attrs:
        return False
    for fn in cls.body:
        if not isinstance(fn, _DEFS) or len(_params(fn)) < 2:
            continue
        nodes = list(ast.walk(fn))
        # loop variables over attention lists (``for a, b in zip(self.xs, self.ys)``)
        looped = {
            t.id for n in nodes if isinstance(n, ast.For) and attrs & {_self_attr(i) for i in ast.walk(n.iter)}
            for t in ast.walk(n.target) if isinstance(t, ast.Name)
        }
        roles = set()
        for call in nodes:
            if not isinstance(call, ast.Call):
                continue
            applied = _self_attr(call.func) in attrs or (isinstance(call.func, ast.Name) and call.func.id in looped)
            if applied and (_attention_call(call, implicit) or (polar and _masked(call))):
                return True
            if applied:
                roles.add(_role(call))
        if {"self", "cross"} <= roles:  # a decoder's self-attention (MF008)
            return True
    return False


def _role(call: ast.Call) -> str:
    """'self' when query and value are the same tree, 'cross' when they differ, '' otherwise."""
    slots = dict(zip(("query", "value"), [a for a in call.args if not isinstance(a, ast.Starred)]))
    slots.update((k.arg, k.value) for k in call.keywords if k.arg in ("query", "value"))
    if "query" not in slots or "value" not in slots:
        return ""
    return "self" if ast.dump(slots["query"]) == ast.dump(slots["value"]) else "cross"


def _functional_decoder_shape(fn, polar: bool = False) -> bool:
    """A builder of a functional decoder (flow.decoders): ``Input``s and an
    attention applied with a query, a different value and a mask."""
    nodes = list(ast.walk(fn))
    if not any(isinstance(n, ast.Call) and _last_name(n.func) == "Input" for n in nodes):
        return False
    return any(isinstance(n, ast.Call) and (_attention_call(n) or (polar and _masked(n))) for n in nodes)


def _masked(call: ast.Call) -> bool:
    """An explicit mask of any attention, self-attention included (MF009 reads its polarity)."""
    positional = sum(not isinstance(a, ast.Starred) for a in call.args)
    return positional > 3 or bool({k.arg for k in call.keywords if k.arg} & _ANY_MASK)


def _attention_call(call: ast.Call, implicit: bool = False) -> bool:
    """A query, a value, and something that masks (or nothing, with ``implicit``): what a
    cross-attention finding needs."""
    positional = sum(not isinstance(a, ast.Starred) for a in call.args)
    keywords = {k.arg for k in call.keywords if k.arg}
    if not (implicit or positional > 3 or keywords & _MASK_KEYWORDS):
        return False
    slots = dict(zip(("query", "value"), [a for a in call.args if not isinstance(a, ast.Starred)]))
    slots.update((k.arg, k.value) for k in call.keywords if k.arg in ("query", "value"))
    if "query" not in slots or "value" not in slots:
        return False
    # The same tree twice has the same roots: the analysis never takes it for a cross-attention.
    return ast.dump(slots["query"]) != ast.dump(slots["value"])


def _lazy_mask_shape(cls: ast.ClassDef) -> bool:
    for fn in cls.body:
        if not isinstance(fn, _DEFS) or fn.name != "compute_mask":
            continue
        params = _params(fn)
        if len(params) < 2:
            continue
        for stmt in fn.body:
            test = getattr(stmt, "test", None) if isinstance(stmt, ast.If) else None
            if (
                isinstance(test, ast.Compare)
                and isinstance(test.left, ast.Name)
                and test.left.id == params[1]
                and len(test.ops) == 1
                and isinstance(test.ops[0], ast.Is)
                and isinstance(test.comparators[0], ast.Constant)
                and test.comparators[0].value is None
            ):
                return any(
                    isinstance(r, ast.Return) and r.value is not None and params[0] in _names(r.value)
                    for r in ast.walk(fn)
                )
    return False


def _names(node) -> Set[str]:
    """Names as LibCST sees them: attribute and keyword names count too."""
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, ast.keyword) and n.arg:
            out.add(n.arg)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
    return out


def _factory_shape(fn, helpers) -> bool:
    """``helpers()`` gives the names of functions that may build a causal mask."""
    params = _params(fn)
    if len(params) != 2:
        return False
    returns = [n.value for n in _statements(fn.body, into_definitions=False)
               if isinstance(n, ast.Return) and n.value is not None]
    # flow.factories.find_factories: exactly one value returned, a 3-tuple (or a name bound to one)
    if len(returns) != 1 or not isinstance(returns[0], (ast.Tuple, ast.Name)):
        return False
    if isinstance(returns[0], ast.Tuple) and len(returns[0].elts) != 3:
        return False
    bindings = _bindings(ast.walk(fn))
    triples = [returns[0]] if isinstance(returns[0], ast.Tuple) else bindings.get(returns[0].id, [])
    triples = [t for t in triples if isinstance(t, ast.Tuple) and len(t.elts) == 3]
    return any(
        params[0] in _reachable_names(t.elts[0], bindings)  # the first mask comes from the source
        and _reaches_causal_origin(t.elts[1], bindings, helpers)
        for t in triples
    )


def _reachable_names(expr, bindings) -> Set[str]:
    stack, seen = [expr], set()
    while stack:
        for name in _names(stack.pop()) - seen:
            seen.add(name)
            stack.extend(bindings.get(name, ()))
    return seen


def _bindings(nodes) -> Dict[str, List[ast.AST]]:
    """Every value any construct binds to a name (a superset of flow.reaching.Scope)."""
    out: Dict[str, List[ast.AST]] = {}

    def bind(target, value):
        for n in ast.walk(target):
            if isinstance(n, ast.Name):
                out.setdefault(n.id, []).append(value)

    for n in nodes:
        if isinstance(n, ast.Assign):
            for t in n.targets:
                bind(t, n.value)
        elif isinstance(n, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and n.value is not None:
            bind(n.target, n.value)
        elif isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension)):
            bind(n.target, n.iter)
        elif isinstance(n, ast.withitem) and n.optional_vars is not None:
            bind(n.optional_vars, n.context_expr)
        elif isinstance(n, _DEFS):  # a closure: what it reads flows into what it returns
            out.setdefault(n.name, []).append(n)
    return out


def _direct_origin(n) -> bool:
    """Where the abstract values (flow.values) make a mask causal by themselves: an order comparison
    (of two ranges) or a triangle (a superset of both)."""
    if isinstance(n, ast.Compare):
        return any(isinstance(op, _ORDER_OPS) for op in n.ops)
    return isinstance(n, ast.Call) and _last_name(n.func) in _CAUSAL_NAMES


def causal_helpers(tree: ast.Module) -> Set[str]:
    """Names of functions, at any depth, that hold a direct causal origin or call such a function
    (the abstract values follow what a helper returns)."""
    calls: Dict[str, Set[str]] = {}
    found: Set[str] = set()
    for d in _definitions(tree.body):
        if not isinstance(d, _DEFS):
            continue
        names = calls.setdefault(d.name, set())
        for n in ast.walk(d):
            if _direct_origin(n):
                found.add(d.name)
            elif isinstance(n, ast.Call):
                names.add(n.func.id if isinstance(n.func, ast.Name) else _last_name(n.func))
    grown = True
    while grown:
        new = {name for name, called in calls.items() if name not in found and called & found}
        found |= new
        grown = bool(new)
    return found


def _reaches_causal_origin(expr, bindings, helpers) -> bool:
    stack, seen = [expr], set()
    while stack:
        for n in ast.walk(stack.pop()):
            if _direct_origin(n):
                return True
            if isinstance(n, ast.Call):
                name = n.func.id if isinstance(n.func, ast.Name) else _self_attr(n.func)
                if name and name in helpers():
                    return True
            for name in _names(n) if isinstance(n, (ast.Name, ast.Attribute, ast.keyword)) else ():
                if name not in seen:
                    seen.add(name)
                    stack.extend(bindings.get(name, ()))
    return False
