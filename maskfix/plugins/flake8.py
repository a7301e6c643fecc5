"""The flake8 plugin: maskfix's ``MF`` codes reported by ``flake8``.

Registered through the ``flake8.extension`` entry point ``MF``.  Each file is
checked on its own, so findings that need other files (a call site in another
module, MF002 there, or a decoder called decoder-only elsewhere) appear only in
``maskfix check``.
"""

from __future__ import annotations

import ast
import sys
from typing import Iterator, List, Tuple

from .. import __version__
from . import analyse_one, first_line


class MaskfixChecker:
    """A flake8 checker running the maskfix engine on one file."""

    name = "maskfix"
    version = __version__

    # flake8 sorts plugins by the parameters they ask for and runs only those
    # asking for ``tree`` once per file; it parses that tree anyway, so asking
    # costs nothing.  maskfix works on the text (``lines``) instead.
    def __init__(self, tree: ast.AST, lines: List[str], filename: str) -> None:
        self.lines = lines
        self.filename = filename

    def run(self) -> Iterator[Tuple[int, int, str, type]]:
        outcome = analyse_one(self.filename, "".join(self.lines))
        if outcome is None:
            return
        if outcome.error:
            # flake8 reports syntax errors itself (E999); anything else is a maskfix bug
            if not outcome.error.startswith("cannot parse"):
                print(f"maskfix: error: {self.filename}: {outcome.error}", file=sys.stderr)
            return
        for f in outcome.findings:
            # flake8 prints the 0-based offset plus one, so columns match `maskfix check`
            yield f.line, f.column - 1, f"{f.code} {first_line(f.message)}", type(self)
