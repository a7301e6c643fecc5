"""The byte-level test that decides whether a file is worth parsing.

Every finding needs some words in the file: a decoder stores a
``MultiHeadAttention(...)`` on ``self`` (or, built as a functional model, creates
one next to ``Input``s); a lazy embedding mask is a ``compute_mask`` with an
``if mask is None: return None`` guard in its body; a standalone mask factory
is a function of two parameters that builds its look-ahead mask with a
triangle op (in its own body, or in a function of the file it calls by name,
at any remove) and returns three masks (or a name it binds them to): the returned
tuple is read over the lines its brackets join, and its commas are counted
outside brackets, so a function that merely calls something with three
arguments does not pass; keras_hub's (or keras_nlp's) ``TransformerDecoder``
given an ``encoder_padding_mask=`` or ``encoder_attention_mask=``.
Notebooks keep their code in JSON strings, where line structure is escaped,
so for them the words alone decide.  tests/test_prefilter.py checks that
every fixture with a finding passes.  A file that fails is still analysed when
it is named by a file that passes (``Imports``: it defines a class that file
imports, as a decoder layer over the project's own attention class may hold a
finding and none of these words); the CLI adds such files to the analysis.
"""

import os
import re
from typing import Tuple

DECODER = b"MultiHeadAttention"
LAZY = b"compute_mask"
TRIANGLES = (b"band_part", b"tril(", b"triu(")
HUB_DECODER = b"TransformerDecoder"
HUB_PACKAGES = (b"keras_hub", b"keras_nlp")
HUB_MASKS = (b"encoder_padding_mask", b"encoder_attention_mask")
NEEDLES = (DECODER, LAZY, *TRIANGLES)
_TRI = re.compile(rb"tri[lu]\(")  # one scan for two needles: bytes.find would scan twice

# ``self.x = MultiHeadAttention(...)``, also inside a list, a dict or a comprehension
_DECODER = re.compile(rb"self\.\w+\s*(?::[^=\n]+)?=\s*(?:[\[({][^=]{0,200}?)?[\w.]*MultiHeadAttention\s*\(")
# ``def compute_mask(self, inputs, mask...):`` with ``if mask is None: return None`` in its body
# a decoder built as a functional model applies a new MultiHeadAttention next to Inputs
_BUILT = re.compile(rb"MultiHeadAttention\s*\(")
_GUARD = re.compile(
    rb"def\s+compute_mask\s*\(\s*\w+\s*,\s*\w+\s*,\s*(\w+)[^)]*\)[^:\n]*:"
    rb"(?:(?!\n[ \t]*(?:def|class)\s)[\s\S])*?"
    rb"\bif\s+\1\s+is\s+None\s*:\s*(?:#[^\n]*)?(?:\r?\n\s*)?return\s+None\b"
)
# a function of two parameters (besides a first self or cls), with its indented body ...
_TWO_PARAMS = re.compile(
    rb"^(?P<ind>[ \t]*)def\s+\w+\s*\(\s*(?:(?:self|cls)\s*,\s*)?(?!(?:self|cls)\s*,)[^,()*]+,[^,()*]+\)"
    rb"\s*(?:->[^:\n]+)?:[^\n]*\r?\n"
    rb"(?P<body>(?:(?P=ind)[ \t]+[^\n]*\r?\n|[ \t]*\r?\n)*)",
    re.M,
)
# any function, with its indented body (a signature over several lines counts as body)
_DEF = re.compile(rb"^(?P<ind>[ \t]*)def\s+(?P<name>\w+)\s*\([^\n]*\n(?P<body>(?:(?P=ind)[ \t]+[^\n]*\r?\n|[ \t]*\r?\n)*)",
                  re.M)
_TRIANGLE = re.compile(rb"band_part|tri[lu]\(")
# ... that returns three things (a tuple, or a name it binds one to)
_RETURN = re.compile(rb"^[ \t]*return\b[ \t]*(?=\S)", re.M)
_STRING = re.compile(rb"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_OPEN, _CLOSE = frozenset(b"([{"), frozenset(b")]}")


def _logical_line(raw: bytes, start: int, limit: int = 40) -> bytes:
    """The statement that starts at ``start``, over the lines its brackets (or a backslash) join,
    with string literals blanked and comments dropped."""
    out, depth = [], 0
    for _ in range(limit):
        end = raw.find(b"\n", start)
        end = len(raw) if end == -1 else end
        line = raw[start:end]
        if b"'" in line or b'"' in line:
            line = _STRING.sub(b"''", line)
        line = line.split(b"#", 1)[0].rstrip()
        out.append(line)
        depth += sum(line.count(c) for c in b"([{") - sum(line.count(c) for c in b")]}")
        if (depth <= 0 and not line.endswith(b"\\")) or end == len(raw):
            break
        start = end + 1
    return b" ".join(out)


def _three_items(expr: bytes) -> bool:
    """Whether ``expr`` can be a tuple of three or more items: two commas outside brackets (an
    outer pair of parentheses is looked through; depth never drops below zero, so a stray closing
    bracket can only add commas)."""
    if expr.count(b",") < 2:
        return False
    expr = expr.strip()
    if expr[:1] == b"(" and expr[-1:] == b")":
        expr = expr[1:-1]
    depth = commas = 0
    for c in expr:
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(depth - 1, 0)
        elif c == 44 and depth == 0:  # ','
            commas += 1
    return commas >= 2


def _returns_triple(body: bytes) -> bool:
    for r in _RETURN.finditer(body):
        value = _logical_line(body, r.end())
        if _three_items(value):
            return True
        name = re.fullmatch(rb"\(?\s*(\w+)\s*\)?", value.strip())
        if name:  # a name bound to three things
            binding = re.compile(rb"^[ \t]*" + name.group(1) + rb"\s*(?::[^=\n]+)?=(?!=)", re.M)
            if any(_three_items(_logical_line(body, a.end())) for a in binding.finditer(body)):
                return True
    return False


def _factory_like(raw: bytes) -> bool:
    """A function of two parameters returning three masks, with a triangle op in its body or in a
    function it calls (by name, at any remove)."""
    calls_helper = None
    for m in _TWO_PARAMS.finditer(raw):
        body = m.group("body")
        if not _returns_triple(body):
            continue
        if _TRIANGLE.search(body):
            return True
        if calls_helper is None:
            calls_helper = _calls_of(_triangle_functions(raw))
        if calls_helper is not None and calls_helper.search(body):
            return True
    return False


def _triangle_functions(raw: bytes) -> set:
    """Names of the functions that hold a triangle op or call one that does."""
    bodies = [(m.group("name"), m.group("body")) for m in _DEF.finditer(raw)]
    found = {name for name, body in bodies if _TRIANGLE.search(body)}
    while True:
        calls = _calls_of(found)
        new = {name for name, body in bodies if name not in found and calls is not None and calls.search(body)}
        if not new:
            return found
        found |= new


def _calls_of(names: set):
    """A pattern finding a call of one of ``names`` (``f(`` or ``self.f(``); None for no names."""
    if not names:
        return None
    return re.compile(rb"\b(?:" + b"|".join(map(re.escape, sorted(names))) + rb")\s*\(")


def might_match(raw: bytes, notebook: bool = False) -> bool:
    """False only when no maskfix finding can exist in ``raw``."""
    if DECODER in raw and (_DECODER.search(raw) or (b"Input" in raw and _BUILT.search(raw))):
        return True
    if HUB_DECODER in raw and any(p in raw for p in HUB_PACKAGES) and any(m in raw for m in HUB_MASKS):
        return True
    if notebook:
        return any(n in raw for n in NEEDLES)
    if LAZY in raw and _GUARD.search(raw):
        return True
    return (TRIANGLES[0] in raw or _TRI.search(raw) is not None) and _factory_like(raw)


# ``from x import A, B as C`` / ``from x import (A, B)`` / ``from x import *``
_FROM_IMPORT = re.compile(rb"^[ \t]*from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)", re.M)
_CLASS = re.compile(rb"class[ \t]+(\w+)")  # a literal first: scanned for fast


class Imports:
    """What the files that can match import from elsewhere: a file defining one of those classes
    (or a module they import with ``*``) may hold a finding, in a decoder layer used there.

    Python finds ``from pkg.layers import Block`` in ``pkg/layers.py`` or ``pkg/layers/__init__.py``,
    which may re-export it from a module of ``pkg/layers/``, so a file is a candidate by its name
    or its folder's alone, before anything is read: a tree's thousands of other files are never
    read for this.
    """

    def __init__(self) -> None:
        self.names: dict = {}  # class name as spelled where it is defined -> modules it comes from
        self.star_modules: set = set()  # modules imported with ``*``
        self.modules: set = set()  # every module named (``module_name``): the only files worth reading
        self._folder: Tuple[str, bool] = ("", False)  # the last folder asked about: is it a module named?

    def add(self, raw: bytes) -> None:
        self._folder = ("", False)
        for m in _FROM_IMPORT.finditer(raw):
            module = m.group(1).rsplit(b".", 1)[-1].decode("ascii", "replace")  # its last component
            for part in m.group(2).strip(b"()").replace(b"\\", b" ").split(b","):
                words = part.split()
                if words == [b"*"]:
                    self.star_modules.add(module)
                    self.modules.add(module)
                elif words:
                    self.names.setdefault(words[0], set()).add(module)
                    self.modules.add(module)

    def __bool__(self) -> bool:
        return bool(self.modules)

    def may_define(self, path: str) -> bool:
        """Whether Python could import the file at ``path`` as one of the modules named, or as a
        module of such a package, by its path alone (it is asked of every file of a tree)."""
        if os.altsep is not None:
            path = path.replace(os.altsep, os.sep)
        folder, _, name = path.rpartition(os.sep)
        stem, _, suffix = name.rpartition(".")
        if suffix in ("py", "pyi") and stem in self.modules:
            return True
        if folder != self._folder[0]:  # a tree's files come folder by folder
            self._folder = (folder, folder.rpartition(os.sep)[2] in self.modules)
        return self._folder[1] and suffix in ("py", "pyi")

    def wants(self, raw: bytes, path: str) -> bool:
        """Whether the file ``raw`` at ``path`` defines what they import from it (or from its package)."""
        modules = {module_name(path), os.path.basename(os.path.dirname(path))}
        if modules & self.star_modules:
            return True
        return any(modules & self.names.get(name, set()) for name in class_names(raw))


def class_names(raw: bytes) -> list:
    """The names of the classes ``raw`` defines, at any depth (found from the word ``class``: a
    pattern starting at each line's indentation would be tried at every byte)."""
    names = []
    for m in _CLASS.finditer(raw):
        start = raw.rfind(b"\n", 0, m.start()) + 1
        if not raw[start:m.start()].strip(b" \t"):
            names.append(m.group(1))
    return names


def module_name(path: str) -> str:
    """The last component of the dotted name a file is imported by: its stem, or its package's name."""
    folder, name = os.path.split(path)
    stem = name.rsplit(".", 1)[0]
    return os.path.basename(folder) if stem == "__init__" else stem
