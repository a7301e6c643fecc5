"""Rendering diagnostics: text (ruff-style), JSON, SARIF 2.1.0, GitHub annotations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import List, Optional, Sequence

from . import __version__
from . import codes


@dataclass
class Diagnostic:
    path: str
    code: str
    message: str
    line: int
    column: int
    cell: Optional[int] = None  # notebook cell number, when the file is a notebook
    fixable: bool = False

    def location(self) -> str:
        if self.cell is not None:
            return f"{self.path}:cell {self.cell}:{self.line}:{self.column}"
        return f"{self.path}:{self.line}:{self.column}"


def text(diags: Sequence[Diagnostic]) -> str:
    return "".join(
        f"{d.location()}: {d.code}{' [*]' if d.fixable else ''} {d.message}\n" for d in diags
    )


def github(diags: Sequence[Diagnostic]) -> str:
    def esc(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def esc_prop(s: str) -> str:
        return esc(s).replace(":", "%3A").replace(",", "%2C")

    out = []
    for d in diags:
        where = f" (cell {d.cell})" if d.cell is not None else ""
        out.append(
            f"::error title=maskfix ({esc_prop(d.code)}),file={esc_prop(d.path)},"
            f"line={d.line},col={d.column}::{esc(d.code + where + ' ' + d.message)}\n"
        )
    return "".join(out)


def as_json(diags: Sequence[Diagnostic], fixes: Optional[dict] = None) -> str:
    """One object per finding; ``fixes`` maps a path to its unified diff when known."""
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
    return json.dumps(items, indent=2) + "\n"


def sarif(diags: Sequence[Diagnostic]) -> str:
    rules = [
        {
            "id": code,
            "name": info["name"],
            "shortDescription": {"text": info["summary"]},
            "defaultConfiguration": {"level": "error"},
        }
        for code, info in codes.CODES.items()
    ]
    index = {code: i for i, code in enumerate(codes.CODES)}
    results = []
    for d in diags:
        region = {"startLine": d.line, "startColumn": d.column}
        result = {
            "ruleId": d.code,
            "ruleIndex": index.get(d.code, 0),
            "level": "error",
            "message": {"text": d.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": d.path.replace("\\", "/")},
                    "region": region,
                }
            }],
        }
        if d.cell is not None:
            result["properties"] = {"notebookCell": d.cell}
        results.append(result)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "maskfix",
                "version": __version__,
                "rules": rules,
            }},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


FORMATS = {"text": text, "json": as_json, "sarif": sarif, "github": github}


def render(fmt: str, diags: List[Diagnostic], fixes: Optional[dict] = None) -> str:
    """``fixes`` (path -> unified diff) is used by the JSON format."""
    if fmt == "json":
        return as_json(diags, fixes)
    return FORMATS[fmt](diags)
