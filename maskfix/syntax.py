"""Small LibCST helpers shared by the analysis and the rewrite.

``index_tree`` flattens a module into one pre-order list so that subtree
walks (``iter_nodes``, ``iter_calls``) are list scans: LibCST's ``children``
rebuilds its lists on every access, which dominated the analysis time.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Set, Tuple

import libcst as cst


def dotted(node: cst.CSTNode) -> Optional[str]:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def last_name(node: cst.CSTNode) -> Optional[str]:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return None


def is_none(node: Optional[cst.CSTNode]) -> bool:
    return isinstance(node, cst.Name) and node.value == "None"


def self_attr(node: cst.CSTNode) -> Optional[str]:
    """``X`` for ``self.X`` or ``self.X[i]``."""
    if isinstance(node, cst.Subscript):
        node = node.value
    if (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == "self"
    ):
        return node.attr.value
    return None


class _Spans(cst.CSTVisitor):
    """One pre-order pass over a module: every node with the slice its subtree covers."""

    def __init__(self):
        super().__init__()
        self.nodes: List[cst.CSTNode] = []
        self.span: Dict[int, List[int]] = {}

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.span[id(node)] = [len(self.nodes), 0]
        self.nodes.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.span[id(original_node)][1] = len(self.nodes)


# id(node) -> (spans, start, end) for indexed modules.  LibCST's ``children``
# rebuilds lists on every access; walking a flat pre-order list is far cheaper.
_INDEX: Dict[int, Tuple[_Spans, int, int]] = {}


def index_tree(module: cst.Module) -> None:
    """Make subtree walks over ``module`` cheap until ``forget_trees``."""
    spans = _Spans()
    module.visit(spans)
    for key, (a, b) in spans.span.items():
        _INDEX[key] = (spans, a, b)


def forget_trees() -> None:
    _INDEX.clear()


def span(node: cst.CSTNode) -> Optional[Tuple[int, int]]:
    """``(start, end)`` of ``node``'s subtree in its indexed module's pre-order, if indexed."""
    hit = _INDEX.get(id(node))
    if hit is None or hit[0].nodes[hit[1]] is not node:  # a recycled id is not the node
        return None
    return hit[1], hit[2]


def _flat(node: cst.CSTNode):
    hit = _INDEX.get(id(node))
    if hit is not None and hit[0].nodes[hit[1]] is node:
        return hit
    return None


def iter_calls(node: cst.CSTNode) -> Iterator[cst.Call]:
    """Every Call below ``node``, not descending into nested scopes."""
    flat = _flat(node)
    if flat is not None:
        spans, i, end = flat
        nodes = spans.nodes
        while i < end:
            cur = nodes[i]
            if cur is not node and isinstance(cur, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                i = spans.span[id(cur)][1]
                continue
            if isinstance(cur, cst.Call):
                yield cur
            i += 1
        return
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, cst.Call):
            yield cur
        for child in reversed(cur.children):
            if isinstance(child, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue
            stack.append(child)


def iter_own_nodes(node: cst.CSTNode, kind) -> Iterator[cst.CSTNode]:
    """Every node of ``kind`` below ``node``, not descending into nested scopes (so the returns
    of a function, not of the closures it defines)."""
    flat = _flat(node)
    if flat is not None:
        spans, i, end = flat
        nodes = spans.nodes
        while i < end:
            cur = nodes[i]
            if cur is not node and isinstance(cur, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                i = spans.span[id(cur)][1]
                continue
            if isinstance(cur, kind):
                yield cur
            i += 1
        return
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, kind):
            yield cur
        stack.extend(child for child in reversed(cur.children)
                     if not isinstance(child, (cst.FunctionDef, cst.ClassDef, cst.Lambda)))


def iter_nodes(node: cst.CSTNode, kind) -> Iterator[cst.CSTNode]:
    """Every node of ``kind`` in ``node``'s subtree, in source order."""
    flat = _flat(node)
    if flat is not None:
        spans, a, b = flat
        for cur in spans.nodes[a:b]:
            if isinstance(cur, kind):
                yield cur
        return
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, kind):
            yield cur
        stack.extend(reversed(cur.children))


def positional_args(call: cst.Call) -> List[cst.Arg]:
    return [a for a in call.args if a.keyword is None and not a.star]


def keyword_arg(call: cst.Call, name: str) -> Optional[cst.Arg]:
    for a in call.args:
        if a.keyword is not None and a.keyword.value == name:
            return a
    return None


def names_in(node: cst.CSTNode) -> Set[str]:
    return {n.value for n in iter_nodes(node, cst.Name)}


def instance_key(node: cst.CSTNode, subscripts: bool = True) -> Optional[str]:
    """``x`` or ``self.x`` for a name or self-attribute holding a layer; ``self.x[i]`` too
    unless ``subscripts`` is false."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Subscript) and not subscripts:
        return None
    attr = self_attr(node)
    return f"self.{attr}" if attr else None
