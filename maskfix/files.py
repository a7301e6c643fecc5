"""Finding files, decoding them faithfully, and writing them back atomically."""

from __future__ import annotations

import errno
import fnmatch
import io
import operator
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Tuple

from .records import record

SOURCE_SUFFIXES = (".py", ".pyi", ".ipynb")

# Never descended into when walking a directory.
SKIP_DIRS = {
    ".git", ".hg", ".svn", ".bzr", "__pycache__", "node_modules", ".tox", ".nox",
    ".venv", "venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints",
    "build", "dist", ".eggs", "__pypackages__",
}


class FileError(Exception):
    """A file that cannot be handled; the message is the one-line reason."""


def _excluded(path: str, patterns: Sequence[str]) -> bool:
    """``patterns`` as :func:`maskfix.config.exclude_patterns` makes them: a name, or an absolute path glob."""
    absolute = None
    for p in patterns:
        if "/" not in p:
            if fnmatch.fnmatch(os.path.basename(path), p):
                return True
            continue
        if absolute is None:
            absolute = Path(os.path.abspath(path)).as_posix()
        if fnmatch.fnmatch(absolute, p):
            return True
    return False


def discover(paths: Iterable[str], exclude: Sequence[str] = ()) -> Iterator[Tuple[Path, Optional[str]]]:
    """Yield ``(path, error)`` for every source file under ``paths`` (see ``discover_stat``)."""
    for path, problem, _, _ in discover_stat(paths, exclude):
        yield Path(path), problem


Found = Tuple[str, Optional[str], Optional[os.stat_result], Optional[str]]


def discover_stat(paths: Iterable[str], exclude: Sequence[str] = (), stat_files: bool = True) -> Iterator[Found]:
    """Yield ``(path, error, stat, real path)`` for every source file under ``paths``; stat and real
    path are None with an error.  Paths are strings: a tree has thousands, and ``pathlib`` would
    cost more than the walk itself.  Without ``stat_files``, a regular file found in a folder
    comes with no stat: the folder's listing tells its type, and one ``lstat`` per file is spared.

    Directories are walked without following symlinks; a symlinked file is
    used only when its target lies inside one of the given paths.  Files
    named explicitly are always used (like ruff), whatever their suffix.
    """
    roots = [str(Path(p)) for p in paths]  # spelled as pathlib would: "./a/" is "a"
    real_roots = [os.path.realpath(p) for p in roots]
    seen: set = set()

    def inside(real: str) -> bool:
        return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in real_roots)

    for root, real_root in zip(roots, real_roots):
        if not os.path.lexists(root):
            yield root, "no such file or directory", None, None
            continue
        if not os.path.isdir(root):
            try:
                st = os.stat(root)
            except OSError as exc:
                why = _link_problem(exc) if os.path.islink(root) else f"cannot read: {exc.strerror or exc}"
                yield root, why, None, None
                continue
            if not stat.S_ISREG(st.st_mode):
                # Named explicitly or not, a FIFO or device would block or never end when read.
                yield root, "not a regular file", None, None
                continue
            if real_root not in seen:
                seen.add(real_root)
                yield root, None, st, real_root
            continue
        yield from _walk(root, real_root, exclude, inside, seen, stat_files)


_NAME = operator.attrgetter("name")  # a key in C: no Python call per entry of a listing


def _walk(root: str, real_root: str, exclude: Sequence[str], inside, seen: set,
          stat_files: bool = True) -> Iterator[Found]:
    """Depth first, names sorted, each folder's files before its subfolders (as ``os.walk`` goes).

    One ``scandir`` per folder and one ``lstat`` per source file: a folder's real path is its
    parent's joined with its name, since folders reached through a symlink are not entered.
    """
    stack = [(root, real_root, True)]
    while stack:
        here, real_here, top = stack.pop()
        # children spelled as ``Path(here) / name`` would be, without its cost
        prefix = "" if here == "." else here if here.endswith(os.sep) else here + os.sep
        real_prefix = real_here if real_here.endswith(os.sep) else real_here + os.sep
        try:
            with os.scandir(here) as listing:
                entries = sorted(listing, key=_NAME)
        except OSError:
            continue  # as os.walk: a folder that cannot be listed is passed over
        if not top and any(e.name == "pyvenv.cfg" for e in entries):
            continue  # a virtual environment
        folders = []
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()  # follows symlinks, like os.walk's split
            except OSError:
                is_dir = False
            if is_dir:
                if (not entry.is_symlink() and name not in SKIP_DIRS and not name.endswith(".egg-info")
                        and not (exclude and _excluded(prefix + name, exclude))):
                    folders.append(name)
                continue
            if not name.endswith(SOURCE_SUFFIXES):
                continue
            path = prefix + name
            if exclude and _excluded(path, exclude):
                continue
            if not stat_files and entry.is_file(follow_symlinks=False):  # a regular file, by its listing
                real = real_prefix + name
                if real not in seen:
                    seen.add(real)
                    yield path, None, None, real
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone since the folder was listed
            if stat.S_ISLNK(st.st_mode):
                real = os.path.realpath(path)
                if not inside(real):
                    continue  # never follow a link out of the given paths
                try:
                    st = os.stat(path)
                except OSError as exc:
                    yield path, _link_problem(exc), None, None
                    continue
            else:
                real = real_prefix + name
            if not stat.S_ISREG(st.st_mode):
                # A FIFO or device would block or never end when read.
                yield path, "not a regular file", None, None
                continue
            if real in seen:
                continue
            seen.add(real)
            yield path, None, st, real
        for name in reversed(folders):
            stack.append((prefix + name, real_prefix + name, False))


def _link_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if isinstance(exc, FileNotFoundError):
        return "broken symbolic link"
    return f"cannot follow symbolic link: {exc.strerror or exc}"


@record
class SourceFile:
    """A file's text plus what is needed to write it back the same way."""

    path: Path
    raw: bytes
    text: str
    encoding: str

    def encode(self, text: str) -> bytes:
        try:
            return text.encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise FileError(f"the fix cannot be written in the file's encoding ({self.encoding})") from exc


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def read_bytes(path: "str | Path") -> bytes:
    # os.read on a descriptor: a buffered file object costs a third more per file of a tree
    try:
        fd = os.open(path, _READ_FLAGS)
        try:
            size = os.fstat(fd).st_size
            data = os.read(fd, size + 1)
            if 0 < len(data) <= size:
                return data  # all of it: a regular file reads short only at its end
            chunks = [data]
            while chunks[-1]:  # grown since, or a size the file system does not tell
                chunks.append(os.read(fd, 1 << 16))
            return b"".join(chunks)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise FileError("file vanished before it could be read") from None
    except IsADirectoryError:
        raise FileError("is a directory") from None
    except OSError as exc:
        raise FileError(f"cannot read: {exc.strerror or exc}") from None


def check_decodable(path: "str | Path", raw: bytes) -> None:
    """Raise FileError as ``decode_python`` would, without keeping the text.

    Most files are plain ASCII with no coding cookie: those are valid without decoding.
    """
    first = raw.find(b"\n")
    second = raw.find(b"\n", first + 1) if first != -1 else -1
    head = raw if second == -1 else raw[:second]  # a coding cookie counts on the first two lines only
    if raw.isascii() and b"\x00" not in raw and b"coding" not in head:
        return
    decode_python(path, raw)


def decode_python(path: "str | Path", raw: bytes) -> SourceFile:
    """Decode per PEP 263 (BOM, coding cookie, else UTF-8), keeping line endings."""
    if b"\x00" in raw:
        raise FileError("binary content (NUL byte), not Python source")
    import tokenize  # only for files that are decoded: most files of a tree never are

    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError as exc:
        msg = str(exc.msg if hasattr(exc, "msg") else exc)
        if not msg.startswith("invalid or missing encoding declaration"):
            raise FileError(f"bad encoding declaration: {msg}") from None
        encoding = "utf-8"  # no declaration, and not UTF-8 in its first lines: say where
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileError(f"cannot decode as {encoding}: {exc.reason} at byte {exc.start}") from None
    except LookupError as exc:
        raise FileError(f"cannot decode as {encoding}: {exc}") from None
    if encoding == "utf-8-sig" and text.startswith("\ufeff"):
        text = text[1:]
    return SourceFile(path, raw, text, encoding)


def check_writable(path: Path, expected: bytes) -> os.stat_result:
    """Raise FileError unless ``path`` still holds ``expected`` and may be replaced."""
    path = Path(os.path.realpath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileError("file vanished before the fix could be written") from None
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise FileError("file is read-only; not rewritten")
    if read_bytes(path) != expected:
        raise FileError("file changed while maskfix was running; not rewritten")
    if not os.access(os.path.dirname(path) or ".", os.W_OK | os.X_OK):
        raise FileError("its folder is not writable; not rewritten")
    return st


def write_atomic(path: Path, data: bytes, expected: bytes) -> None:
    """Replace ``path`` with ``data`` unless it changed since it was read as ``expected``.

    The new content goes to a temporary file in the same folder, takes the
    old file's permission bits, and is moved over the old one in one step, so
    a crash leaves either the old file or the new one, never a mix.
    """
    path = Path(os.path.realpath(path))  # write through a symlink, never over it
    st = check_writable(path, expected)
    folder = os.path.dirname(os.path.abspath(path))
    import tempfile  # only when a file is written

    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".maskfix")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            try:  # keep the owner too (possible for root, or the group for its members)
                os.chown(tmp, st.st_uid, st.st_gid)
            except OSError:
                pass
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise FileError(f"cannot write: {exc.strerror or exc}") from None
        raise
