"""Large files: only the top-level definitions the analysis can need reach LibCST.

LibCST's parser and the tree index cost about ten times what Python's own
``ast`` costs, and a file of a megabyte is mostly code no rule looks at.  So
in a file larger than ``SLICE_BYTES``, each top-level function or class that
is neither about attention or masks itself nor connected to one by name is
replaced by a one-line placeholder, much as statements set aside for their
depth are (``maskfix.limits.Hidden``), and ``Hidden.restore`` puts every
definition back after a rewrite.  The placeholder takes one line, not as many
as the definition (blank lines cost LibCST nearly as much as code): positions
come from Python's own tree of the whole file (``maskfix.positions``), so
reported lines do not move.

A definition is a root when its text speaks of attention, masks, encoders or
decoders, or when it uses anything the module imports (tensor code reaches its
framework through an import; what rules read as evidence, such as a generation
loop or shifted targets, is tensor code).  Connected means: it uses a name a
kept statement defines, or defines a name a kept statement uses, or its name
appears in another source of the same run.  Every other top-level statement
(imports, assignments, script code) is kept.  What is dropped is plain code that
touches neither the file's imports nor anything that does.
"""

from __future__ import annotations

import ast
import re
from typing import Dict, Iterable, List, Set, Tuple

from .limits import Hidden, whole_lines

SLICE_BYTES = 64 * 1024

# What makes a definition a root of the slice; anything these miss but a rule needs is reached
# through the names it shares with a root.
_ROOT = re.compile(r"[Aa]ttention|[Mm]ask|[Cc]ausal|band_part|tril|triu|[Dd]ecoder|[Ee]ncoder|Input|Model")
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
WORD = re.compile(r"[A-Za-z_]\w*")


def names_used(node: ast.AST) -> Set[str]:
    """Names and attribute names ``node`` mentions (attributes too: ``obj.helper`` may be a module function)."""
    out: Set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.add(sub.attr)
    return out


def _names_bound(stmt: ast.stmt) -> Set[str]:
    """Module-level names a kept non-definition statement binds (imports excluded)."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return set()
    out: Set[str] = set()
    for sub in ast.walk(stmt):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            out.add(sub.id)
        elif isinstance(sub, _DEFS):
            out.add(sub.name)
    return out


def drop_unrelated(hidden: Hidden, elsewhere: Set[str] = frozenset()) -> int:
    """Replace the unrelated top-level definitions of ``hidden.source`` by placeholders; how many.

    ``elsewhere`` holds the words of the run's other sources: a definition named there is kept.
    Does nothing when statements were already set aside for their depth.
    """
    tree = hidden.tree
    if tree is None or hidden.originals:
        return 0
    lines = _lines(hidden.source)
    candidates: Dict[int, Tuple[int, int]] = {}
    for i, stmt in enumerate(tree.body):
        if isinstance(stmt, _DEFS) and stmt.name not in elsewhere:
            first, last = whole_lines(stmt, lines)
            if first is not None:
                candidates[i] = (first, last)
    if not candidates:
        return 0
    uses: Dict[int, Set[str]] = {}
    kept: Set[int] = set()
    imported = _imported(tree)
    for i, stmt in enumerate(tree.body):
        if i not in candidates:
            kept.add(i)
        elif (_ROOT.search("".join(lines[candidates[i][0]:candidates[i][1] + 1]))
              or not imported.isdisjoint(_uses(uses, i, lines, candidates, tree))):
            kept.add(i)
    needed: Set[str] = set()  # names kept statements use
    defined: Set[str] = set()  # names kept statements bind
    todo = list(kept)
    while True:
        for i in todo:
            stmt = tree.body[i]
            needed |= _uses(uses, i, lines, candidates, tree)
            defined |= {stmt.name} if isinstance(stmt, _DEFS) else _names_bound(stmt)
        todo = [i for i in candidates if i not in kept
                and (tree.body[i].name in needed or not defined.isdisjoint(_uses(uses, i, lines, candidates, tree)))]
        if not todo:
            break
        kept.update(todo)
    dropped: List[Tuple[int, int]] = []
    for first, last in sorted(candidates[i] for i in candidates if i not in kept):
        # neighbours with only blank lines between them share one placeholder
        if dropped and all(not line.strip() for line in lines[dropped[-1][1] + 1:first]):
            dropped[-1] = (dropped[-1][0], last)
        else:
            dropped.append((first, last))
    if not dropped:
        return 0
    # Python's tree as LibCST will see the sliced text: one ``pass`` per placeholder, at the line
    # where the text it stands for starts, so positions are still read off the whole file.
    body: List[ast.stmt] = []
    starts = {first: last for first, last in dropped}
    skip_to = -1
    for i, stmt in enumerate(tree.body):
        if i in candidates and i not in kept:
            first, last = candidates[i]
            if first in starts:
                body.append(ast.Pass(lineno=first + 1, col_offset=0, end_lineno=first + 1, end_col_offset=4))
                skip_to = starts[first]
            elif first > skip_to:
                raise AssertionError("a dropped definition outside every placeholder")
            continue
        body.append(stmt)
    hidden.tree = ast.Module(body=body, type_ignores=tree.type_ignores)
    token = f"{abs(hash(hidden.source)) % 10**8:08d}"
    for n, (first, last) in enumerate(dropped):
        marker = f"pass  # maskfix: not needed {token}-{n}."
        hidden.originals.append((marker, "".join(lines[first:last + 1]), 1))
        ending = lines[last][len(lines[last].rstrip("\r\n")):]
        lines[first] = marker + ending
        for i in range(first + 1, last + 1):
            lines[i] = ""
    hidden.source = "".join(lines)
    return sum(1 for i in candidates if i not in kept)


def _imported(tree: ast.Module) -> Set[str]:
    """Names the module's imports bind, at any depth of its top-level statements."""
    out: Set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, _DEFS):
            continue
        for sub in ast.walk(stmt):
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                for alias in sub.names:
                    out.add((alias.asname or alias.name).split(".")[0])
    return out - {"*"}


def _uses(cache: Dict[int, Set[str]], i: int, lines: List[str], candidates: Dict[int, Tuple[int, int]],
          tree: ast.Module) -> Set[str]:
    """The words of a definition (a superset of the names it uses: cheaper than walking its tree),
    or the names a kept statement uses."""
    found = cache.get(i)
    if found is None:
        if i in candidates:
            first, last = candidates[i]
            found = set(WORD.findall("".join(lines[first:last + 1])))
        else:
            found = names_used(tree.body[i])
        cache[i] = found
    return found


def _lines(source: str) -> List[str]:
    """``source`` split where Python's tokenizer ends lines (``\\r\\n``, ``\\r``, ``\\n``), ends kept."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", source)


def words(sources: Iterable[str]) -> Set[str]:
    """Every identifier-like word of ``sources``."""
    out: Set[str] = set()
    for text in sources:
        out.update(WORD.findall(text))
    return out


def needs_slicing(source: str) -> bool:
    return len(source) > SLICE_BYTES

