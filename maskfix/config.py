"""``[tool.maskfix]`` in the nearest pyproject.toml, found from the paths like ruff does."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

try:  # Python 3.11+
    import tomllib as _toml
except ImportError:  # pragma: no cover - older Pythons
    try:
        import tomli as _toml
    except ImportError:
        _toml = None

KEYS = {"exclude", "extend-exclude", "select"}


class ConfigError(Exception):
    pass


def load_config(paths: Sequence[str]) -> dict:
    """The ``[tool.maskfix]`` table governing the first path (or the working folder)."""
    start = Path(paths[0]) if paths and paths[0] != "-" else Path.cwd()
    return dict(_find(Path(os.path.abspath(start))))


@lru_cache(maxsize=None)
def _find(start: Path) -> tuple:
    here = start if start.is_dir() else start.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            table = _read(candidate)
            if table is not None:
                return tuple(table.items())
    return ()


def _read(path: Path):
    if _toml is None:
        return None
    try:
        with open(path, "rb") as fh:
            data = _toml.load(fh)
    except (OSError, ValueError):
        return None
    table = data.get("tool", {}).get("maskfix")
    if not isinstance(table, dict):
        return None
    return {k: v for k, v in table.items() if k in KEYS}
