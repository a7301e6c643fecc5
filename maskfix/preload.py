"""Parsing ahead: while worker processes screen a tree, the sources the analysis will be given are
parsed and indexed (``engine.load``) on a thread of the main process, so that the analysis that
follows the screen starts from trees already built.

The thread imports the engine (LibCST above all) only when it starts, and it is started only
once the workers have been forked: a fork during an import could leave a module lock held in the
child.  ``drain`` lets a caller fork again safely.
"""

from __future__ import annotations

import queue
import threading
from typing import Dict, Optional

from . import limits

_DONE = None  # the end of the queue


class LoadAhead:
    """Sources handed over with ``add`` are loaded in order on one thread; ``finish`` gives them."""

    def __init__(self) -> None:
        self.enabled = False  # set once loading ahead can pay: the screen runs in workers
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # items queued or being loaded, the engine's import included
        self._loaded: Dict[str, object] = {}
        self._given: set = set()

    def has(self, key: str) -> bool:
        """Whether a source was given for ``key``."""
        return key in self._given

    def add(self, key: str, source: str) -> None:
        """Load ``source`` for ``key`` ahead, when enabled; the last text given for a key wins."""
        if not self.enabled:
            return
        with self._lock:
            self._pending += 1
            self._given.add(key)
        self._queue.put((key, source))

    def start(self) -> None:
        """Start the thread, once (safe from any thread)."""
        with self._lock:
            if self._thread is not None or not self.enabled:
                return
            self._pending += 1  # the import of the engine
            self._thread = threading.Thread(target=limits.call_with_deep_stack, args=(self._work,),
                                            name="maskfix-load-ahead", daemon=True)
            self._thread.start()

    def drain(self) -> None:
        """Wait until nothing is being loaded (nor imported): the process may then fork."""
        with self._idle:
            while self._thread is not None and self._pending:
                self._idle.wait()

    def finish(self) -> Dict[str, object]:
        """Stop the thread once the queue is done; the ``engine.Loaded`` of each source, by key."""
        with self._lock:
            thread, self.enabled = self._thread, False
        if thread is None:
            return {}
        self._queue.put(_DONE)
        thread.join()
        return self._loaded

    def _work(self) -> None:
        try:
            from . import engine
        except Exception:  # the analysis will report it in the main thread
            engine = None
        self._done_one()
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            key, source = item
            try:
                if engine is not None:
                    loaded = engine.load(key, source)
                    if loaded is not None:
                        self._loaded[key] = loaded
            except Exception:  # the engine meets it again, and reports it
                pass
            finally:
                self._done_one()

    def _done_one(self) -> None:
        with self._idle:
            self._pending -= 1
            if not self._pending:
                self._idle.notify_all()
