"""Screen verdicts kept between runs, so a re-run reads only what changed.

Most files of a tree cannot hold a finding, and the screen that says so
(reading, the byte prefilter, sometimes ``ast``) is most of a run's cost.  The
cache in ``.maskfix_cache/`` remembers, per maskfix version (and the state of its own
source files, so that an edited or reinstalled checkout never reads old verdicts) and settings:

- for each file path: its ``stat`` signature (size, mtime, ctime, inode) and
  its verdict (the file cannot hold a finding, or it must reach the engine);
- for each file that took the ``ast`` screen, the costly part: the BLAKE2
  digest of its bytes and the verdict for them;
- the digests of the last engine runs that found nothing at all: the engine
  is a function of its sources, so the same sources need no LibCST again.

A file whose signature is unchanged is not read again.  Any write to a file
changes its ctime, which no user can set back, so a changed file is never
trusted; a file changed less than ``RACY_SECONDS`` before it was screened is not
recorded at all, since a second write within the same clock tick could keep the
signature.  A file whose signature changed but whose bytes did not (a checkout, a
copy, ``touch``) is read and hashed, never parsed again.  A file that may hold
a finding is always read and analysed (or answered by a clean engine run of the
same sources); the cache spares it only the screen.  The cache is written atomically (a temporary file, then a rename), so
concurrent runs never see half a cache; a damaged or unreadable cache counts as
empty, and a cache that cannot be written is skipped silently.
"""

from __future__ import annotations

import marshal
import os
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

from . import __version__

DIR_NAME = ".maskfix_cache"
RACY_SECONDS = 2.0
FORMAT = 2
MAX_CLEAN = 64  # clean engine runs remembered

Signature = Tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def digest(raw: bytes) -> bytes:
    return _blake2b(raw, digest_size=16).digest()


def _blake2b(data: bytes, digest_size: int):
    # hashlib loads OpenSSL's library (about 4 ms of a warm run): CPython's own BLAKE2 is enough
    try:
        from _blake2 import blake2b
    except ImportError:
        from hashlib import blake2b

    return blake2b(data, digest_size=digest_size)


def code_stamp() -> str:
    """What identifies the running maskfix beyond its version: the size and mtime of each of
    its own modules (a few dozen ``stat`` calls)."""
    root = os.path.dirname(os.path.abspath(__file__))
    parts = []
    for folder in (root, os.path.join(root, "flow"), os.path.join(root, "rules")):
        try:
            with os.scandir(folder) as entries:
                for e in entries:
                    if e.name.endswith(".py"):
                        st = e.stat()
                        parts.append(f"{e.path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            continue
    return _blake2b("|".join(sorted(parts)).encode(), digest_size=8).hexdigest()


def default_dir(root: Path) -> Path:
    """``MASKFIX_CACHE_DIR``, else ``.maskfix_cache`` in ``root`` (the project's folder)."""
    env = os.environ.get("MASKFIX_CACHE_DIR")
    return Path(env) if env else root / DIR_NAME


class ScreenCache:
    """Verdicts of earlier runs under one settings key; ``save`` writes what this run learned.

    ``paths`` maps a path to (signature, verdict, digest or None); ``verdicts`` maps the digest
    of a file that took the ``ast`` screen to its verdict.  Files the byte prefilter rejects
    are not hashed: hashing costs as much as that prefilter, which simply runs again.
    """

    def __init__(self, folder: Path, settings: str):
        self.folder = folder
        key = f"{__version__}|{code_stamp()}|{settings}"
        self.file = folder / f"screen-{_blake2b(key.encode(), digest_size=8).hexdigest()}"
        self.paths: Dict[str, Tuple[Signature, str, Optional[bytes]]] = {}
        self.verdicts: Dict[bytes, str] = {}
        self.clean: Dict[bytes, bool] = {}  # digests of whole engine inputs that gave nothing at all
        self.changed = False
        self.started = time.time()
        try:
            with open(self.file, "rb") as fh:
                data = marshal.loads(fh.read())
            if isinstance(data, dict) and data.get("format") == FORMAT:
                paths, verdicts, clean = data["paths"], data["verdicts"], data["clean"]
                if isinstance(paths, dict) and isinstance(verdicts, dict) and isinstance(clean, dict):
                    self.paths, self.verdicts, self.clean = paths, verdicts, clean
        except Exception:  # missing, unreadable or damaged: start afresh
            pass

    def known(self, path: str, sig: Signature) -> Optional[str]:
        """The verdict for ``path`` when its signature is the one recorded."""
        entry = self.paths.get(path)
        if entry is None or entry[0] != sig or not isinstance(entry[1], str):
            return None
        return entry[1]

    def store(self, path: str, sig: Signature, verdict: str, key: Optional[bytes]) -> None:
        """Record a verdict; ``key``, the digest of the bytes, when the ``ast`` screen gave it."""
        # changed too recently: a second write in the same clock tick could keep this signature
        if max(sig[1], sig[2]) / 1e9 > self.started - RACY_SECONDS:
            return
        old = self.paths.get(path)
        if key is None and old is not None and old[0] == sig and old[1] == verdict:
            return  # known from its signature: the digest recorded with it still holds
        if key is not None and self.verdicts.get(key) != verdict:
            self.verdicts[key] = verdict
            self.changed = True
        if self.paths.get(path) != (sig, verdict, key):
            self.paths[path] = (sig, verdict, key)
            self.changed = True

    def mark_clean(self, key: bytes) -> None:
        """The engine found nothing at all in the sources whose digest is ``key``."""
        if key not in self.clean:
            if len(self.clean) >= MAX_CLEAN:  # the oldest go first
                del self.clean[next(iter(self.clean))]
            self.clean[key] = True
            self.changed = True

    def save(self) -> None:
        """Write the cache atomically; a folder that cannot be written is left alone."""
        if not self.changed:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            ignore = self.folder / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# Created by maskfix automatically.\n*\n")
            data = marshal.dumps({"format": FORMAT, "paths": self.paths, "verdicts": self.verdicts,
                                  "clean": self.clean})
            import tempfile  # only when something was learned: a warm run writes nothing

            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".screen-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, self.file)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass
