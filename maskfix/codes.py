"""The diagnostic codes maskfix reports, read from the rule modules (``maskfix/rules/``).

``CODES`` (code -> name, summary, explanation) is the one interface the command line,
the SARIF rules and the shipped page ``maskfix/docs/codes.md`` read. Regenerate the
page after changing a rule's text::

    python -m maskfix.codes --write
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Sequence


def _codes() -> dict:
    from .rules import RULES

    return {
        code: {"name": rule.name, "summary": rule.summary, "explanation": rule.explanation}
        for code, rule in RULES.items()
    }


def __getattr__(name: str):
    # Computed on first use: the rule modules import LibCST, which a run over files that
    # cannot match never needs.
    if name == "CODES":
        global CODES
        CODES = _codes()
        return CODES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PAGE = Path(__file__).resolve().parent / "docs" / "codes.md"


def help_uri(code: str) -> str:
    """Where a reader finds the explanation of ``code``: an anchor in the shipped rules page.

    The page is package data (``maskfix/docs/codes.md``), so the link works offline and from
    any install, editable or not.
    """
    return f"{PAGE.as_uri()}#{code.lower()}"


def known_codes() -> List[str]:
    """The codes, in order, from the rule modules' file names (``mf001_*.py``).

    Cheap: checking a ``--select`` needs no rule module, so LibCST stays unimported
    on runs over files that cannot match.
    """
    rules = Path(__file__).resolve().parent / "rules"
    return sorted({p.name[:5].upper() for p in rules.glob("mf[0-9][0-9][0-9]_*.py")})


class UnknownCode(ValueError):
    """A code or prefix that matches no maskfix code."""


def expand(selectors: Sequence[str], where: str) -> List[str]:
    """The codes named by ``selectors`` (codes or prefixes such as ``MF00``, or ``ALL``), in order.

    Raises :class:`UnknownCode` naming ``where`` for a selector that matches nothing.
    """
    known = known_codes()
    out: List[str] = []
    for raw in selectors:
        sel = raw.strip().upper()
        if not sel:
            continue
        hits = list(known) if sel == "ALL" else [c for c in known if c.startswith(sel)]
        if not hits:
            raise UnknownCode(f"unknown code {raw.strip()!r} in {where} (known: {', '.join(known)})")
        out += [c for c in hits if c not in out]
    return out


def _table() -> dict:
    from . import codes  # through the module, so its lazy CODES is computed

    return codes.CODES


def explain(code: str) -> str:
    """The text ``maskfix rules CODE`` prints."""
    info = _table()[code]
    return f"{code} ({info['name']})\n\n{info['summary']}\n\n{info['explanation']}"


def listing() -> str:
    """One line per code: code, name, summary (``maskfix rules``)."""
    table = _table()
    width = max(len(i["name"]) for i in table.values())
    return "".join(f"{c}  {i['name']:<{width}}  {i['summary']}\n" for c, i in table.items())


def codes_page() -> str:
    """The Markdown of ``maskfix/docs/codes.md``."""
    parts = ["# maskfix codes\n\nEach code's explanation. `maskfix rules CODE` prints the same text.\n"]
    for code, info in _table().items():
        parts.append(f"\n## {code}\n\n`{info['name']}`: {info['summary']}\n\n{_fence(info['explanation'])}")
    return "".join(parts)


def _fence(text: str) -> str:
    """Indented code blocks as fenced Python blocks, which render the same everywhere."""
    out: List[str] = []
    block: List[str] = []

    def flush() -> None:
        while block and not block[-1].strip():
            block.pop()
        if block:
            out.append("```python\n" + "".join(line[4:] + "\n" if line.strip() else "\n" for line in block) + "```\n")
            out.append("\n")
        block.clear()

    for line in text.splitlines():
        if line.startswith("    ") or (block and not line.strip()):
            block.append(line)
            continue
        flush()
        out.append(line + "\n")
    flush()
    return "".join(out).rstrip("\n") + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m maskfix.codes [--write]``: print or rewrite the codes page."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--write"]:
        PAGE.write_text(codes_page(), encoding="utf-8")
        return 0
    if argv:
        print("usage: python -m maskfix.codes [--write]", file=sys.stderr)
        return 2
    sys.stdout.write(codes_page())
    return 0


if __name__ == "__main__":
    sys.exit(main())
