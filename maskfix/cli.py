"""Command line: ``maskfix check``, ``maskfix rewrite`` and ``maskfix verify``.

Exit codes follow ruff: 0 nothing to report, 1 findings (``check``) or
changes made or needed (``rewrite``), 2 when a file could not be handled or
the command line was wrong.  Files that fail are reported one line each on
stderr and never stop the others.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from . import __version__
from .analysis_process import AnalysisProcess
from .cache import ScreenCache, default_dir as cache_dir, digest, signature
from .codes import UnknownCode, expand, explain, known_codes, listing
from .config import Config, ConfigError, exclude_patterns, load_config
from .files import (
    FileError,
    SourceFile,
    check_writable,
    check_decodable,
    decode_python,
    discover_stat,
    read_bytes,
    write_atomic,
)
from .limits import TooDeep
from .outcome import Outcome
from .prefilter import Imports, might_match
from .records import Factory, record
from .report import FORMATS, Diagnostic, Failure, render


@record
class Input:
    """One file (or stdin) made ready for the engine."""

    display: str
    path: Optional[Path]
    raw: bytes
    source: str = ""
    python: Optional[SourceFile] = None
    notebook: object = None  # maskfix.notebook.Notebook

    def render(self, new_source: str) -> bytes:
        if self.notebook is not None:
            return self.notebook.with_source(new_source)
        return self.python.encode(new_source)


@record
class Run:
    inputs: Dict[str, Input] = Factory(dict)
    errors: List[Tuple[str, str]] = Factory(list)
    outcomes: dict = Factory(dict)
    files_seen: int = 0
    stdin: Optional[Tuple[str, bytes]] = None  # (display name, raw bytes) when "-" was read
    notes: Set[Tuple[str, str]] = Factory(set)  # errors that are statements set aside

    def failed(self) -> Set[str]:
        """Files that could not be handled (not those analysed but for a few statements)."""
        return {p for p, m in self.errors if (p, m) not in self.notes}

    def failure_summary(self, verb: str) -> List[str]:
        failed, parts = self.failed(), []
        partial = {p for p, _ in self.notes} - failed
        if failed:
            parts.append(f"{_plural(len(failed), 'file')} could not be {verb}")
        if partial:
            parts.append(f"{_plural(len(partial), 'file')} {verb} only in part")
        return parts


class UsageError(Exception):
    """A command line or configuration maskfix cannot run with; one line."""


@record
class Settings:
    """What the command line and ``[tool.maskfix]`` decide together."""

    config: Config
    codes: List[str]  # the codes reported (and fixed), in code order
    exclude: List[str]  # patterns for maskfix.files.discover


def resolve_settings(args) -> Settings:
    """Merge the configuration into the command line; raise :class:`UsageError` on a mistake.

    Like ruff, ``--select`` replaces the configured ``select`` and ``ignore``, ``--ignore`` adds
    to the configured ``ignore``, and
    ``--exclude`` replaces the configured excludes. Relative patterns of the command
    line are anchored at the working folder, those of the table at its folder.
    """
    if args.stdin_filename is not None and "-" not in args.paths:
        raise UsageError("--stdin-filename names standard input: add - to the paths "
                         "(or give no path, which reads standard input)")
    if args.paths.count("-") > 1:
        raise UsageError("- (standard input) is given more than once")
    if args.command == "rewrite" and "-" in args.paths and len(args.paths) > 1:
        raise UsageError("rewrite - prints the fixed standard input on stdout, so it cannot be "
                         "combined with other paths; run it separately")
    try:
        config = load_config(args.paths, args.stdin_filename)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        ignored = set(expand(_split(args.ignore or ""), "--ignore"))
        if args.select is not None:
            chosen = expand(_split(args.select), "--select")  # replaces the table's choice, ignore included
        else:
            chosen = config.select if config.select is not None else known_codes()
            ignored |= set(config.ignore)
    except UnknownCode as exc:
        raise UsageError(str(exc)) from None
    cwd = Path.cwd()
    if args.exclude is not None:
        exclude = exclude_patterns(args.exclude, cwd)
    else:
        exclude = exclude_patterns(config.exclude or [], config.root)
    exclude += exclude_patterns(config.extend_exclude, config.root)
    exclude += exclude_patterns(args.extend_exclude or [], cwd)
    return Settings(config, [c for c in known_codes() if c in chosen and c not in ignored], exclude)


def _split(codes: str) -> List[str]:
    return [c for c in codes.replace(" ", ",").split(",") if c.strip()]


def _prepare(display: str, path: Optional[Path], raw: bytes) -> Optional[Input]:
    item = Input(display, path, raw)
    if display.endswith(".ipynb"):
        from .notebook import Notebook, NotebookError, NotPythonNotebook

        try:
            item.notebook = Notebook.parse(raw)
        except NotPythonNotebook:
            return None  # another language's notebook: nothing for maskfix
        except NotebookError as exc:
            raise FileError(f"invalid notebook: {exc}") from None
        item.source = item.notebook.source
    else:
        item.python = decode_python(path or Path(display), raw)
        item.source = item.python.text
    return item


class _Progress:
    """A self-erasing progress line, shown only on a terminal and only for slow runs."""

    DELAY = 0.5  # runs shorter than this never show the line

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty() and not os.environ.get("CI")
        self.start = time.monotonic()
        self.shown = False
        self.last = 0.0
        self._lock = threading.Lock()
        self._pending: Optional[str] = None  # what to show once DELAY has passed
        self._timer: Optional[threading.Timer] = None

    def tick(self, done: int, what: str = "file") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.DELAY or now - self.last < 0.1:
            return
        self.show(f"{_plural(done, what)} read", now)

    def show(self, text: str, now: Optional[float] = None) -> None:
        """Replace the line with ``text`` (after the first DELAY seconds, on a terminal)."""
        if not self.enabled:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self.start < self.DELAY:
                # one file can take long on its own: show it when DELAY is over, if still current
                self._pending = text
                if self._timer is None:
                    self._timer = threading.Timer(self.DELAY - (now - self.start), self._show_pending)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._pending = None
            self._write(text, now)

    def _show_pending(self) -> None:
        with self._lock:
            if self._pending is not None:
                self._write(self._pending, time.monotonic())
                self._pending = None

    def _write(self, text: str, now: float) -> None:
        self.last = now
        self.shown = True
        sys.stderr.write(f"\rmaskfix: {text}\x1b[K")
        sys.stderr.flush()

    def analysing(self, done: int, total: int, name: str) -> None:
        """The engine starts on file ``done + 1`` of ``total``: the line stays up while it works."""
        self.show(f"analysing {done + 1}/{total}: {name}")

    def done(self) -> None:
        with self._lock:
            self._pending = None
            if self._timer is not None:
                self._timer.cancel()
            if self.shown:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
                self.shown = False


def _collect(args, settings: Settings, fix: bool) -> Run:
    run = Run()
    codes = settings.codes
    if "-" in args.paths:
        display = args.stdin_filename or "-"
        raw = sys.stdin.buffer.read()
        run.stdin = (display, raw)
        run.files_seen += 1
        try:
            item = _prepare(display, Path(args.stdin_filename) if args.stdin_filename else None, raw)
            if item is not None:
                run.inputs[display] = item
        except FileError as exc:
            run.errors.append((display, str(exc)))
        if args.paths == ["-"]:
            return _analyse(run, fix, codes)
    progress = _Progress(not args.quiet)
    screens = _open_cache(args, settings)
    analysis = AnalysisProcess()  # forked with the screen's workers, when they run
    try:
        _screen_and_analyse(run, args, settings, fix, progress, screens, analysis)
    finally:
        analysis.close()
    progress.done()
    if screens is not None:
        screens.save()
    return run


def _screen_and_analyse(run: Run, args, settings: Settings, fix: bool, progress: _Progress,
                        screens: Optional[ScreenCache], analysis: AnalysisProcess) -> None:
    codes = settings.codes
    paths = [p for p in args.paths if p != "-"]
    others: List[str] = []  # files the screens rejected, in discovery order
    parsed: List[str] = []  # the keys of the files they passed
    wanted = Imports()  # what the parsed files import
    read_early: Dict[str, Tuple[bytes, Optional[Input]]] = {}  # files looked at while screening

    def wanted_item(path: str) -> Optional[Input]:
        """The file at ``path`` made ready for the analysis when it defines what a parsed file
        imports, else None; FileError when it cannot be read."""
        raw, item = read_early.get(path) or (read_bytes(path), None)
        if not wanted.wants(raw, path):
            item = None
        elif item is None:
            item = _prepare(path, Path(path), raw)
        read_early[path] = (raw, item)
        return item

    def look_ahead(path: str) -> None:
        # a file defining what a parsed file imports will be analysed too: parse it while screening
        try:
            item = wanted_item(path)
        except FileError:
            return  # reported when it is read again below
        if item is not None and not analysis.has(_key(run, path)):
            analysis.load(_key(run, path), item.source)

    found = discover_stat(paths, settings.exclude, stat_files=screens is not None)  # the cache needs stats
    for path, problem, (kind, payload), sig in _screen_all(found, args.jobs, screens, analysis):
        run.files_seen += 1
        progress.tick(run.files_seen)
        if screens is not None and sig is not None:
            if kind in ("other", "skip"):
                screens.store(sig[0], sig[1], kind, payload)
            elif kind == "parse":
                try:
                    if payload is None:  # known to need the engine: only the screen is spared
                        payload = read_bytes(path)
                    screens.store(sig[0], sig[1], kind, digest(payload))
                except FileError as exc:
                    kind, payload = "error", str(exc)
        if problem:
            run.errors.append((path, problem))
        elif kind == "error":
            run.errors.append((path, payload))
        elif kind == "other":
            others.append(path)  # defines nothing to report, but may call a decoder defined elsewhere
            if analysis.running and wanted and wanted.may_define(path):
                look_ahead(path)
        elif kind == "parse":
            try:
                item = _prepare(path, Path(path), payload)
                if item is not None:
                    key = _key(run, path)
                    run.inputs[key] = item
                    parsed.append(key)
                    analysis.load(key, item.source)
                    if item.notebook is None:
                        known = set(wanted.modules)
                        wanted.add(item.raw)
                        if analysis.running and wanted.modules != known:
                            for other in others:
                                if wanted.may_define(other):
                                    look_ahead(other)
            except FileError as exc:
                run.errors.append((path, str(exc)))
    # Files that define a class the parsed files import (or a module they import with *): a decoder
    # layer there may hold a finding that none of the screens' words show.
    if wanted and others:
        for path in others:
            if not wanted.may_define(path):
                continue  # by its name, it defines nothing they import: not worth reading
            try:
                item = wanted_item(path)
                if item is not None:
                    run.inputs[_key(run, path)] = item
            except FileError as exc:
                run.errors.append((path, str(exc)))
    _analyse(run, fix, codes, progress, screens, analysis)
    # Files that only call a decoder class, or use an attention layer or a mask factory, that the
    # parsed files define.
    names = {n for k in parsed if k in run.outcomes
             for n in (*run.outcomes[k].decoders, *run.outcomes[k].attention_layers, *run.outcomes[k].mask_factories)}
    if names and others:
        needles = [n.encode() for n in names]
        before = len(run.inputs)
        for path in others:
            if _key(run, path) in run.inputs:
                continue
            try:
                raw = read_bytes(path)
                item = _prepare(path, Path(path), raw) if any(n in raw for n in needles) else None
                if item is not None:
                    run.inputs[_key(run, path)] = item
            except FileError as exc:
                run.errors.append((path, str(exc)))
        if len(run.inputs) > before:  # the same sources again would give the same outcomes
            _analyse(run, fix, codes, progress, screens, analysis)


def _open_cache(args, settings: Settings) -> Optional[ScreenCache]:
    """This run's screen cache, or None with ``--no-cache``; its verdicts are made visible to the screen."""
    global _KNOWN
    if args.no_cache:
        _KNOWN = None
        return None
    folder = Path(args.cache_dir) if args.cache_dir else cache_dir(settings.config.root)
    screens = ScreenCache(folder, ",".join(settings.codes))
    _KNOWN = screens.verdicts  # forked workers inherit it
    return screens


# Verdicts by content digest from the screen cache, or None when caching is off (nothing is hashed).
_KNOWN: Optional[Dict[bytes, str]] = None

def _key(run: Run, key: str) -> str:
    """The run's key for a file; standard input named like the file keeps its own."""
    return os.path.abspath(key) if run.stdin is not None and run.stdin[0] == key else key


PARALLEL_MIN_FILES = 256  # below this, starting workers costs more than it saves


def _screen_file(path: str, here: bool = False) -> Tuple[str, object]:
    """``("parse", raw)`` when LibCST must see the file, else ``("other"|"skip", digest)`` or ``("error", reason)``.

    The digest of the bytes is given (else None) when the cache is on and the file took the
    ``ast`` screen; a file whose bytes the cache knows is not screened again.

    Both prefilter stages run here: the byte needles, then the ``ast`` screen.
    A file that fails them is still decoded, so one that is not text is reported.
    ``here``: screened in the process that runs the engine, which may reuse the parse.
    """
    try:
        raw = read_bytes(path)
        notebook = path.endswith(".ipynb")
        if not might_match(raw, notebook=notebook):
            # Cannot hold a finding, so it is not parsed; a file that is not
            # text (or not a notebook) is still reported.
            if notebook:
                _prepare(path, Path(path), raw)
            else:
                check_decodable(path, raw)
            return "other", None
        key = None
        if _KNOWN is not None:
            key = digest(raw)
            known = _KNOWN.get(key)
            if known in ("other", "skip"):
                return known, key
            if known == "parse":
                return "parse", raw
        item = _prepare(path, Path(path), raw)
        if item is None:
            return "skip", key
        from .screen import worth_parsing

        return ("parse", raw) if worth_parsing(item.source, keep_tree=here) else ("other", key)
    except (FileError, TooDeep) as exc:
        return "error", str(exc)


def _screen_chunk(paths: List[str]) -> List[Tuple[str, object]]:
    return [_screen_file(p) for p in paths]


def _screen_all(found, jobs: int, screens: Optional[ScreenCache] = None,
                analysis: Optional[AnalysisProcess] = None):
    """Yield ``(path, discovery problem, screen result, (real path, stat signature))`` in discovery order, on
    ``jobs`` processes; files the cache knows unchanged are not read.

    Chunks go to the workers while the walk goes on, so discovery overlaps screening.  When workers
    run, ``analysis`` is forked with them, and told to import the engine once a worker passes a file.
    """
    jobs = jobs or _cpu_count()

    def entries():
        for path, problem, st, real in found:
            sig = (real, signature(st)) if st is not None and screens is not None else None
            known = screens.known(real, sig[1]) if sig is not None else None
            if known is not None and known != "parse":
                sig = None  # recorded as it is: nothing to store again
            yield path, problem, sig, known

    if jobs <= 1:
        for path, problem, sig, known in entries():
            result = ("skip", None) if problem else (known, None) if known else _screen_file(path, here=True)
            yield path, problem, result, sig
        return
    pending = []  # (discovered entries, their results: a list, a future, None if the pool broke) in order
    held: List[int] = []  # chunks of pending not screened yet (their paths, in a tuple)
    batch: list = []
    executor = None
    size = 64
    waiting = 0  # files held so far

    def submit(paths):
        try:
            future = executor.submit(_screen_chunk, list(paths))
        except _broken_pool():
            return None
        if analysis is not None:
            future.add_done_callback(functools.partial(_start_analysis, analysis))
        return future

    def flush():
        nonlocal executor, waiting
        paths = [e[0] for e in batch if not e[1] and not e[3]]
        if executor is None and waiting + len(paths) < PARALLEL_MIN_FILES:
            # too little work so far to repay worker start-up (files the cache knows are no work):
            # held, to be screened here if the walk ends soon, else by the workers
            waiting += len(paths)
            held.append(len(pending))
            pending.append((list(batch), tuple(paths)))
        elif not paths:
            pending.append((list(batch), []))
        else:
            if executor is None:
                if analysis is not None:
                    analysis.fork(_fork_context())  # before the pool starts its threads
                executor = _pool(jobs)
                for i in held:
                    pending[i] = (pending[i][0], submit(pending[i][1]))
                held.clear()
            pending.append((list(batch), submit(paths)))
        batch.clear()

    try:
        for entry in entries():
            batch.append(entry)
            if len(batch) >= size:
                flush()
        if batch:
            flush()
        for i in held:
            pending[i] = (pending[i][0], [_screen_file(p, here=True) for p in pending[i][1]])
        for done, results in pending:
            if not isinstance(results, list):
                try:
                    results = results.result() if results is not None else None
                except _broken_pool():
                    results = None
                if results is None:
                    # A worker died (a crash in a parser): screen this chunk again, isolated,
                    # so that only the file it died on is lost.
                    results = _screen_isolated([e[0] for e in done if not e[1] and not e[3]], _fork_context())
            yield from _merge(done, iter(results))
    finally:
        if executor is not None:
            executor.shutdown()


def _start_analysis(analysis: AnalysisProcess, future) -> None:
    """Once a worker has passed a file that the analysis must see, the analysis process imports the
    engine (LibCST above all, most of what one such file costs) while the workers screen the rest."""
    if future.cancelled() or future.exception() is not None:
        return
    if any(kind == "parse" for kind, _ in future.result()):
        analysis.start()


def _fork_context():
    import multiprocessing  # only when workers are needed: a few files are screened here

    # fork: workers inherit the imported modules, so they start in milliseconds.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def _pool(jobs: int):
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=_fork_context(), initializer=_yield_to_the_analysis)


WORKER_NICENESS = 5


def _yield_to_the_analysis() -> None:
    """A screen worker gives way to the process that feeds it and to the analysis process: the
    chain of LibCST's import, the parses ahead and the analysis decides when the run ends, and a
    chunk waiting a little changes nothing (measured: 0.06 s less on a 7,000-file tree)."""
    try:
        os.nice(WORKER_NICENESS)
    except (AttributeError, OSError):  # no niceness on this system: equal shares
        pass


def _broken_pool() -> type:
    from concurrent.futures.process import BrokenProcessPool

    return BrokenProcessPool


def _screen_isolated(paths: List[str], context) -> List[Tuple[str, object]]:
    """Screen ``paths`` in child processes; a file that kills its child is reported, the rest go on."""
    results: List[Tuple[str, object]] = []
    while len(results) < len(paths):
        reader, writer = context.Pipe(duplex=False)
        child = context.Process(target=_screen_into, args=(paths[len(results):], writer), daemon=True)
        child.start()
        writer.close()
        try:
            while True:
                results.append(reader.recv())
        except EOFError:
            pass
        finally:
            reader.close()
        child.join()
        if len(results) < len(paths):
            results.append(("error", f"cannot parse: the process screening it crashed ({_death(child.exitcode)})"))
    return results


def _screen_into(paths: List[str], writer) -> None:
    for path in paths:
        writer.send(_screen_file(path))
    writer.close()


def _death(exitcode: Optional[int]) -> str:
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


def _merge(found, results):
    for path, problem, sig, known in found:
        yield path, problem, ("skip", None) if problem else (known, None) if known else next(results), sig


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _analyse(run: Run, fix: bool, codes: Sequence[str], progress: Optional[_Progress] = None,
             screens: Optional[ScreenCache] = None, analysis: Optional[AnalysisProcess] = None) -> Run:
    if not run.inputs or not codes:
        return run
    key = None
    if screens is not None:
        # the engine is a function of its sources: a set it found nothing in needs no LibCST again
        key = digest(repr((fix, list(codes), sorted((k, digest(v.raw)) for k, v in run.inputs.items()))).encode())
        if key in screens.clean:
            run.outcomes = {k: Outcome() for k in run.inputs}
            return run
    sources = {k: v.source for k, v in run.inputs.items()}
    report = progress.analysing if progress is not None else None
    # the selected rules are the only ones that report or rewrite
    outcomes = analysis.run(sources, fix, codes, report) if analysis is not None else None
    if outcomes is None:  # no analysis process (or it is gone): here
        from . import engine  # LibCST is imported only when a file can match

        outcomes = engine.run(sources, fix=fix, select=codes, progress=report)
    run.outcomes = outcomes
    if key is not None and all(o.clean() for o in run.outcomes.values()):
        screens.mark_clean(key)
    return run


def _diagnostics(run: Run, select: Sequence[str]) -> List[Diagnostic]:
    diags = []
    for key, outcome in run.outcomes.items():
        item = run.inputs[key]
        if outcome.error:
            run.errors.append((key, outcome.error))
            continue
        locate = item.notebook.locate if item.notebook is not None else None
        notes = [(key, note.describe(locate)) for note in outcome.not_analysed]
        run.errors.extend(notes)
        run.notes.update(notes)
        for f in outcome.findings:
            if f.code not in select:
                continue
            line, cell, file_line = f.line, None, None
            if item.notebook is not None:
                cell, line = item.notebook.locate(f.line)
                file_line = item.notebook.file_line(cell, line)
            diags.append(Diagnostic(item.display, f.code, f.message, line, f.column, cell, f.fixable, file_line))
    diags.sort(key=lambda d: (d.path, d.cell or 0, d.line, d.column))
    return diags


_SYNTAX_AT = re.compile(r"syntax error at line (\d+), column (\d+)")
_ON_LINE = re.compile(r"\bon line (\d+)")  # Python's "... does not match ... on line N"


def _cell_line(notebook, line: int, cell: int) -> str:
    try:
        other, line = notebook.locate(line)
    except ValueError:
        return f"on line {line}"
    return f"on line {line}" if other == cell else f"on cell {other} line {line}"


def failures(run: Run) -> List[Failure]:
    """The files that could not be handled, once each, with the place in the file when known.

    A syntax error in a notebook is reported at ``cell N:line:col``, not at a line of
    the program maskfix builds from the cells.
    """
    out: List[Failure] = []
    seen = set()
    for path, reason in run.errors:
        if (path, reason) in seen:
            continue
        seen.add((path, reason))
        failure = Failure(path, reason)
        m = _SYNTAX_AT.search(reason)
        if m:
            failure.line, failure.column = int(m.group(1)), int(m.group(2))
            item = run.inputs.get(path)
            if item is not None and item.notebook is not None:
                try:
                    failure.cell, failure.line = item.notebook.locate(failure.line)
                    failure.file_line = item.notebook.file_line(failure.cell, failure.line)
                    rest = _ON_LINE.sub(lambda o: _cell_line(item.notebook, int(o.group(1)), failure.cell),
                                        reason[m.end():])
                    failure.reason = reason[: m.start()] + "syntax error" + rest
                except ValueError:
                    pass
        out.append(failure)
    return out


def _report_errors(run: Run) -> None:
    for f in failures(run):
        where = f.location() if f.cell is not None else f.path
        print(f"maskfix: error: {where}: {f.reason}", file=sys.stderr)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cmd_check(args) -> int:
    settings = resolve_settings(args)
    with_edits = args.format == "json"  # JSON carries each file's fix as a diff; nothing is written
    run = _collect(args, settings, fix=with_edits)
    diags = _diagnostics(run, settings.codes)
    fixes = {}
    if with_edits:
        for key, outcome in run.outcomes.items():
            if outcome.new_source is not None:
                try:
                    fixes[run.inputs[key].display] = _unified(run.inputs[key], outcome.new_source)
                except ValueError as exc:  # a notebook the fix cannot be written back into
                    run.errors.append((key, str(exc)))
    if diags or args.format != "text":
        sys.stdout.write(render(args.format, diags, fixes=fixes, failures=failures(run)))
    _report_errors(run)
    _warn_if_nothing_found(run, args.quiet)
    if not args.quiet:
        fixable = sum(d.fixable for d in diags)
        if diags:
            summary = f"Found {_plural(len(diags), 'problem')} ({fixable} fixable with `maskfix rewrite`)"
        else:
            summary = f"No problems found in {_plural(_checked(run), 'file')}"
        summary = "; ".join([summary, *run.failure_summary("checked")])
        print(summary + ".", file=sys.stderr)
    if run.errors:
        return 2
    return 1 if diags and not args.exit_zero else 0


def cmd_rewrite(args) -> int:
    settings = resolve_settings(args)
    run = _collect(args, settings, fix=True)
    diags = _diagnostics(run, settings.codes)
    changed = set()  # displays of the files written (or diffed)
    to_write: Dict[str, bytes] = {}
    manual = [d for d in diags if not d.fixable]
    out = sys.stdout
    stdin = args.paths == ["-"]
    stdin_out = None  # what replaces an editor's buffer: the input itself unless a fix succeeds
    if stdin and run.stdin is not None:
        stdin_out = run.stdin[1]
    for key, outcome in sorted(run.outcomes.items()):
        item = run.inputs[key]
        if outcome.new_source is None:
            continue
        try:
            new_bytes = item.render(outcome.new_source)
        except (FileError, ValueError) as exc:
            run.errors.append((key, str(exc)))
            continue
        if args.diff:
            out.write(_unified(item, outcome.new_source))
            changed.add(item.display)
            continue
        if stdin:
            stdin_out = new_bytes
            changed.add(item.display)
            continue
        to_write[key] = new_bytes
    changed.update(run.inputs[k].display for k in _write_together(run, to_write))
    # A fix counts only where the file was really written: a skipped file keeps its problems.
    fixed = sum(d.fixable and d.path in changed for d in diags)
    if stdin_out is not None and not args.diff:
        _write_stdout(stdin_out)
    if not args.quiet and not stdin and not args.diff:
        for d in diags:
            if not d.fixable:
                state = "needs manual work"
            else:
                state = "fixed" if d.path in changed else "not fixed: the file was not written"
            print(f"{d.location()}: {d.code} {d.message} ({state})")
        for key, outcome in sorted(run.outcomes.items()):
            for note in dict.fromkeys(outcome.notes) if run.inputs[key].display in changed else ():
                print(f"{run.inputs[key].display}: encoder_padding_mask threaded: {note}")
    _report_errors(run)
    _warn_if_nothing_found(run, args.quiet)
    if not args.quiet:
        verb = "Would fix" if args.diff else "Fixed"
        parts = [f"{verb} {_plural(fixed, 'problem')} in {_plural(len(changed), 'file')}"]
        if manual:
            parts.append(f"{_plural(len(manual), 'problem')} need{'s' if len(manual) == 1 else ''} manual work")
        parts += run.failure_summary("handled")
        print("; ".join(parts) + ".", file=sys.stderr)
    if run.errors:
        return 2
    if args.exit_zero:
        return 0
    return 1 if changed or manual else 0


def _write_together(run: Run, to_write: Dict[str, bytes]) -> List[str]:
    """Write ``{key: bytes}``; a decoder and the files threading its new parameter go together or not at all.

    A call site given ``encoder_padding_mask=`` breaks when its decoder keeps the
    old signature, so each group is checked (writable, unchanged) before any of
    it is written, decoders are written first, and a failure stops the rest of
    the group.
    """
    parent = {k: k for k in run.outcomes}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for key, outcome in run.outcomes.items():
        for other in getattr(outcome, "needs", ()):
            if other in parent:
                parent[find(key)] = find(other)
    groups: Dict[str, List[str]] = {}
    for key in sorted(run.outcomes):
        if run.outcomes[key].new_source is not None:
            groups.setdefault(find(key), []).append(key)
    needed = {n for o in run.outcomes.values() for n in getattr(o, "needs", ())}
    written: List[str] = []
    for members in groups.values():
        members.sort(key=lambda k: (k not in needed, k))  # decoders first
        failed = [k for k in members if k not in to_write]  # could not even be rendered
        for key in members:
            if key in to_write and not failed:
                try:
                    check_writable(run.inputs[key].path, run.inputs[key].raw)
                except FileError as exc:
                    run.errors.append((key, str(exc)))
                    failed.append(key)
        for key in members:
            if key in failed or key not in to_write:
                continue
            if failed:
                run.errors.append((key, _held_back(run, failed)))
                continue
            try:
                write_atomic(run.inputs[key].path, to_write[key], expected=run.inputs[key].raw)
            except FileError as exc:
                run.errors.append((key, str(exc)))
                failed.append(key)
                continue
            written.append(key)
    return written


def _held_back(run: Run, failed: List[str]) -> str:
    names = ", ".join(run.inputs[k].display for k in failed)
    return (f"not rewritten: its fix goes with the fix of {names} (a decoder and the calls that pass it "
            "encoder_padding_mask=), which could not be written")


def _warn_if_nothing_found(run: Run, quiet: bool) -> None:
    if run.files_seen == 0 and not run.errors and not quiet:
        print("maskfix: warning: No Python files found under the given path(s)", file=sys.stderr)


def _checked(run: Run) -> int:
    """Files really checked: the ones named or found, less those that could not be handled."""
    return max(run.files_seen - len(run.failed()), 0)


def _unified(item: Input, new: str) -> str:
    """A unified diff of the fix. For a notebook, one diff per changed code cell, headed
    ``a/NAME.ipynb:cell N``, after a line saying how to apply it (``patch`` cannot)."""
    name = item.display
    if item.notebook is None:
        return _diff_text(item.source, new, f"a/{name}", f"b/{name}")
    changes = item.notebook.cell_changes(new)
    if not changes:
        return ""
    parts = [f"# {name}: notebook code cells; apply with `maskfix rewrite {shlex.quote(name)}`\n"]
    for number, old_text, new_text in changes:
        parts.append(_diff_text(old_text, new_text, f"a/{name}:cell {number}", f"b/{name}:cell {number}"))
    return "".join(parts)


def _diff_text(old: str, new: str, fromfile: str, tofile: str) -> str:
    import difflib  # only for --diff

    diff = difflib.unified_diff(old.splitlines(True), new.splitlines(True), fromfile=fromfile, tofile=tofile)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff)


def _write_stdout(data: bytes) -> None:
    """Bytes to stdout as they are, so an editor gets back exactly what it sent when nothing changed."""
    out = sys.stdout
    out.flush()
    if hasattr(out, "buffer"):
        out.buffer.write(data)
        out.buffer.flush()
    else:
        out.write(data.decode("utf-8", "surrogateescape"))


def cmd_rules(args) -> int:
    if not args.code:
        sys.stdout.write(listing())
        return 0
    code = args.code.strip().upper()
    if code not in known_codes():
        raise UsageError(f"unknown code {args.code!r} (known: {', '.join(known_codes())})")
    sys.stdout.write(explain(code))
    return 0


def cmd_verify(args) -> int:
    from .verify import main as verify_main

    return verify_main(args)


def cmd_server(args) -> int:
    try:
        from .server import main as serve
    except ImportError as exc:  # pygls is in the `lsp` extra
        print(f"maskfix: error: the language server needs pip install 'maskfix[lsp]' ({exc})", file=sys.stderr)
        return 2
    return serve()


def build_parser(with_verify: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskfix",
        description="Find and fix Keras Transformer decoders whose cross-attention is masked "
        "with the decoder's own mask instead of the encoder's padding.",
    )
    parser.add_argument("--version", action="version", version=f"maskfix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(p):
        p.add_argument("paths", nargs="*", metavar="PATH",
                       help="files or directories (default: .); - reads standard input")
        p.add_argument("--stdin-filename", metavar="NAME",
                       help="name (and place, for the configuration) of the file on standard input; "
                       "needs - among the paths, or no path at all")
        p.add_argument("--select", metavar="CODES",
                       help="comma-separated codes or prefixes to report and fix (replaces the configured list)")
        p.add_argument("--ignore", metavar="CODES",
                       help="comma-separated codes or prefixes not to report or fix (added to the configured list)")
        p.add_argument("--exclude", action="append", metavar="GLOB", help="paths to skip (replaces the configured list)")
        p.add_argument("--extend-exclude", action="append", metavar="GLOB", help="paths to skip, in addition")
        p.add_argument("--exit-zero", action="store_true", help="exit 0 even when problems are found")
        p.add_argument("-q", "--quiet", action="store_true", help="print diagnostics only, no summary")
        p.add_argument("--no-cache", action="store_true", help="neither read nor write the screen cache")
        p.add_argument("--cache-dir", metavar="DIR",
                       help="where the screen cache lives (default: .maskfix_cache in the project; "
                            "or MASKFIX_CACHE_DIR)")
        p.add_argument("-j", "--jobs", type=int, default=0, metavar="N",
                       help="worker processes for screening files (default: all cores; 1: none)")

    check = sub.add_parser("check", help="report decoders whose cross-attention uses a decoder-side mask")
    common(check)
    check.add_argument(
        "--format", choices=sorted(FORMATS), default="text",
        help="text: path:line:col: CODE message (default); json: one object per finding, with the fix as "
        "a diff; sarif: SARIF 2.1.0 for code scanning; github: GitHub Actions annotations",
    )
    check.set_defaults(func=cmd_check)

    rewrite = sub.add_parser("rewrite", help="fix them in place and thread encoder_padding_mask to call sites")
    common(rewrite)
    rewrite.add_argument("--diff", action="store_true", help="print a unified diff; write nothing")
    rewrite.set_defaults(func=cmd_rewrite)

    rules = sub.add_parser("rules", help="list the codes, or explain one (maskfix rules MF001)")
    rules.add_argument("code", nargs="?", metavar="CODE", help="the code to explain")
    rules.set_defaults(func=cmd_rules)

    verify = sub.add_parser("verify", help="run black-box mask probes on a decoder layer (needs Keras)")
    if with_verify:
        from .verify import add_arguments as verify_arguments  # imports no Keras, but takes a while

        verify_arguments(verify)
    verify.set_defaults(func=cmd_verify)

    server = sub.add_parser("server", help="run the language server on stdin and stdout (needs the lsp extra)")
    server.set_defaults(func=cmd_server)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(with_verify="verify" in words)  # a check need not import verify's options
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse stops collecting PATHs at the first option; take the ones after it too.
        if args.command not in ("check", "rewrite") or any(e.startswith("-") and e != "-" for e in extra):
            parser.parse_args(argv)  # reports the unknown argument and exits 2
        args.paths = list(args.paths) + extra
    if args.command in ("check", "rewrite") and not args.paths:
        args.paths = ["-"] if args.stdin_filename is not None else ["."]
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"maskfix: error: {exc}", file=sys.stderr)
        if args.command == "rewrite" and "-" in args.paths and not args.diff:
            # An editor replaces its buffer with stdout: hand the text back unchanged.
            _write_stdout(sys.stdin.buffer.read())
        return 2
    except KeyboardInterrupt:
        print("maskfix: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
