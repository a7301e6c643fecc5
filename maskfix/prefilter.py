"""The byte-level test that decides whether a file is worth parsing.

Every finding needs some words in the file: a decoder stores a
``MultiHeadAttention(...)`` on ``self`` (or, built as a functional model, creates
one next to ``Input``s); a lazy embedding mask is a ``compute_mask`` with an
``if mask is None: return None`` guard in its body; a standalone mask factory
is a function of two parameters that builds its look-ahead mask with a
triangle op and returns three masks on one line (or a name it binds them to on one line).
Notebooks keep their code in JSON strings, where line structure is escaped,
so for them the words alone decide.  tests/test_prefilter.py checks that
every fixture with a finding passes.
"""

import re

DECODER = b"MultiHeadAttention"
LAZY = b"compute_mask"
TRIANGLES = (b"band_part", b"tril(", b"triu(")
NEEDLES = (DECODER, LAZY, *TRIANGLES)

# ``self.x = MultiHeadAttention(...)``, also inside a list or a comprehension
_DECODER = re.compile(rb"self\.\w+\s*(?::[^=\n]+)?=\s*(?:[\[(][^=]{0,200}?)?[\w.]*MultiHeadAttention\s*\(")
# ``def compute_mask(self, inputs, mask...):`` with ``if mask is None: return None`` in its body
# a decoder built as a functional model applies a new MultiHeadAttention next to Inputs
_BUILT = re.compile(rb"MultiHeadAttention\s*\(")
_GUARD = re.compile(
    rb"def\s+compute_mask\s*\(\s*\w+\s*,\s*\w+\s*,\s*(\w+)[^)]*\)[^:\n]*:"
    rb"(?:(?!\n[ \t]*(?:def|class)\s)[\s\S])*?"
    rb"\bif\s+\1\s+is\s+None\s*:\s*(?:#[^\n]*)?(?:\r?\n\s*)?return\s+None\b"
)
# a function of two parameters (after an optional self), with its indented body ...
_TWO_PARAMS = re.compile(
    rb"^(?P<ind>[ \t]*)def\s+\w+\s*\(\s*(?:self\s*,\s*)?[^,()*]+,[^,()*]+\)\s*(?:->[^:\n]+)?:[^\n]*\r?\n"
    rb"(?P<body>(?:(?P=ind)[ \t]+[^\n]*\r?\n|[ \t]*\r?\n)*)",
    re.M,
)
# ... that returns three things on one line, or binds them to the name it returns
_TRIPLE = re.compile(rb"^[ \t]*(?:return\b|\w+\s*=)[^\n]*,[^\n]*,", re.M)


def _factory_like(raw: bytes) -> bool:
    return any(_TRIPLE.search(m.group("body")) for m in _TWO_PARAMS.finditer(raw))


def might_match(raw: bytes, notebook: bool = False) -> bool:
    """False only when no maskfix finding can exist in ``raw``."""
    if DECODER in raw and (_DECODER.search(raw) or (b"Input" in raw and _BUILT.search(raw))):
        return True
    if notebook:
        return any(n in raw for n in NEEDLES)
    if LAZY in raw and _GUARD.search(raw):
        return True
    return any(n in raw for n in TRIANGLES) and _TRIPLE.search(raw) is not None and _factory_like(raw)
