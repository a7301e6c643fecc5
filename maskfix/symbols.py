"""The run's own classes and functions, as each of its sources sees them.

maskfix analyses a set of files together, and a layer or helper defined in one file is often
used in another that imports it (``from layers import Decoder``, ``... as D``, or
``from layers import *``).  ``Symbols`` resolves a name used in a source to the definition of
the run it stands for: the source's own definition first, else the one of another source that
the source imports by that name (or, after a star import, any source's).  An import names its
module, and a source is only taken for it when the module's last name is the source's file
name or one of the folders it lies in (a package may re-export what its modules define):
``from keras_hub.layers import TransformerDecoder`` never stands for a class of the run's
``models/seq2seq.py`` that happens to share the name.  Beyond that, two sources defining one
name are resolved to the first.  Nothing is imported or run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

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
    return _local_names(*import_table(module))


def _local_names(names: Dict[str, Tuple[str, str]], stars: List[str]) -> Dict[str, str]:
    out = {local: name for local, (name, _) in names.items()}
    if stars:
        out[STAR] = STAR
    return out


def import_table(module: cst.Module) -> Tuple[Dict[str, Tuple[str, str]], List[str]]:
    """Top-level ``from ... import``: local name -> (imported name, the module's last name), and
    the last names of the modules imported with ``*``; the last name is "" for ``from . import``."""
    names: Dict[str, Tuple[str, str]] = {}
    stars: List[str] = []
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if not isinstance(small, cst.ImportFrom):
                continue
            tail = _last_name(small.module)
            if isinstance(small.names, cst.ImportStar):
                stars.append(tail)
                continue
            for alias in small.names:
                if not isinstance(alias.name, cst.Name):
                    continue
                local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) \
                    else alias.name.value
                names[local] = (alias.name.value, tail)
    return names, stars


def _last_name(module: Optional[cst.BaseExpression]) -> str:
    if isinstance(module, cst.Attribute):
        return module.attr.value
    return module.value if isinstance(module, cst.Name) else ""


def could_be(tail: str, key: str) -> bool:
    """Whether a module imported by the last name ``tail`` may be the source ``key``, or a package
    holding it: its file name, or a folder on its path; any source for ``from . import``."""
    if not tail:
        return True
    parts = os.path.abspath(key).replace(os.sep, "/").split("/")
    return tail == parts[-1].rsplit(".", 1)[0] or tail in parts[:-1]


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
        self._origins: Dict[str, Dict[str, str]] = {}  # key -> local name -> its module's last name
        self._stars: Dict[str, List[str]] = {}  # key -> last names of the modules it imports with *
        self._classes: Dict[str, Dict[str, Definition]] = {}
        self._functions: Dict[str, Dict[str, Definition]] = {}
        for key, module in sources:
            self.modules[key] = module
            names, stars = import_table(module)
            self.imports[key] = _local_names(names, stars)
            self._origins[key] = {local: tail for local, (_, tail) in names.items()}
            self._stars[key] = stars
            self._classes[key], self._functions[key] = _own(key, module)
        self._visible: Dict[Tuple[str, str], Dict[str, Definition]] = {}

    def _resolve(self, key: str, table: Dict[str, Dict[str, Definition]]) -> Dict[str, Definition]:
        out = dict(table.get(key, {}))
        imports = self.imports.get(key, {})
        if not imports:
            return out
        origins = self._origins[key]
        for other, defs in table.items():
            if other == key:
                continue
            for local, name in imports.items():
                if local != STAR and name in defs and local not in out and could_be(origins[local], other):
                    out[local] = defs[name]
        for tail in self._stars[key]:
            for other, defs in table.items():
                if other != key and could_be(tail, other):
                    for name, d in defs.items():
                        out.setdefault(name, d)
        return out

    def sees(self, key: str, name: str, other: str) -> bool:
        """Whether source ``key`` can use the ``name`` that source ``other`` defines by that name: it
        imports the name from a module that may be ``other``, or imports such a module with ``*``."""
        if key == other:
            return True
        tail = self._origins.get(key, {}).get(name)
        if tail is not None:
            return could_be(tail, other)
        return any(could_be(t, other) for t in self._stars.get(key, ()))

    def names_from(self, key: str, other: str) -> Set[str]:
        """The local names source ``key`` imports from a module that may be ``other``; "*" with them
        when it imports such a module with ``*``."""
        names = {local for local, tail in self._origins.get(key, {}).items() if could_be(tail, other)}
        if any(could_be(t, other) for t in self._stars.get(key, ())):
            names.add(STAR)
        return names

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


__all__ = ["Definition", "Symbols", "could_be", "import_table", "imported_names", "single", "STAR"]
