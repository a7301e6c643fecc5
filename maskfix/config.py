"""``[tool.maskfix]`` in the nearest pyproject.toml, found from the paths like ruff does.

A mistake in the table is an error, never ignored: invalid TOML, an unknown key
(with the close match suggested), a value of the wrong type, an unknown code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence

from .codes import UnknownCode, expand
from .records import Factory, record

# key -> what it holds; every value is a list of strings
KEYS = {
    "exclude": "glob patterns of paths to skip",
    "extend-exclude": "glob patterns of paths to skip, in addition",
    "select": "codes or prefixes to report",
    "ignore": "codes or prefixes not to report",
}


class ConfigError(Exception):
    """One line: where the mistake is and what it is."""


@record(frozen=True)
class Config:
    """The settings of one ``[tool.maskfix]`` table (empty when there is none)."""

    path: Optional[Path] = None  # the pyproject.toml read
    exclude: Optional[List[str]] = None  # None: not set
    extend_exclude: List[str] = Factory(list)
    select: Optional[List[str]] = None
    ignore: List[str] = Factory(list)

    @property
    def root(self) -> Path:
        """The folder relative exclude patterns of the table are anchored to."""
        return self.path.parent if self.path is not None else Path.cwd()


def load_config(paths: Sequence[str], stdin_filename: Optional[str] = None) -> Config:
    """The ``[tool.maskfix]`` table governing the first path (or the working folder).

    Standard input is governed by ``stdin_filename``'s folder when given. Raises
    :class:`ConfigError` for a table maskfix cannot use.
    """
    first = next((p for p in paths if p != "-"), None) if paths and paths[0] != "-" else None
    if first is None:
        first = stdin_filename if stdin_filename else None
    start = Path(first) if first else Path.cwd()
    return _find(Path(os.path.abspath(start)))


def _find(start: Path) -> Config:
    here = start if start.is_dir() else start.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            config = _read(candidate)
            if config is not None:
                return config
    return Config()


def _toml_module():
    try:  # Python 3.11+
        import tomllib
        return tomllib
    except ImportError:  # pragma: no cover - older Pythons get tomli as a dependency
        try:
            import tomli
            return tomli
        except ImportError:
            return None


def _read(path: Path) -> Optional[Config]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"maskfix" not in raw:  # no table of ours: not worth a TOML parser's import on every run
        return None
    toml = _toml_module()
    if toml is None:
        if b"tool.maskfix" in raw:
            raise ConfigError(f"{path}: cannot read [tool.maskfix]: install tomli (needed before Python 3.11)")
        return None
    try:
        data = toml.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 encoded (byte {exc.start})") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    tool = data.get("tool", {})
    if not isinstance(tool, dict) or "maskfix" not in tool:
        return None
    table = tool["maskfix"]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: tool.maskfix must be a table, not {_kind(table)}")
    for key in table:
        if key not in KEYS:
            import difflib  # only to suggest a fix for a mistake

            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(KEYS))})"
            raise ConfigError(f"{path}: unknown key {key!r} in [tool.maskfix]{hint}")
    values = {}
    for key, value in table.items():
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(
                f"{path}: [tool.maskfix] {key} must be a list of strings ({KEYS[key]}), not {_kind(value)}"
                + (f"; write {key} = [{value!r}]".replace("'", '"') if isinstance(value, str) else "")
            )
        values[key] = value
    for key in ("select", "ignore"):
        if key in values:
            try:
                values[key] = expand(values[key], f"[tool.maskfix] {key}")
            except UnknownCode as exc:
                raise ConfigError(f"{path}: {exc}") from None
    return Config(
        path=path,
        exclude=values.get("exclude"),
        extend_exclude=values.get("extend-exclude", []),
        select=values.get("select"),
        ignore=values.get("ignore", []),
    )


def _kind(value: object) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
             dict: "a table", list: "a list with non-string items"}
    return names.get(type(value), type(value).__name__)


def exclude_patterns(patterns: Sequence[str], base: Path) -> List[str]:
    """Patterns as :func:`maskfix.files.discover` matches them, the way ruff reads excludes.

    A pattern without a slash (``build``, ``*_pb2.py``) matches a file or folder name
    anywhere. One with a slash is a path relative to ``base`` (the folder of the
    pyproject.toml, or the working folder on the command line) unless it is
    absolute. ``./`` in front and a trailing slash are dropped, so ``third_party/``,
    ``./third_party`` and ``/abs/path/third_party`` name the same folder.
    """
    out = []
    for raw in patterns:
        p = raw.strip().replace(os.sep, "/")
        anchored = "/" in p
        while p.startswith("./"):
            p = p[2:]
        if len(p) > 1:
            p = p.rstrip("/")
        if not p or p == ".":
            continue
        if anchored and not os.path.isabs(p):
            p = Path(os.path.normpath(os.path.join(base, p))).as_posix()
        out.append(p)
    return out
