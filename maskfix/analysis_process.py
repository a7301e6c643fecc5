"""The analysis in a process of its own, beside the screen's workers.

When a tree is screened by worker processes, the main process feeds them, and the files the
analysis will see are known one by one while they work.  A process forked with the workers,
before any thread starts, imports the engine (LibCST above all) as soon as a worker passes a
file, parses and indexes each such file as it is named (``engine.load``), and finally runs the
analysis on the sources it is given, sending the outcomes back.  The main process keeps its
interpreter to itself, so the workers are never kept waiting for their next chunk; a thread
doing the same work would hold the interpreter lock while LibCST parses.

``run`` gives None when the process is gone (a native crash, say): the caller then analyses in
its own process, as it does when no workers run.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Dict, Optional, Sequence

from . import limits
from .outcome import Outcome

Progress = Callable[[int, int, str], None]


class AnalysisProcess:
    """An analysis process, once ``fork`` has started it; until then (and once it is gone) every
    request is ignored and ``run`` gives None.  Safe to call from several threads."""

    def __init__(self) -> None:
        self._process = None
        self._conn = None
        self._lock = threading.Lock()
        self._given: set = set()

    @property
    def running(self) -> bool:
        return self._conn is not None

    def fork(self, context) -> None:
        """Start the process (``context``: a multiprocessing context; fork before any thread runs)."""
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), name="maskfix-analysis", daemon=True)
        self._process.start()
        child.close()

    def has(self, key: str) -> bool:
        """Whether a source was given for ``key``."""
        return key in self._given

    def start(self) -> None:
        """Import the engine now: a file for the analysis has been found."""
        self._send(("import",))

    def load(self, key: str, source: str) -> None:
        """Parse ``source`` for ``key`` now, ahead of the run (the last text given for a key wins)."""
        if self._send(("load", key, source)):
            self._given.add(key)

    def run(self, sources: Dict[str, str], fix: bool, select: Optional[Sequence[str]],
            progress: Optional[Progress] = None) -> Optional[Dict[str, Outcome]]:
        """``engine.run`` there, from the trees already built; None when the process is not running."""
        conn = self._conn
        if conn is None or not self._send(("run", sources, fix, list(select) if select is not None else None)):
            return None
        try:
            while True:
                message = conn.recv()
                if message[0] == "done":
                    return message[1]
                if progress is not None:
                    progress(*message[1:])
        except (EOFError, OSError):
            self._stop()
            return None

    def close(self) -> None:
        """Stop the process at once: it holds nothing but what it computed (and it also stops by
        itself when this one ends)."""
        self._stop()
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._process = None

    def _stop(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _send(self, message: tuple) -> bool:
        with self._lock:
            if self._conn is None:
                return False
            try:
                self._conn.send(message)
                return True
            except (OSError, ValueError):
                self._conn.close()
                self._conn = None
                return False


def _serve(conn) -> None:
    requests: "queue.SimpleQueue" = queue.SimpleQueue()

    def read() -> None:  # empties the pipe while the engine works, so the sender never waits
        try:
            while True:
                requests.put(conn.recv())
        except (EOFError, OSError):
            requests.put(("stop",))

    threading.Thread(target=read, name="maskfix-requests", daemon=True).start()
    limits.call_with_deep_stack(_answer, conn, requests)


def _answer(conn, requests: "queue.SimpleQueue") -> None:
    loaded: Dict[str, object] = {}
    engine = None
    while True:
        message = requests.get()
        if message[0] == "stop":
            return
        if engine is None:
            from . import engine
        if message[0] == "load":
            try:
                found = engine.load(message[1], message[2])
            except Exception:  # the run meets it again, and reports it
                found = None
            if found is not None:
                loaded[message[1]] = found
        elif message[0] == "run":
            _, sources, fix, select = message
            try:
                outcomes = engine.run(sources, fix=fix, select=select, loaded=loaded,
                                      progress=lambda done, total, key: conn.send(("progress", done, total, key)))
            except Exception:  # the caller runs it again in its own process, which reports it
                outcomes = None
            try:
                conn.send(("done", outcomes))
            except Exception:  # the same again: the caller is told, and analyses itself
                conn.send(("done", None))
