"""``maskfix verify FILE [--layer NAME]``: run the decoder-layer probes on a file's decoder class.

Exit status: 0 every probe passed, 1 a probe failed, 2 the probes could not run.
"""
from __future__ import annotations

import argparse
import ast
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

from maskfix.verify.loader import find_decoder_classes
from maskfix.verify.results import ProbeResult, format_table
from maskfix.verify.runtime import BACKENDS, detect_runtime, run_jobs

EXIT_OK, EXIT_PROBE_FAILED, EXIT_CANNOT_RUN = 0, 1, 2


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


def run_verify(
    path: str,
    layer: Optional[str] = None,
    backend: Optional[str] = None,
    init: Optional[Dict] = None,
    modes: Optional[Sequence[str]] = None,
    out=None,
) -> int:
    """Probe the decoder layer class defined in ``path``; print what ran and a table."""
    out = out or sys.stdout
    file = Path(path)
    if file.suffix == ".ipynb":
        return _verify_notebook(file, layer, backend, init, modes, out)
    try:
        source = file.read_text()
        runtime = detect_runtime(source, backend)
    except (OSError, SyntaxError, ValueError) as exc:
        print(f"maskfix verify: cannot verify {path}: {exc}", file=out)
        return EXIT_CANNOT_RUN
    if layer is None:
        candidates = find_decoder_classes(source)
        if len(candidates) != 1:
            found = ", ".join(candidates) or "none"
            print(f"maskfix verify: need exactly one decoder class (call with two tensors and a "
                  f"MultiHeadAttention), found: {found}; choose one with --layer", file=out)
            return EXIT_CANNOT_RUN
        layer = candidates[0]
    task = {"kind": "layer_probes", "layer": layer, "init": init or {}, "modes": list(modes or [])}
    try:
        result = run_jobs(runtime, [{"path": str(file), "tasks": [task]}])
    except RuntimeError as exc:
        print(f"maskfix verify: {exc}", file=out)
        return EXIT_CANNOT_RUN
    job = result["jobs"][0]
    print(f"Runtime: {result['runtime']}", file=out)
    if "error" in job:
        print(f"maskfix verify: {job['error']}", file=out)
        return EXIT_CANNOT_RUN
    print(f"Executed from {path} (definitions only, no top-level code):", file=out)
    for line in job["executed"]:
        print(f"  {line}", file=out)
    if job["skipped"]:
        print("Skipped (not executed):", file=out)
        for line in job["skipped"]:
            print(f"  {line}", file=out)
    done = job["tasks"][0]
    if "error" in done:
        print(f"maskfix verify: could not probe {layer}: {done['error']}", file=out)
        return EXIT_CANNOT_RUN
    results = [ProbeResult.from_dict(d) for d in done["probes"]]
    print(f"\nProbes on {done['layer']}:", file=out)
    print(format_table(results, reason_width=1000), file=out)
    failed = [r for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed", file=out)
    return EXIT_PROBE_FAILED if failed else EXIT_OK


def _verify_notebook(file: Path, layer, backend, init, modes, out) -> int:
    """A notebook's code cells, as one program, probed like a file (IPython lines never run)."""
    from maskfix.notebook import Notebook, NotebookError

    try:
        source = Notebook.parse(file.read_bytes()).source
    except (OSError, NotebookError) as exc:
        print(f"maskfix verify: cannot verify {file}: {exc}", file=out)
        return EXIT_CANNOT_RUN
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / f"{file.stem}.py"
        script.write_text(source)
        print(f"Notebook {file}: its code cells joined into one program; IPython magics and "
              "shell lines are left out", file=out)
        return run_verify(str(script), layer, backend=backend, init=init, modes=modes, out=out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="Python file defining the decoder layer")
    parser.add_argument("--layer", help="decoder class name (default: the only class whose call "
                        "takes two tensors and uses MultiHeadAttention)")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="Keras 3 backend (default: $KERAS_BACKEND, else tensorflow)")
    parser.add_argument("--init", action="append", metavar="NAME=VALUE",
                        help="constructor argument for the layer (repeatable)")
    parser.add_argument("--mode", action="append", choices=("implicit", "explicit"),
                        help="mask passing mode to probe (default: both)")


def main(args: argparse.Namespace) -> int:
    try:
        init = _parse_init(args.init)
    except ValueError as exc:
        print(f"maskfix verify: {exc}")
        return EXIT_CANNOT_RUN
    return run_verify(args.file, args.layer, backend=args.backend, init=init, modes=args.mode)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="maskfix verify")
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
