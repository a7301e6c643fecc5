"""``maskfix verify FILE [--layer NAME]``: run the decoder-layer probes on a file's decoder class.

Exit status: 0 every probe passed, 1 a probe failed, 2 the probes could not run. Results go to
stdout; errors go to stderr as one line naming the file.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from maskfix.verify.loader import find_decoder_classes, why_not_a_decoder
from maskfix.verify.results import ProbeResult, format_table
from maskfix.verify.runtime import BACKENDS, detect_runtime, install_hint, missing_modules, run_jobs

EXIT_OK, EXIT_PROBE_FAILED, EXIT_CANNOT_RUN = 0, 1, 2
_MAGIC_PLACEHOLDER = re.compile(r"^line \d+: pass\s+# \w+: magic \d+$")


class CannotVerify(Exception):
    """The file cannot be verified; the message is the reason, shown after the file's name."""


def _parse_init(items: Sequence[str]) -> Dict:
    init = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--init expects NAME=VALUE, got {item!r}")
        try:
            init[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            init[name] = value
    return init


class Target:
    """The program to verify: a Python file, or a notebook's code cells joined into one.

    ``script`` is the file the worker imports; messages name ``display`` and, for a notebook,
    ``cell N:line M`` instead of lines of the joined program.
    """

    def __init__(self, display: str, source: str, script: Path, locate: Optional[Callable] = None):
        self.display, self.source, self.script, self._locate = display, source, script, locate

    def where(self, line: int) -> str:
        """``line`` of the program as the user sees it: ``line 12`` or ``cell 3:line 2``."""
        if self._locate is not None:
            try:
                cell, cell_line = self._locate(line)
            except ValueError:
                return f"line {line}"
            return f"cell {cell}:line {cell_line}"
        return f"line {line}"

    def clean(self, text: str) -> str:
        """A worker message with the joined program's path and lines replaced by the user's."""
        if self._locate is None:
            return text
        text = re.sub(r"line (\d+)", lambda m: self.where(int(m.group(1))), text)
        for name in (str(self.script), self.script.name):
            text = text.replace(name, self.display)
        return text


def _syntax_error(target: Target, exc: SyntaxError) -> str:
    where = target.where(exc.lineno) if exc.lineno else "unknown line"
    return f"syntax error at {where}: {exc.msg}"


def run_verify(
    path: str,
    layer: Optional[str] = None,
    backend: Optional[str] = None,
    init: Optional[Dict] = None,
    modes: Optional[Sequence[str]] = None,
    out=None,
    err=None,
) -> int:
    """Probe the decoder layer class defined in ``path``; print what ran and a table."""
    out = out or sys.stdout
    err = err or sys.stderr
    file = Path(path)
    try:
        if file.suffix == ".ipynb":
            return _verify_notebook(file, layer, backend, init, modes, out)
        try:
            source = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CannotVerify(getattr(exc, "strerror", None) or str(exc)) from None
        return _verify(Target(str(path), source, file), layer, backend, init, modes, out)
    except CannotVerify as exc:
        print(f"maskfix verify: cannot verify {path}: {exc}", file=err)
        return EXIT_CANNOT_RUN


def _choose_layer(target: Target, layer: Optional[str]) -> str:
    if layer is None:
        candidates = find_decoder_classes(target.source)
        if len(candidates) != 1:
            found = ", ".join(candidates) or "none"
            raise CannotVerify(f"need exactly one decoder class (call with two tensors and a "
                               f"MultiHeadAttention), found: {found}; choose one with --layer")
        return candidates[0]
    reason = why_not_a_decoder(target.source, layer)
    if reason:
        raise CannotVerify(f"--layer {layer}: {reason}")
    return layer


def _verify(target: Target, layer, backend, init, modes, out) -> int:
    try:
        runtime = detect_runtime(target.source, backend)
    except SyntaxError as exc:
        raise CannotVerify(_syntax_error(target, exc)) from None
    except ValueError as exc:
        raise CannotVerify(str(exc)) from None
    missing = missing_modules(runtime)
    if missing:
        raise CannotVerify(install_hint(runtime, missing))
    layer = _choose_layer(target, layer)
    task = {"kind": "layer_probes", "layer": layer, "init": init or {}, "modes": list(modes or [])}
    try:
        result = run_jobs(runtime, [{"path": str(target.script), "tasks": [task]}])
    except RuntimeError as exc:
        raise CannotVerify(target.clean(str(exc))) from None
    job = result["jobs"][0]
    print(f"Runtime: {result['runtime']}", file=out)
    if "error" in job:
        raise CannotVerify(target.clean(job["error"]))
    print(f"Executed from {target.display} (definitions only, no top-level code):", file=out)
    for line in job["executed"]:
        print(f"  {target.clean(line)}", file=out)
    # A notebook's IPython lines stand in the joined program as `pass  # <tag>: magic N`.
    skipped = [line for line in job["skipped"] if not _MAGIC_PLACEHOLDER.search(line)]
    if skipped:
        print("Skipped (not executed):", file=out)
        for line in skipped:
            print(f"  {target.clean(line)}", file=out)
    done = job["tasks"][0]
    if "error" in done:
        raise CannotVerify(f"could not probe {layer}: {target.clean(done['error'])}")
    results = [ProbeResult.from_dict(d) for d in done["probes"]]
    print(f"\nProbes on {done['layer']} (width {done.get('width', '?')}):", file=out)
    print(format_table(results, reason_width=1000), file=out)
    failed = [r for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed", file=out)
    return EXIT_PROBE_FAILED if failed else EXIT_OK


def _verify_notebook(file: Path, layer, backend, init, modes, out) -> int:
    """A notebook's code cells, as one program, probed like a file (IPython lines never run)."""
    from maskfix.notebook import Notebook, NotebookError

    try:
        notebook = Notebook.parse(file.read_bytes())
    except OSError as exc:
        raise CannotVerify(exc.strerror or str(exc)) from None
    except NotebookError as exc:
        raise CannotVerify(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="maskfix-verify-") as tmp:
        script = Path(tmp) / f"{file.stem}.py"
        script.write_text(notebook.source)
        print(f"Notebook {file}: its code cells joined into one program; IPython magics and "
              "shell lines are left out", file=out)
        target = Target(str(file), notebook.source, script, notebook.locate)
        return _verify(target, layer, backend, init, modes, out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="Python file or notebook defining the decoder layer")
    parser.add_argument("--layer", help="decoder class name (default: the only class whose call "
                        "takes two tensors and uses MultiHeadAttention)")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="Keras 3 backend (default: $KERAS_BACKEND, else tensorflow)")
    parser.add_argument("--init", action="append", metavar="NAME=VALUE",
                        help="constructor argument for the layer (repeatable); a width argument "
                        "such as dim=8 also sets the width of the probe tensors")
    parser.add_argument("--mode", action="append", choices=("implicit", "explicit"),
                        help="mask passing mode to probe (default: both)")


def main(args: argparse.Namespace) -> int:
    try:
        init = _parse_init(args.init)
    except ValueError as exc:
        print(f"maskfix verify: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    return run_verify(args.file, args.layer, backend=args.backend, init=init, modes=args.mode)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="maskfix verify")
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
