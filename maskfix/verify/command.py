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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

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
    train: bool = False,
    plot: Optional[str] = None,
    seed: int = 0,
    epochs: Optional[int] = None,
    progress: Optional[Callable[[str], None]] = None,
    model: bool = False,
) -> int:
    """Probe the decoder layer class defined in ``path``; print what ran and a table.

    ``train``: also train the file's ``build_model`` briefly, as written and as ``maskfix
    rewrite`` fixes it, on length-bucketed batches, and print validation per length-ratio bucket.
    ``plot``: also measure the layer's influence matrices, as written and rewritten, and draw
    them to that PNG. ``progress`` receives progress lines of the training. ``model``: probe the
    file's ``build_model`` on token ids instead of one layer, for masks its helpers build from ids.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    file = Path(path)
    options = Options(layer, backend, init or {}, list(modes or []), train, plot, seed, epochs, progress, model)
    try:
        if file.suffix == ".ipynb":
            return _verify_notebook(file, options, out)
        try:
            source = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CannotVerify(getattr(exc, "strerror", None) or str(exc)) from None
        return _verify(Target(str(path), source, file), options, out)
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


@dataclass
class Options:
    layer: Optional[str]
    backend: Optional[str]
    init: Dict
    modes: List[str]
    train: bool
    plot: Optional[str]
    seed: int
    epochs: Optional[int]
    progress: Optional[Callable[[str], None]]
    model: bool = False


def _rewritten(target: Target, tmp: Path) -> Optional[Path]:
    """The program as ``maskfix rewrite`` fixes it, written next to nothing the user owns."""
    from maskfix.engine import rewrite_source

    try:
        fixed = rewrite_source(target.source)
    except ValueError as exc:
        raise CannotVerify(f"maskfix rewrite cannot fix it: {exc}") from None
    if fixed == target.source:
        return None
    path = tmp / f"{target.script.stem}_rewritten.py"
    path.write_text(fixed)
    return path


def _verify(target: Target, options: "Options", out) -> int:
    with tempfile.TemporaryDirectory(prefix="maskfix-verify-") as tmp:
        return _verify_in(target, options, out, Path(tmp))


def _verify_in(target: Target, options: "Options", out, tmp: Path) -> int:
    layer, init, modes = options.layer, options.init, options.modes
    if options.plot:
        plot_dir = Path(options.plot).resolve().parent
        if not plot_dir.is_dir():
            raise CannotVerify(f"--plot {options.plot}: folder {plot_dir} does not exist")
    try:
        runtime = detect_runtime(target.source, options.backend)
    except SyntaxError as exc:
        raise CannotVerify(_syntax_error(target, exc)) from None
    except ValueError as exc:
        raise CannotVerify(str(exc)) from None
    missing = missing_modules(runtime)
    if missing:
        raise CannotVerify(install_hint(runtime, missing))
    if options.model:
        if layer or options.plot or modes:
            raise CannotVerify("--model probes build_model as a whole: it takes no --layer, --mode or --plot")
        task = {"kind": "model_probes"}
    else:
        layer = _choose_layer(target, layer)
        task = {"kind": "layer_probes", "layer": layer, "init": init or {}, "modes": list(modes or [])}
    jobs = [{"path": str(target.script), "tasks": [task]}]
    fixed = _rewritten(target, tmp) if options.train or options.plot else None
    if fixed is not None:
        jobs.append({"path": str(fixed), "tasks": []})
    if options.train:
        train = {"kind": "train_ratio", "seed": options.seed}
        if options.epochs:
            train["epochs"] = options.epochs
        for job, name in zip(jobs, ("original: ", "rewritten: ")):
            job["tasks"].append(dict(train, label=name))
    if options.plot:
        for job in jobs:
            job["tasks"].append({"kind": "influence", "layer": layer, "init": init or {}})
    try:
        # Training takes minutes on a busy machine; probes alone take seconds.
        result = run_jobs(runtime, jobs, timeout=3600 if options.train else 600, progress=options.progress)
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
        raise CannotVerify(f"could not probe {layer or 'build_model'}: {target.clean(done['error'])}")
    results = [ProbeResult.from_dict(d) for d in done["probes"]]
    if options.model:
        print("\nProbes on the model of build_model, fed token ids:", file=out)
    else:
        print(f"\nProbes on {done['layer']} (width {done.get('width', '?')}):", file=out)
    print(format_table(results, reason_width=1000), file=out)
    failed = [r for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed", file=out)
    if fixed is None and (options.train or options.plot):
        print("\nmaskfix rewrite changes nothing in this file: the figures below are for the file "
              "as written only", file=out)
    jobs_done = result["jobs"]
    for job in jobs_done[1:]:
        if "error" in job:
            raise CannotVerify(f"the rewritten program could not be imported: {target.clean(job['error'])}")
    if options.train:
        runs = [_task(target, job, "train_ratio") for job in jobs_done]
        print("", file=out)
        print(format_ratio_table(runs, ["as written", "rewritten"][: len(runs)], result["runtime"]), file=out)
    if options.plot:
        from maskfix.verify.plots import plot_influence

        panels = [(name, _task(target, job, "influence"))
                  for name, job in zip(("as written", "rewritten by maskfix"), jobs_done)]
        try:
            title = f"{Path(target.display).name}: {layer} ({result['runtime']})"
            plot_influence(panels, Path(options.plot), title=title)
        except (RuntimeError, OSError) as exc:
            raise CannotVerify(f"--plot {options.plot}: {exc}") from None
        print(f"\nInfluence heatmaps written to {options.plot}", file=out)
    return EXIT_PROBE_FAILED if failed else EXIT_OK


def _task(target: Target, job: dict, kind: str) -> dict:
    done = next(t for t in job["tasks"] if t["kind"] == kind)
    if "error" in done:
        raise CannotVerify(f"{kind.replace('_', ' ')} failed: {target.clean(done['error'])}")
    return done.get("metrics", done)


def describe_crash(crash: dict) -> str:
    shape = f" (S={crash['shape'][0]}, T={crash['shape'][1]})" if crash.get("shape") else ""
    return f"crashed at epoch {crash['epoch'] + 1}, batch {crash['batch'] + 1}{shape}: {crash['error']}"


def format_ratio_table(runs: Sequence[dict], names: Sequence[str], runtime: str = "") -> str:
    """Validation loss and token accuracy per length-ratio bucket, one column pair per run."""
    first = runs[0]
    shapes = first["epoch0_shapes"]
    lines = [
        f"Training ({runtime}; seed {first['seed']}, {first['epochs']} epochs, {first['train_pairs']} pairs "
        f"in {len(shapes)} length-bucketed batches per epoch, {first['epoch0_unequal']} of them with S != T; "
        f"validation: {first['per_bucket']} pairs per ratio bucket):",
    ]
    header = ["ratio bucket", "majority baseline"] + [f"{n} loss / acc" for n in names]
    rows = []
    buckets = next((r["buckets"] for r in runs if "buckets" in r), [])
    for i, b in enumerate(buckets):
        cells = [b["bucket"], f"{b['baseline']:.2f}" if "baseline" in b else "-"]
        for run in runs:
            if "crash" in run:
                cells.append("(training crashed)")
                continue
            row = run["buckets"][i]
            cells.append(f"crashed: {row['error']}" if "error" in row else
                         f"{row['loss']:.2f} / {row['accuracy']:.2f}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for name, run in zip(names, runs):
        if "crash" in run:
            lines.append(f"{name}: {describe_crash(run['crash'])}")
        else:
            lines.append(f"{name}: training loss {run['loss_first']:.2f} -> {run['loss_last']:.2f}")
    return "\n".join(lines)


def _verify_notebook(file: Path, options: "Options", out) -> int:
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
        return _verify_in(target, options, out, Path(tmp))


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
    parser.add_argument("--train", action="store_true",
                        help="also train the file's build_model briefly, as written and as rewritten "
                        "by maskfix, on length-bucketed batches; print validation per length ratio")
    parser.add_argument("--plot", metavar="OUT.png",
                        help="also measure which source positions and decoder steps move each output "
                        "step, as written and rewritten, and draw the heatmaps to OUT.png")
    parser.add_argument("--model", action="store_true",
                        help="probe the file's build_model(src_vocab_size, tgt_vocab_size, ...) on token "
                        "ids instead of one layer (masks built from the ids by the file's own helpers)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --train (default 0)")
    parser.add_argument("--epochs", type=int, help="epochs of --train (default 4)")


def main(args: argparse.Namespace) -> int:
    try:
        init = _parse_init(args.init)
    except ValueError as exc:
        print(f"maskfix verify: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    progress = _Progress()
    try:
        return run_verify(args.file, args.layer, backend=args.backend, init=init, modes=args.mode,
                          train=args.train, plot=args.plot, seed=args.seed, epochs=args.epochs,
                          progress=progress if progress.enabled else None, model=args.model)
    finally:
        progress.done()


class _Progress:
    """A self-erasing progress line on a terminal (training takes minutes)."""

    def __init__(self):
        import os

        self.enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.shown = False

    def __call__(self, line: str) -> None:
        self.shown = True
        sys.stderr.write(f"\rmaskfix verify: {line}\x1b[K")
        sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="maskfix verify")
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
