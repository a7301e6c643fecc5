"""Benchmark maskfix against ruff and grep on a large real tree, plus the runtime cost of the fix.

Usage: ``python bench/run.py [--rounds N] [--skip-train] [--skip-lint] [--latency-only] [--keep DIR]``

Lint part.  The tree is rebuilt from the installed distributions every time:
every ``.py``/``.pyi``/``.ipynb`` file listed in the RECORD of ``tensorflow``,
``keras``, ``tf_keras``, ``keras_hub`` and ``transformers`` and of all their
(transitive) requirements, copied with its path relative to site-packages.  A
second tree holds three copies of it, to show how cost scales.  ``maskfix
check`` cold (``--no-cache``, as ruff runs) and warm (its screen cache filled by
an earlier run), ``maskfix rewrite`` (on a private copy, after one untimed run
so there is nothing left to fix), ``ruff check --select E9 --no-cache`` and
``grep -rl MultiHeadAttention`` are run interleaved, warm page cache; medians,
ratios and peak RSS (from ``wait4``) are printed.  Then the latency of a
pre-commit run: three small files, and two of them with a decoder file.

Train part.  Times a training step of the buggy Keras 3 example decoder and of
its ``maskfix rewrite`` output at equal source/target lengths, alternating
blocks of steps in one process (TensorFlow backend), and prints the median
ratio.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ("tensorflow", "keras", "tf_keras", "keras_hub", "transformers")
SUFFIXES = (".py", ".pyi", ".ipynb")


# ---------------------------------------------------------------- the tree


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(seeds=SEEDS):
    """The seed distributions and everything they require (no extras)."""
    from packaging.requirements import Requirement

    todo, found = list(seeds), {}
    while todo:
        name = todo.pop()
        if _norm(name) in found:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        found[_norm(name)] = dist
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return found


def build_tree(dest: Path):
    """Copy the source files of those distributions into ``dest``; return (names, files, bytes)."""
    dists = distributions()
    n = size = 0
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        for f in dist.files or ():
            if not str(f).endswith(SUFFIXES) or ".." in f.parts:
                continue
            src = base / f
            if not src.is_file():
                continue
            out = dest / f
            if out.exists():
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
            n += 1
            size += out.stat().st_size
    return sorted(f"{d.metadata['Name']}=={d.version}" for d in dists.values()), n, size


# ---------------------------------------------------------------- timing


def timed(cmd, cwd=None):
    """Run ``cmd``; return (wall seconds, peak RSS in MB, exit code, stdout, CPU seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_* of wait4 cover the child only; CPU time also counts its worker processes.
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, usage.ru_maxrss / 1024, proc.returncode, out.decode(errors="replace"), cpu


def compile_maskfix() -> Path:
    """Byte-compile the maskfix that ``python -m maskfix`` will import, as an installed package is.

    pip compiles a package when it installs it; an editable install compiles on first import, unless
    PYTHONDONTWRITEBYTECODE is set (as on some machines): then every run would also time the
    compilation of maskfix's own sources, which no installed copy pays.
    """
    import compileall

    import maskfix

    package = Path(maskfix.__file__).resolve().parent
    compileall.compile_dir(str(package), quiet=1)
    return package


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tool_version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "unavailable"


def _table(label, res, baseline=None):
    print(f"\n[{label}] {'tool':<26} {'median s':>9} {'min s':>7} {'CPU s':>7} {'peak RSS MB':>12}")
    med = {n: statistics.median(s for s, _, _ in v) for n, v in res.items()}
    for name, v in res.items():
        cpu = statistics.median(c for _, _, c in v)
        print(f"     {name:<26} {med[name]:9.3f} {min(s for s, _, _ in v):7.3f} {cpu:7.2f} "
              f"{max(m for _, m, _ in v):12.1f}")
    return med


def _rounds(suites, rounds):
    results = {label: {name: [] for name in cmds} for label, cmds in suites.items()}
    for label, cmds in suites.items():
        for cmd in cmds.values():
            timed(cmd)  # warm the page cache, the tools and maskfix's own cache
    for r in range(rounds):
        for label, cmds in suites.items():
            for name, cmd in cmds.items():
                secs, rss, code, _, cpu = timed(cmd)
                results[label][name].append((secs, rss, cpu))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    return results


def lint(args, work: Path):
    tree = work / "tree"
    names, nfiles, nbytes = build_tree(tree)
    print(f"tree: {nfiles} files, {nbytes / 1e6:.1f} MB from {len(names)} distributions")
    print("  " + ", ".join(names))
    big = work / "tree_x3"
    for i in range(3):
        shutil.copytree(tree, big / f"copy{i}")
    fix_tree, fix_big = work / "rewrite", work / "rewrite_x3"
    shutil.copytree(tree, fix_tree)
    shutil.copytree(big, fix_big)
    cache = work / "cache"

    maskfix = [sys.executable, "-m", "maskfix"]
    _, _, code, out, _ = timed(maskfix + ["check", "--no-cache", "--exit-zero", "-q", str(tree)])
    findings = [l for l in out.splitlines() if l.strip()]
    print(f"\nmaskfix check findings on the tree: {len(findings)}")
    for line in findings:
        print("  " + line.replace(str(tree) + os.sep, ""))
    for t in (fix_tree, fix_big):  # afterwards rewrite has nothing left to do
        timed(maskfix + ["rewrite", "--no-cache", "-q", str(t)])
    time.sleep(2.5)  # files younger than the cache's racy window are not cached

    suites = {}
    for label, t, r in (("x1", tree, fix_tree), ("x3", big, fix_big)):
        suites[label] = {
            "maskfix check (cold)": maskfix + ["check", "--no-cache", "--exit-zero", "-q", str(t)],
            "maskfix check -j1 (cold)": maskfix + ["check", "--no-cache", "-j", "1", "--exit-zero", "-q", str(t)],
            "maskfix check (warm)": maskfix + ["check", "--cache-dir", str(cache), "--exit-zero", "-q", str(t)],
            "maskfix rewrite (cold)": maskfix + ["rewrite", "--no-cache", "--exit-zero", "-q", str(r)],
            "ruff E9": ["ruff", "check", "--select", "E9", "--no-cache", "--exit-zero", "-q", str(t)],
            "grep -rl": ["grep", "-rl", "MultiHeadAttention", str(t)],
        }
    results = _rounds(suites, args.rounds)
    print(f"\nmedian of {args.rounds} interleaved runs, warm page cache")
    for label, res in results.items():
        med = _table(label, res)
        check = med["maskfix check (cold)"]
        print(f"     check / ruff E9             {check / med['ruff E9']:.2f}")
        print(f"     check / grep -rl            {check / med['grep -rl']:.2f}")
        print(f"     warm check / grep -rl       {med['maskfix check (warm)'] / med['grep -rl']:.2f}")
        print(f"     rewrite / check             {med['maskfix rewrite (cold)'] / check:.2f}")
        print(f"     check -j1 / check           {med['maskfix check -j1 (cold)'] / check:.2f}")
        results[label] = med
    x1, x3 = results["x1"], results["x3"]
    print("\nscaling x3 / x1: " + ", ".join(f"{n} {x3[n] / x1[n]:.2f}" for n in x1))
    latency(args, work)


SMALL = "import os\n\n\ndef join{n}(x, y):\n    return os.path.join(x, y, {n!r})\n"


def latency(args, work: Path):
    """A pre-commit run: three small files, then the same with one decoder file of about 300 lines."""
    here = work / "latency"
    here.mkdir()
    small = []
    for n in range(3):
        small.append(here / f"small{n}.py")
        small[-1].write_text(SMALL.format(n=n))
    decoder = here / "decoder.py"
    decoder.write_bytes((ROOT / "examples" / "translation_keras3.py").read_bytes())
    lines = decoder.read_text().count("\n")
    maskfix = [sys.executable, "-m", "maskfix", "check", "--exit-zero", "-q"]
    cold = ["--no-cache"]
    suites = {"latency": {
        "python -c pass": [sys.executable, "-c", "pass"],
        "maskfix: 3 small files": maskfix + cold + [str(p) for p in small],
        f"maskfix: + decoder ({lines} lines)": maskfix + cold + [str(p) for p in small[:2]] + [str(decoder)],
        "ruff E9: 3 small files": ["ruff", "check", "--select", "E9", "--no-cache", "-q"] + [str(p) for p in small],
        "grep: 3 small files": ["grep", "-l", "MultiHeadAttention"] + [str(p) for p in small],
    }}
    res = _rounds(suites, max(args.rounds * 4, 10))
    print(f"\nthree files given on the command line, median of {max(args.rounds * 4, 10)} runs")
    med = _table("latency", res["latency"])
    base = med["python -c pass"]
    for name in med:
        if name.startswith("maskfix"):
            print(f"     {name} / ruff            {med[name] / med['ruff E9: 3 small files']:.2f}"
                  f"   (minus interpreter start: {med[name] - base:.3f} s)")


# ---------------------------------------------------------------- train step

TRAIN = r'''
import importlib.util, statistics, sys, time
import numpy as np
import keras

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

orig, fixed = load("orig", sys.argv[1]), load("fixed", sys.argv[2])
L, B, ROUNDS, STEPS = 32, 64, int(sys.argv[3]), 10
enc, dec, tgt = orig.make_corpus(0, B, src_len=L, tgt_len=L, min_words=L // 4)
weights = (tgt != orig.PAD_ID).astype("float32")
models = {}
for name, mod in (("original", orig), ("rewritten", fixed)):
    keras.utils.set_random_seed(0)
    m = mod.build_model(40, 40, embed_dim=128, latent_dim=256, num_heads=4, max_length=L)
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    for _ in range(5):  # trace and warm up
        m.train_on_batch([enc, dec], tgt, sample_weight=weights)
    models[name] = m
times = {n: [] for n in models}
for r in range(ROUNDS):
    order = list(models) if r % 2 == 0 else list(reversed(models))
    for n in order:
        for _ in range(STEPS):
            t = time.perf_counter()
            models[n].train_on_batch([enc, dec], tgt, sample_weight=weights)
            times[n].append(time.perf_counter() - t)
med = {n: statistics.median(v) for n, v in times.items()}
print(f"keras {keras.__version__} backend {keras.backend.backend()}; batch {B}, S = T = {L}, "
      f"embed 128, latent 256, 4 heads; {ROUNDS} x {STEPS} steps each")
for n, v in med.items():
    print(f"  {n:<10} median step {v * 1000:.2f} ms")
print(f"  rewritten / original {med['rewritten'] / med['original']:.3f}")
'''


def train(args, work: Path):
    original = ROOT / "examples" / "translation_keras3.py"
    fixed = work / "translation_keras3_fixed.py"
    with open(original, "rb") as src:
        proc = subprocess.run([sys.executable, "-m", "maskfix", "rewrite", "-q", "-"], stdin=src,
                              capture_output=True)
    fixed.write_bytes(proc.stdout)
    assert b"encoder_padding_mask" in proc.stdout, "the example was not rewritten"
    script = work / "train_step.py"
    script.write_text(TRAIN)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    print("\ntraining step, original vs rewritten example decoder")
    sys.stdout.flush()
    subprocess.run([sys.executable, str(script), str(original), str(fixed), str(args.train_rounds)],
                   env=env, check=True, stderr=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved lint rounds")
    parser.add_argument("--train-rounds", type=int, default=20, help="alternating blocks of 10 steps")
    parser.add_argument("--skip-lint", action="store_true")
    parser.add_argument("--latency-only", action="store_true", help="only the pre-commit latency part")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--keep", metavar="DIR", help="build the trees here and keep them")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}")
    print(f"python {platform.python_version()}; maskfix {md.version('maskfix')}; libcst {md.version('libcst')}; "
          f"{tool_version(['ruff', '--version'])}; {tool_version(['grep', '--version'])}")
    print(f"maskfix imported from {compile_maskfix()} (byte-compiled first)")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="maskfix-bench-"))
    if args.keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.latency_only:
            latency(args, work)
        elif not args.skip_lint:
            lint(args, work)
        if not args.skip_train and not args.latency_only:
            train(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
