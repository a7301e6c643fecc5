"""The run's own classes and functions, as each of its sources sees them.

maskfix analyses a set of files together, and a layer or helper defined in one file is often
used in another that imports it (``from layers import Decoder``, ``... as D``, or
``from layers import *``).  ``Symbols`` resolves a name used in a source to the definition of
the run it stands for: the source's own definition first, else the one of another source that
the source imports by that name (or, after a star import, any source's).  Modules are matched
by the imported name only, not by their path: a run is usually one project, and two sources
defining one name are resolved to the first.  Nothing is imported or run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import libcst as cst

from .syntax import iter_nodes

Node = Union[cst.ClassDef, cst.FunctionDef]
STAR = "*"


@dataclass(frozen=True)
class Definition:
    """A class or function of the run, with the source that defines it."""

    key: str
    name: str  # as defined (an importer may call it by another name)
    node: Node


def imported_names(module: cst.Module) -> Dict[str, str]:
    """Top-level ``from ... import`` names: local name -> imported name; ``{"*": "*"}`` after a
    star import."""
    out: Dict[str, str] = {}
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if not isinstance(small, cst.ImportFrom):
                continue
            if isinstance(small.names, cst.ImportStar):
                out[STAR] = STAR
                continue
            for alias in small.names:
                if not isinstance(alias.name, cst.Name):
                    continue
                local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) \
                    else alias.name.value
                out[local] = alias.name.value
    return out


def _own(key: str, module: cst.Module) -> Tuple[Dict[str, Definition], Dict[str, Definition]]:
    classes: Dict[str, Definition] = {}
    for cls in iter_nodes(module, cst.ClassDef):
        classes.setdefault(cls.name.value, Definition(key, cls.name.value, cls))
    functions = {s.name.value: Definition(key, s.name.value, s)
                 for s in module.body if isinstance(s, cst.FunctionDef)}
    return classes, functions


class Symbols:
    """Definitions of the run's sources and who sees which (see the module docstring)."""

    def __init__(self, sources: Iterable[Tuple[str, cst.Module]]):
        self.modules: Dict[str, cst.Module] = {}
        self.imports: Dict[str, Dict[str, str]] = {}
        self._classes: Dict[str, Dict[str, Definition]] = {}
        self._functions: Dict[str, Dict[str, Definition]] = {}
        for key, module in sources:
            self.modules[key] = module
            self.imports[key] = imported_names(module)
            self._classes[key], self._functions[key] = _own(key, module)
        self._visible: Dict[Tuple[str, str], Dict[str, Definition]] = {}

    def _resolve(self, key: str, table: Dict[str, Dict[str, Definition]]) -> Dict[str, Definition]:
        out = dict(table.get(key, {}))
        imports = self.imports.get(key, {})
        if not imports:
            return out
        for other, defs in table.items():
            if other == key:
                continue
            for local, name in imports.items():
                if local != STAR and name in defs and local not in out:
                    out[local] = defs[name]
        if STAR in imports:
            for other, defs in table.items():
                if other != key:
                    for name, d in defs.items():
                        out.setdefault(name, d)
        return out

    def classes(self, key: str) -> Dict[str, Definition]:
        """Classes usable in source ``key`` by their local name: its own, then imported ones."""
        if (key, "c") not in self._visible:
            self._visible[key, "c"] = self._resolve(key, self._classes)
        return self._visible[key, "c"]

    def functions(self, key: str) -> Dict[str, Definition]:
        """Top-level functions usable in source ``key`` by their local name."""
        if (key, "f") not in self._visible:
            self._visible[key, "f"] = self._resolve(key, self._functions)
        return self._visible[key, "f"]

    def users(self, definition: Definition) -> List[Tuple[str, str]]:
        """``(source key, local name)`` for each other source that sees ``definition``."""
        out = []
        for key in self.modules:
            if key == definition.key:
                continue
            for local, d in self.classes(key).items() if isinstance(definition.node, cst.ClassDef) \
                    else self.functions(key).items():
                if d.node is definition.node:
                    out.append((key, local))
        return out

    def imported_classes(self, key: str) -> Sequence[Tuple[str, Definition]]:
        """``(local name, definition)`` of the classes source ``key`` uses from other sources."""
        return [(n, d) for n, d in self.classes(key).items() if d.key != key]


def single(key: str, module: cst.Module) -> Symbols:
    """The symbols of a run of one source."""
    return Symbols([(key, module)])


__all__ = ["Definition", "Symbols", "imported_names", "single", "STAR"]
