"""``# noqa`` comments: which codes a line suppresses."""

from __future__ import annotations

import re

SUPPRESS = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)


def suppressed(line_text: str, code: str) -> bool:
    """``# noqa`` or ``# noqa: MF001`` on the line."""
    m = SUPPRESS.search(line_text)
    if not m:
        return False
    codes = m.group("codes")
    if not codes:
        return True
    return code.upper() in {c.upper() for c in re.split(r"[,\s]+", codes) if c}
