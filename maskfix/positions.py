"""Source positions of the few nodes a report needs, without resolving the whole module.

LibCST's ``PositionProvider`` generates the code of the entire module while
recording every node's position; on a large file with a decoder that was most
of the run (21 s of 34 s for 860 KB).  maskfix reports a handful of nodes, so
``LazyPositions`` resolves positions only inside the top-level statements
that hold them: each such statement is laid out alone, in a module of its
own with the same indentation and newline settings, and shifted by the line
where Python's ``ast`` says it starts.  Top-level statements start at column
0, so columns need no shift.  When the two trees cannot be matched, it falls
back to resolving the whole module once.
"""

from __future__ import annotations

import ast
import bisect
from typing import Dict, List, Mapping, Optional

import libcst as cst
from libcst.metadata import CodeRange, CodePosition, MetadataWrapper, PositionProvider

from .syntax import span


class LazyPositions:
    """``positions[node]`` gives the node's ``CodeRange``, like PositionProvider's mapping."""

    def __init__(self, module: cst.Module, tree: Optional[ast.Module]):
        self.module = module
        self._full: Optional[Mapping[cst.CSTNode, CodeRange]] = None
        self._done: Dict[int, Mapping[cst.CSTNode, CodeRange]] = {}  # statement index -> positions
        self._anchor_lines = _anchor_lines(module, tree)
        self._starts: List[int] = []
        if self._anchor_lines is not None:
            for stmt in module.body:
                where = span(stmt)
                if where is None:  # the tree was not indexed: no cheap way to find a node's statement
                    self._anchor_lines = None
                    break
                self._starts.append(where[0])

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        index = self._statement_of(node)
        if index is None:
            return self._whole()[node]
        found = self._done.get(index)
        if found is None:
            found = self._done[index] = self._lay_out(index)
        return found[node]

    def _statement_of(self, node: cst.CSTNode) -> Optional[int]:
        if self._anchor_lines is None:
            return None
        where = span(node)
        if where is None:
            return None
        i = bisect.bisect_right(self._starts, where[0]) - 1
        if i < 0:
            return None  # the module itself or its header
        stmt_span = span(self.module.body[i])
        if stmt_span is None or not stmt_span[0] <= where[0] < stmt_span[1]:
            return None
        return i

    def _lay_out(self, index: int) -> Mapping[cst.CSTNode, CodeRange]:
        stmt = self.module.body[index]
        alone = self.module.with_changes(body=[stmt], header=[], footer=[])
        local = resolve_positions(alone)
        shift = self._anchor_lines[index] - local[_anchor(stmt)].start.line
        return _Shifted(local, shift)

    def _whole(self) -> Mapping[cst.CSTNode, CodeRange]:
        if self._full is None:
            self._full = resolve_positions(self.module)
        return self._full


def resolve_positions(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    """``PositionProvider``'s positions of every node of ``module``, the nodes themselves as keys."""
    return _Wrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)


class _Wrapper(MetadataWrapper):
    """LibCST's resolver ends with a batched visit for the batchable providers asked for, even
    when there are none (``PositionProvider`` is not one): that visit rebuilds every node of the
    module for nothing, about half the cost of laying a statement out."""

    def visit_batched(self, visitors, before_visit=None, after_leave=None):
        visitors = list(visitors)
        if not visitors and before_visit is None and after_leave is None:
            return self.module
        return super().visit_batched(visitors, before_visit, after_leave)


class _Shifted:
    def __init__(self, local: Mapping[cst.CSTNode, CodeRange], lines: int):
        self.local = local
        self.lines = lines

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        r = self.local[node]
        if not self.lines:
            return r
        return CodeRange(CodePosition(r.start.line + self.lines, r.start.column),
                         CodePosition(r.end.line + self.lines, r.end.column))


def _anchor(stmt: cst.CSTNode) -> cst.CSTNode:
    """The node whose first line ``ast`` also gives: the first small statement, the first decorator, or the keyword."""
    if isinstance(stmt, cst.SimpleStatementLine):
        return stmt.body[0]
    decorators = getattr(stmt, "decorators", ())
    return decorators[0] if decorators else stmt


def _anchor_lines(module: cst.Module, tree: Optional[ast.Module]) -> Optional[List[int]]:
    """The line of each top-level statement's anchor, from ``ast``; None when the trees do not match."""
    if tree is None:
        return None
    out = []
    at = 0
    for stmt in module.body:
        if at >= len(tree.body):
            return None
        node = tree.body[at]
        # a statement set aside for its depth (maskfix.limits) is a one-line placeholder on its first line
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", None) or []])
        if isinstance(stmt, cst.SimpleStatementLine):
            if not stmt.body:
                return None
            at += len(stmt.body)
        else:
            if bool(getattr(node, "decorator_list", None)) != bool(getattr(stmt, "decorators", ())):
                return None
            at += 1
        out.append(first)
    return out if at == len(tree.body) else None
