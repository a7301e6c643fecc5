"""How the cost of one file holding a decoder grows with the file's size.

Usage: ``python bench/decoder_file.py [--sizes 100e3,300e3,860e3] [--rounds N]``

Each file is the buggy ``raw_mask`` fixture followed by ordinary code (functions
and small classes) up to the given size.  For each size the script times, in
fresh processes, ``maskfix check`` and ``maskfix rewrite --diff``, and, in this
process, LibCST's parse and resolving ``PositionProvider`` over the whole module
(what reporting a finding used to cost) against ``maskfix.positions.LazyPositions``
(what it costs now).  Medians of ``--rounds`` runs; seconds and seconds per MB.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DECODER = ROOT / "tests" / "fixtures" / "raw_mask" / "before.py"


def filler(i: int) -> str:
    return (f"\n\ndef helper_{i}(x, y=None):\n    \"\"\"Doc {i}.\"\"\"\n    total = 0\n    for k in range(10):\n"
            f"        total += k * x + (y or 0)\n    if total > {i}:\n        return [total, x, {{'a': {i}}}]\n"
            f"    return helper_{i}(x - 1, y)\n\n\nclass Thing{i}:\n    def __init__(self, n):\n        self.n = n\n\n"
            f"    def run(self, data):\n        return sorted(d * self.n for d in data if d)\n")


def make(size: int) -> str:
    parts, n, i = [DECODER.read_text()], 0, 0
    n = len(parts[0])
    while n < size:
        parts.append(filler(i))
        n += len(parts[-1])
        i += 1
    return "".join(parts)


def timed(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def in_process(source: str):
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    from maskfix import engine, limits
    from maskfix.positions import LazyPositions
    from maskfix.syntax import forget_trees, index_tree

    def go():
        t0 = time.perf_counter()
        module = cst.parse_module(source)
        t1 = time.perf_counter()
        MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        t2 = time.perf_counter()
        index_tree(module)
        facts = engine.analyze_module(module)
        tree = limits.parse_python(source)
        t3 = time.perf_counter()
        lazy = LazyPositions(module, tree)
        for dec in facts.decoders:
            lazy[dec.cross_attention.call]
        t4 = time.perf_counter()
        forget_trees()
        return t1 - t0, t2 - t1, t4 - t3

    return limits.call_with_deep_stack(go)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100e3,300e3,860e3")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(float(s)) for s in args.sizes.split(",")):
            path = Path(tmp) / f"decoder_{size}.py"
            source = make(size)
            path.write_text(source)
            mb = len(source.encode()) / 1e6
            check, diff, parse, whole, lazy = [], [], [], [], []
            for _ in range(args.rounds):
                check.append(timed([sys.executable, "-m", "maskfix", "check", "-q", str(path)]))
                diff.append(timed([sys.executable, "-m", "maskfix", "rewrite", "--diff", "-q", str(path)]))
                p, w, z = in_process(source)
                parse.append(p)
                whole.append(w)
                lazy.append(z)
            med = [statistics.median(x) for x in (check, diff, parse, whole, lazy)]
            rows.append((mb, *med))
    print("| size MB | check s | rewrite --diff s | check s/MB | LibCST parse s | whole-module positions s "
          "| positions for the finding s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mb, check, diff, parse, whole, lazy in rows:
        print(f"| {mb:.2f} | {check:.2f} | {diff:.2f} | {check / mb:.1f} | {parse:.2f} | {whole:.2f} | {lazy:.3f} |")


if __name__ == "__main__":
    main()
