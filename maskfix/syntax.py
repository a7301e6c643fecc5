"""Small LibCST helpers shared by the analysis and the rewrite.

``index_tree`` flattens a module into one pre-order list (``TreeIndex``) so
that subtree walks (``iter_nodes``, ``iter_calls``) are list scans: LibCST's
``children`` rebuilds its lists on every access, and its ``visit`` rebuilds
every node it passes, which dominated the analysis time.  Facts several rules
need (the bodies of ``trace``, its local functions) are built on that list
once per run and shared (``derived``) instead of each walking the module again.
"""

from __future__ import annotations

import bisect
import dataclasses
import operator
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple, TypeVar

import libcst as cst

T = TypeVar("T")


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


class _FieldOrder(cst.CSTVisitor):
    """Records the fields ``_visit_and_replace_children`` visits, in its order, without descending."""

    def __init__(self, node: cst.CSTNode):
        super().__init__()
        self.root = node
        self.fields: List[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return node is self.root

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        if node is self.root and attribute not in self.fields:
            self.fields.append(attribute)


class _Order(NamedTuple):
    """How to read one node type's children: its child fields in LibCST's visiting order, and
    the fields a visit of the instance it was learned from skipped."""

    fields: Callable[[cst.CSTNode], tuple]  # the values of the child fields, as a tuple
    unseen: Tuple[str, ...]


_ORDER: Dict[type, _Order] = {}


def _learn_order(node: cst.CSTNode) -> _Order:
    """The child fields of ``node``'s type in source order, as LibCST's own visit goes.

    Read once per type off a shallow visit of one instance.  A field such a visit skips for this
    instance (``format_spec=None`` of an f-string expression) is kept aside and checked on
    every later instance: when one holds a node there, the order is learned again from it.
    """
    recorder = _FieldOrder(node)
    node._visit_and_replace_children(recorder)
    seen = recorder.fields
    getter = operator.attrgetter(*seen) if len(seen) > 1 else (
        (lambda n, name=seen[0]: (getattr(n, name),)) if seen else (lambda n: ()))
    order = _ORDER[type(node)] = _Order(
        getter, tuple(f.name for f in dataclasses.fields(node) if f.name not in seen))
    return order


_IS_NODE: Dict[type, bool] = {}  # LibCST's node classes are ABCs: isinstance() on them is slow


def _is_node(value) -> bool:
    hit = _IS_NODE.get(value.__class__)
    if hit is None:
        hit = _IS_NODE[value.__class__] = _subclass(value.__class__, cst.CSTNode)
    return hit


def _subclass(t: type, kind) -> bool:
    """``issubclass(t, kind)`` by ``t``'s MRO.  An ABC's own check, the first time it answers
    no for a class, walks every subclass of the ABC (hundreds for ``CSTNode``); LibCST registers
    no virtual subclass, so the MRO says the same."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return any(k in t.__mro__ for k in kinds)


_KINDS: Dict[Tuple[type, object], bool] = {}


def _is_kind(t: type, kind) -> bool:
    key = (t, kind)
    hit = _KINDS.get(key)
    if hit is None:
        hit = _KINDS[key] = _subclass(t, kind)
    return hit


def is_kind(node: cst.CSTNode, kind) -> bool:
    """``isinstance(node, kind)``, asked once per class: LibCST's node classes are ABCs, whose
    ``isinstance`` is a Python-level call, which a scan over every node of a module feels."""
    return _is_kind(node.__class__, kind)


def _holds_nodes(value) -> bool:
    if _is_node(value):
        return True
    return isinstance(value, (tuple, list)) and any(_is_node(v) for v in value)


class TreeIndex:
    """One module flattened: every node in pre-order (LibCST's visiting order, which is source
    order), where each node's subtree ends, and facts derived from the module, built once per
    run by whoever needs them first (``derived``)."""

    def __init__(self, root: cst.CSTNode):
        self.root = root
        self.nodes: List[cst.CSTNode] = []
        self.end: List[int] = []  # end[i]: one past the last node of nodes[i]'s subtree
        self.position: Dict[int, int] = {}  # id(node) -> its index in ``nodes``
        self.by_type: Dict[type, List[int]] = {}  # the indices of each type's nodes, ascending
        self.facts: Dict[str, object] = {}
        self._kinds: Dict[object, List[int]] = {}
        self._walk(root)

    def of_kind(self, kind) -> List[int]:
        """The indices of the nodes that are instances of ``kind`` (a type or a tuple), ascending.

        LibCST's node classes are ABCs, whose ``isinstance`` is a Python-level call: asked once
        per type here, not once per node and walk."""
        found = self._kinds.get(kind)
        if found is None:
            lists = [hits for t, hits in self.by_type.items() if _is_kind(t, kind)]
            found = lists[0] if len(lists) == 1 else sorted(i for hits in lists for i in hits)
            self._kinds[kind] = found
        return found

    def _walk(self, node: cst.CSTNode) -> None:
        # Reads the fields directly: LibCST's own visit rebuilds every node it passes, which
        # costs several times more than the walk itself.
        nodes, end = self.nodes, self.end
        i = len(nodes)
        self.position[id(node)] = i
        nodes.append(node)
        end.append(0)
        cls = node.__class__
        hits = self.by_type.get(cls)
        if hits is None:
            hits = self.by_type[cls] = []
        hits.append(i)
        order = _ORDER.get(cls)
        if order is None:
            order = _learn_order(node)
        for name in order.unseen:
            if _holds_nodes(getattr(node, name)):
                order = _learn_order(node)
                break
        for value in order.fields(node):
            kind = value.__class__
            if kind is tuple or kind is list:
                for child in value:
                    self._walk(child)
            elif _is_node(value):  # None, a MaybeSentinel, a string are not
                self._walk(value)
        end[i] = len(nodes)

    def span(self, node: cst.CSTNode) -> Optional[Tuple[int, int]]:
        i = self.position.get(id(node))
        if i is None or self.nodes[i] is not node:
            return None
        return i, self.end[i]


# id(node) -> the index holding it, for indexed modules.  LibCST's ``children`` rebuilds lists
# on every access; walking a flat pre-order list is far cheaper.
_INDEX: Dict[int, TreeIndex] = {}


def index_tree(module: cst.Module) -> TreeIndex:
    """Make subtree walks over ``module`` cheap, and its derived facts shared, until ``forget_trees``."""
    index = TreeIndex(module)
    adopt_index(index)
    return index


def adopt_index(index: TreeIndex) -> None:
    """Make ``index`` (of an earlier run, forgotten since) the index of its module again."""
    for key in index.position:
        _INDEX[key] = index


def forget_trees() -> None:
    _INDEX.clear()


def tree_index(node: cst.CSTNode) -> Optional[TreeIndex]:
    """The index of the indexed module holding ``node``, if any."""
    index = _INDEX.get(id(node))
    if index is None or index.span(node) is None:  # a recycled id is not the node
        return None
    return index


def flattened(node: cst.CSTNode) -> TreeIndex:
    """``node``'s subtree in pre-order: the module's index when it is indexed, else a new one."""
    index = tree_index(node)
    return index if index is not None and index.root is node else TreeIndex(node)


def derived(module: cst.Module, name: str, build: Callable[[cst.Module], T]) -> T:
    """``build(module)``, computed once per run for an indexed module (the facts of a module do
    not change while it is analysed); every call for one that is not indexed."""
    index = tree_index(module)
    if index is None or index.root is not module:
        return build(module)
    if name not in index.facts:
        index.facts[name] = build(module)
    return index.facts[name]  # type: ignore[return-value]


def span(node: cst.CSTNode) -> Optional[Tuple[int, int]]:
    """``(start, end)`` of ``node``'s subtree in its indexed module's pre-order, if indexed."""
    index = _INDEX.get(id(node))
    return None if index is None else index.span(node)


def _flat(node: cst.CSTNode):
    index = _INDEX.get(id(node))
    if index is None:
        return None
    where = index.span(node)
    return None if where is None else (index, where[0], where[1])


_SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)


def _own_hits(index: "TreeIndex", a: int, b: int, kind) -> Iterator[cst.CSTNode]:
    """The nodes of ``kind`` in ``nodes[a:b]`` outside the scopes nested in ``nodes[a]``."""
    hits, scopes, nodes, ends = index.of_kind(kind), index.of_kind(_SCOPES), index.nodes, index.end
    s = bisect.bisect_right(scopes, a)  # nodes[a] itself is walked, whatever it is
    s_end = bisect.bisect_left(scopes, b)
    skip_to = a
    for j in range(bisect.bisect_left(hits, a), bisect.bisect_left(hits, b)):
        h = hits[j]
        while s < s_end and scopes[s] <= h:
            if ends[scopes[s]] > skip_to:
                skip_to = ends[scopes[s]]
            s += 1
        if h < skip_to:  # inside a nested scope
            continue
        yield nodes[h]


def iter_calls(node: cst.CSTNode) -> Iterator[cst.Call]:
    """Every Call below ``node``, not descending into nested scopes."""
    flat = _flat(node)
    if flat is not None:
        yield from _own_hits(*flat, cst.Call)
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
        yield from _own_hits(*flat, kind)
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
        index, a, b = flat
        hits, nodes = index.of_kind(kind), index.nodes
        for j in range(bisect.bisect_left(hits, a), bisect.bisect_left(hits, b)):
            yield nodes[hits[j]]
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
