"""maskfix inside other tools: the flake8 plugin and the language server.

Both see one source at a time and go through :func:`analyse_one`, the same
screens and engine as ``maskfix check``, so a finding can only differ where
``check`` looks at other files.
"""

from __future__ import annotations


from ..prefilter import might_match
from ..screen import worth_parsing


def analyse_one(key: str, source: str, fix: bool = False, notebook: bool = False):
    """The engine's ``Outcome`` for one source, or ``None`` when it cannot hold a finding.

    The byte prefilter and the ``ast`` screen run first, so a source that fails
    them never imports LibCST.  ``notebook`` means ``source`` is the joined code
    of a notebook (``maskfix.notebook.Notebook.source``).
    """
    if not might_match(source.encode("utf-8", "surrogatepass"), notebook=notebook):
        return None
    if not worth_parsing(source):
        return None
    from .. import engine

    return engine.run({key: source}, fix=fix)[key]


def first_line(message: str) -> str:
    """A message on one line, as flake8 and editors show it."""
    return " ".join(message.split())
