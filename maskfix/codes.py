"""The diagnostic codes maskfix reports, read from the rule modules (``maskfix/rules/``)."""


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


def help_uri(code: str) -> str:
    """Where a reader finds the explanation of ``code``: an anchor in the shipped rules page.

    The page is package data (``maskfix/docs/codes.md``), so the link works offline and from
    any install, editable or not.
    """
    from pathlib import Path

    page = Path(__file__).resolve().parent / "docs" / "codes.md"
    return f"{page.as_uri()}#{code.lower()}"
