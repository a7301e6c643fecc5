"""Rendering diagnostics: text (ruff-style), JSON, SARIF 2.1.0, GitHub annotations.

Notebook findings carry the cell and the line within it, and also ``file_line``, the
line of the ``.ipynb`` file (its JSON text) that holds that source line. SARIF and
GitHub annotations point at ``file_line``, so code scanning shows the notebook's own
text at the right place; the message names the cell, line and column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence
from urllib.parse import quote

from . import __version__
from . import codes
from .codes import help_uri
from .records import record

SRCROOT = "%SRCROOT%"  # SARIF base of relative URIs: the folder maskfix ran in


@record
class Diagnostic:
    path: str
    code: str
    message: str
    line: int
    column: int
    cell: Optional[int] = None  # notebook cell number, when the file is a notebook
    fixable: bool = False
    file_line: Optional[int] = None  # notebooks: the line of the .ipynb file holding `line` of `cell`

    def location(self) -> str:
        if self.cell is not None:
            return f"{self.path}:cell {self.cell}:{self.line}:{self.column}"
        return f"{self.path}:{self.line}:{self.column}"

    def cell_note(self) -> str:
        """`` (cell N, line L, column C)`` for a notebook finding, else empty."""
        if self.cell is None:
            return ""
        return f" (cell {self.cell}, line {self.line}, column {self.column})"


@record
class Failure:
    """A file maskfix could not handle; where known, the place in it."""

    path: str
    reason: str
    line: Optional[int] = None
    column: Optional[int] = None
    cell: Optional[int] = None
    file_line: Optional[int] = None

    def location(self) -> str:
        where = self.path
        if self.cell is not None:
            where += f":cell {self.cell}"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return where


def text(diags: Sequence[Diagnostic]) -> str:
    return "".join(
        f"{d.location()}: {d.code}{' [*]' if d.fixable else ''} {d.message}\n" for d in diags
    )


def _gh_escape(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(s: str) -> str:
    return _gh_escape(s).replace(":", "%3A").replace(",", "%2C")


def github(diags: Sequence[Diagnostic], failures: Sequence[Failure] = ()) -> str:
    out = []
    for d in diags:
        if d.cell is not None:
            where = f"line={d.file_line or 1}"  # a line of the .ipynb file; the cell is in the message
        else:
            where = f"line={d.line},col={d.column}"
        out.append(
            f"::error title=maskfix ({_gh_prop(d.code)}),file={_gh_prop(d.path)},"
            f"{where}::{_gh_escape(d.code + d.cell_note() + ' ' + d.message)}\n"
        )
    for f in failures:
        line = f.file_line if f.cell is not None else f.line
        where = f",line={line}" if line else ""
        note = f" (cell {f.cell}, line {f.line}, column {f.column or 1})" if f.cell is not None and f.line else ""
        out.append(
            f"::error title=maskfix (file not checked),file={_gh_prop(f.path)}{where}::"
            f"{_gh_escape('maskfix could not handle this file' + note + ': ' + f.reason)}\n"
        )
    return "".join(out)


def as_json(diags: Sequence[Diagnostic], fixes: Optional[dict] = None,
            failures: Sequence[Failure] = ()) -> str:
    """One object per finding, then one per file that could not be handled (``code`` null, as ruff).

    ``fixes`` maps a path to its unified diff when known.
    """
    fixes = fixes or {}
    items = []
    for d in diags:
        items.append({
            "code": d.code,
            "message": d.message,
            "filename": d.path,
            "cell": d.cell,
            "location": {"row": d.line, "column": d.column},
            "fix": {"applicability": "safe", "diff": fixes.get(d.path)} if d.fixable else None,
        })
    for f in failures:
        items.append({
            "code": None,
            "message": f.reason,
            "filename": f.path,
            "cell": f.cell,
            "location": {"row": f.line, "column": f.column or 1} if f.line is not None else None,
            "fix": None,
        })
    import json  # the text formats, the usual ones, never need it

    return json.dumps(items, indent=2) + "\n"


def artifact_location(path: str) -> dict:
    """A SARIF artifactLocation: a ``file://`` URI for an absolute path, else a percent-encoded
    URI relative to ``%SRCROOT%``."""
    if os.path.isabs(path):
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(Path(path).as_posix()), "uriBaseId": SRCROOT}


def _physical(path: str, line: Optional[int], column: Optional[int]) -> dict:
    loc: dict = {"artifactLocation": artifact_location(path)}
    if line:
        loc["region"] = {"startLine": line}
        if column:
            loc["region"]["startColumn"] = column
    return loc


def sarif(diags: Sequence[Diagnostic], failures: Sequence[Failure] = ()) -> str:
    rules = [
        {
            "id": code,
            "name": info["name"],
            "shortDescription": {"text": info["summary"]},
            "fullDescription": {"text": info["summary"]},
            "help": {"text": info["explanation"]},
            "helpUri": help_uri(code),
            "defaultConfiguration": {"level": "error"},
        }
        for code, info in codes.CODES.items()
    ]
    index = {code: i for i, code in enumerate(codes.CODES)}
    results = []
    for d in diags:
        if d.cell is not None:
            physical = _physical(d.path, d.file_line or 1, None)
        else:
            physical = _physical(d.path, d.line, d.column)
        result = {
            "ruleId": d.code,
            "ruleIndex": index.get(d.code, 0),
            "level": "error",
            "message": {"text": d.message + d.cell_note()},
            "locations": [{"physicalLocation": physical}],
        }
        if d.cell is not None:
            result["properties"] = {"notebookCell": d.cell, "cellLine": d.line, "cellColumn": d.column}
        results.append(result)
    notifications = []
    for f in failures:
        line, column = (f.file_line, None) if f.cell is not None else (f.line, f.column)
        note = {
            "level": "error",
            "message": {"text": f"{f.location()}: {f.reason}"},
            "locations": [{"physicalLocation": _physical(f.path, line, column)}],
        }
        notifications.append(note)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "maskfix",
                "version": __version__,
                "rules": rules,
            }},
            "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().as_uri().rstrip("/") + "/"}},
            "invocations": [{
                "executionSuccessful": not failures,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    }
    import json

    return json.dumps(doc, indent=2) + "\n"


FORMATS = {"text": text, "json": as_json, "sarif": sarif, "github": github}


def render(fmt: str, diags: List[Diagnostic], fixes: Optional[dict] = None,
           failures: Sequence[Failure] = ()) -> str:
    """``fixes`` (path -> unified diff) is used by the JSON format; ``failures`` by the
    JSON, SARIF and GitHub formats (text reports them on stderr only)."""
    if fmt == "json":
        return as_json(diags, fixes, failures)
    if fmt == "sarif":
        return sarif(diags, failures)
    if fmt == "github":
        return github(diags, failures)
    return text(diags)
