"""Bounds on what one file may cost: parser stack, nesting depth and time.

A valid file can still be hostile: ``not not ... x`` twenty thousand times
overflows the stack of LibCST's native parser (a segmentation fault, not an
exception), and a 500-term ``+`` chain is deeper than Python's default
recursion limit allows the analysis to walk.  So:

- every source is first parsed by Python's own ``ast``, which fails cleanly
  (RecursionError or MemoryError) where LibCST's parser would crash; such a
  file is reported as ``cannot parse`` and never reaches LibCST;
- the engine runs on a thread with a large stack and a high recursion limit,
  so anything ``ast`` accepts can be parsed and walked;
- statements nested deeper than ``MAX_DEPTH`` are set aside before LibCST sees
  them (``hide_deep_statements``): the rest of the file is analysed, and the
  report names the lines that were not;
- ``FileTimer`` stops the analysis of a file that runs longer than
  ``FILE_SECONDS``, reporting that file and going on with the others.
"""

from __future__ import annotations

import ast
import re
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from .records import Factory, record

T = TypeVar("T")

STACK_BYTES = 512 * 1024 * 1024  # reserved, not committed: only the pages used cost memory
RECURSION_LIMIT = 60_000


class TooDeep(ValueError):
    """Python's own parser gave up on the nesting; the message is the one-line reason."""


_TREES: Dict[str, ast.Module] = {}  # trees parsed by the screen that the engine will need again
_TREES_BYTES = 1536 * 1024  # at most this much source: a tree takes some 80 times its source


def remember_tree(source: str, tree: ast.Module) -> None:
    """Keep ``tree`` for the next ``parse_python(source)``: a large file is not parsed twice."""
    _TREES[source] = tree
    while sum(len(s) for s in _TREES) > _TREES_BYTES and len(_TREES) > 1:
        del _TREES[next(iter(_TREES))]


def parse_python(source: str) -> Optional[ast.Module]:
    """``ast`` tree of ``source``; None on a syntax error; TooDeep when the parser ran out of stack."""
    tree = _TREES.pop(source, None)
    if tree is not None:
        return tree
    try:
        return ast.parse(source)
    except (RecursionError, MemoryError):
        raise TooDeep("cannot parse: expression nested too deeply for Python's own parser") from None
    except (SyntaxError, ValueError):
        return None


_deep_lock = threading.Lock()
_deep_calls = 0
_saved_limit = 0


def call_with_deep_stack(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` on a thread with a large stack and a high recursion limit."""
    global _deep_calls, _saved_limit
    result: Dict[str, object] = {}

    def target():
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    with _deep_lock:
        if _deep_calls == 0:
            _saved_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_saved_limit, RECURSION_LIMIT))
        _deep_calls += 1
        old_size = threading.stack_size()
        try:
            threading.stack_size(STACK_BYTES)
            worker = threading.Thread(target=target, name="maskfix-engine", daemon=True)
        finally:
            threading.stack_size(old_size)
    try:
        worker.start()
        worker.join()
    finally:
        with _deep_lock:
            _deep_calls -= 1
            if _deep_calls == 0:
                sys.setrecursionlimit(_saved_limit)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


LINE_END = re.compile(r"\r\n|\r|\n")  # where Python's tokenizer ends a line

MAX_DEPTH = 200  # expression levels in one statement (CPython nests brackets at most 200 deep)
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


@record
class SetAside:
    """One statement set aside for its nesting depth: 1-based lines of the source, and why."""

    first: int
    last: int
    reason: str

    def describe(self, locate: Optional[Callable[[int], Tuple[int, int]]] = None) -> str:
        """One line for the report; ``locate`` maps a source line to (cell, line) in notebooks."""
        if locate is None:
            where = f"line {self.first}" if self.first == self.last else f"lines {self.first}-{self.last}"
        else:
            (cell, first), (cell_end, last) = locate(self.first), locate(self.last)
            where = f"cell {cell}:line {first}"
            if (cell_end, last) != (cell, first):
                where = f"cell {cell}:lines {first}-{last}"
        return f"{where} not analysed: {self.reason}"


@record
class Hidden:
    """Statements set aside before LibCST sees them, and how to put them back."""

    source: str  # the source with each hidden statement replaced by a placeholder
    tree: Optional[ast.Module] = None  # Python's own tree of the original source, placeholders as ``pass``
    originals: List[Tuple[str, str, int]] = Factory(list)  # (marker, original text, lines)
    notes: List[SetAside] = Factory(list)  # one per hidden statement

    def restore(self, code: str) -> str:
        """Put the hidden statements back into ``code`` (the placeholders must be intact)."""
        for marker, original, count in self.originals:
            at = code.find(marker)
            if at == -1 or code.find(marker, at + 1) != -1:
                raise ValueError("a statement set aside for its nesting depth was lost by the rewrite")
            start = max(code.rfind("\n", 0, at), code.rfind("\r", 0, at)) + 1
            end = at + len(marker)
            for _ in range(count):  # the placeholder line and its blank followers
                nl = LINE_END.search(code, end)
                end = len(code) if nl is None else nl.end()
            code = code[:start] + original + code[end:]
        return code


def hide_deep_statements(source: str, tree: ast.Module, limit: int = MAX_DEPTH) -> Hidden:
    """Replace every statement nested deeper than ``limit`` by a placeholder of as many lines.

    LibCST's parser and the analysis cost grows faster than the depth, so such a
    statement is not analysed; line numbers elsewhere stay the same, and
    ``Hidden.restore`` puts the original text back after a rewrite.  Raises
    TooDeep when a deep statement does not own its lines (``x = 1; <deep>``).
    """
    hidden = Hidden(source, tree)
    deep: List[ast.stmt] = []
    stack: List[ast.stmt] = list(reversed(tree.body))
    starts = _line_starts(source)
    # Every level of an expression costs at least one character of source, give or take a node
    # without text (a context, a comprehension): a statement shorter than about half the limit
    # cannot be too deep, nor can anything inside it.  Spans are counted in UTF-8 bytes (ast's
    # columns), at least the characters they cover, so the bound stays safe.
    short = limit // 2 - 2
    while stack:
        stmt = stack.pop()
        end_line = stmt.end_lineno or stmt.lineno
        if end_line == stmt.lineno:
            length = (stmt.end_col_offset or 0) - stmt.col_offset
        else:
            length = starts[end_line - 1] - starts[stmt.lineno - 1] + (stmt.end_col_offset or 0)
        if length < short:
            continue
        if _own_depth(stmt, limit, stack) > limit:
            deep.append(stmt)
    if not deep:
        return hidden
    lines = source.splitlines(True)
    ranges = []
    for stmt in deep:
        first, last = whole_lines(stmt, lines)
        if first is None:
            raise TooDeep(f"cannot analyse: the statement at line {stmt.lineno} is nested more than {limit} deep "
                          "and shares its lines with other code")
        ranges.append((first, last))
    token = f"{abs(hash(source)) % 10**8:08d}"
    end = -1
    for n, (first, last) in enumerate(sorted(ranges, key=lambda r: (r[0], -r[1]))):
        if first <= end:
            continue  # inside a statement already set aside
        end = last
        text = lines[first].rstrip("\r\n")
        indent = text[: len(text) - len(text.lstrip())]
        marker = f"pass  # maskfix: set aside {token}-{n}."  # the dot: -1 is no prefix of -10
        hidden.originals.append((marker, "".join(lines[first:last + 1]), last - first + 1))
        for i in range(first, last + 1):
            ending = lines[i][len(lines[i].rstrip("\r\n")):]
            lines[i] = (indent + marker if i == first else "") + ending
        hidden.notes.append(SetAside(first + 1, last + 1, f"an expression nested more than {limit} deep"))
    hidden.source = "".join(lines)
    return hidden


def _line_starts(source: str) -> List[int]:
    """Offset in characters of each line start, lines ended as Python's tokenizer ends them."""
    starts = [0]
    for m in LINE_END.finditer(source):
        starts.append(m.end())
    return starts


def _own_depth(stmt: ast.AST, limit: int, stack: List[ast.stmt]) -> int:
    """Deepest expression of ``stmt`` itself, up to ``limit + 1``; its inner statements go on ``stack``."""
    deepest = 0
    todo: List[Tuple[ast.AST, int]] = []
    for _, value in ast.iter_fields(stmt):
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, ast.stmt):
                stack.append(item)
            elif isinstance(item, (ast.excepthandler, ast.match_case)):
                deepest = max(deepest, _own_depth(item, limit, stack))
            elif isinstance(item, ast.AST):
                todo.append((item, 1))
    while todo:
        node, depth = todo.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def whole_lines(stmt: ast.stmt, lines: List[str]) -> Tuple[Optional[int], Optional[int]]:
    """0-based first and last line of ``stmt`` (decorators included) when it owns them, else None."""
    decorators = getattr(stmt, "decorator_list", None) or []
    first = min([stmt.lineno] + [d.lineno for d in decorators]) - 1
    last = (stmt.end_lineno or stmt.lineno) - 1
    if first < 0 or last >= len(lines):
        return None, None
    if decorators:
        head_ok = lines[first].lstrip().startswith("@")
    else:  # ast columns count UTF-8 bytes
        head_ok = not lines[first].encode("utf-8")[: stmt.col_offset].strip()
    tail = lines[last].encode("utf-8")[stmt.end_col_offset or 0:].strip()
    if not head_ok or (tail and not tail.startswith(b"#")):
        return None, None
    return first, last


FILE_SECONDS = 300.0  # analysis time allowed per file


class OutOfTime(BaseException):
    """Raised in the engine's thread when one file used up its time (not an Exception: never swallowed)."""


class FileTimer:
    """Interrupts the analysis of a file that runs longer than ``seconds``.

    A watcher thread raises OutOfTime in the working thread (between two
    Python instructions: a long native call, such as LibCST's parser, finishes
    first), so the file is reported and the run goes on with the others.
    """

    def __init__(self, seconds: Optional[float] = None):
        self.seconds = FILE_SECONDS if seconds is None else seconds
        self._lock = threading.Lock()
        self._current: Optional[Tuple[int, float]] = None  # (thread id, deadline)
        self._sent: Optional[int] = None  # the thread OutOfTime was sent to, until it is withdrawn
        self._stop = threading.Event()
        self._watcher: Optional[threading.Thread] = None

    @contextmanager
    def limit(self) -> Iterator[None]:
        """Run the body under the budget; OutOfTime comes out of it when the time is up."""
        tid = threading.get_ident()
        with self._lock:
            self._current = (tid, time.monotonic() + self.seconds)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="maskfix-timer", daemon=True)
                self._watcher.start()
        try:
            yield
        finally:
            with self._lock:
                self._current = None
                if self._sent == tid:  # withdraw an exception sent but not yet raised
                    self._sent = None
                    _raise_in(tid, None)

    def close(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                if self._current is not None and time.monotonic() > self._current[1]:
                    self._sent = self._current[0]
                    _raise_in(self._sent, OutOfTime)
                    self._current = None

    def reason(self) -> str:
        return f"analysis stopped after {self.seconds:g} s (the time allowed per file); file skipped"


def _raise_in(thread_id: int, exc: Optional[type]) -> None:
    import ctypes  # costs a few milliseconds at start-up, and only a file out of time needs it

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None)
