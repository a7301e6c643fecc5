"""How the cost of one file holding a decoder grows with the file's size.

Usage: ``python bench/decoder_file.py [--sizes 100e3,300e3,1e6] [--rounds N]``

Each file is the buggy ``raw_mask`` fixture followed by ordinary code (functions
and small classes) up to the given size.  For each size the script times, in
fresh processes, ``maskfix check`` and ``maskfix rewrite --diff`` (both
``--no-cache``) and ``ruff check --select E9 --no-cache``, and in this process
Python's own ``ast.parse`` of the file, the floor of any analysis in Python.
Medians of ``--rounds`` runs; seconds and seconds per MB.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import compile_maskfix

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100e3,300e3,1e6")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"maskfix imported from {compile_maskfix()} (byte-compiled first)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(float(s)) for s in args.sizes.split(",")):
            path = Path(tmp) / f"decoder_{size}.py"
            source = make(size)
            path.write_text(source)
            mb = len(source.encode()) / 1e6
            check, diff, ruff, parse = [], [], [], []
            for _ in range(args.rounds):
                check.append(timed([sys.executable, "-m", "maskfix", "check", "--no-cache", "-q", str(path)]))
                diff.append(timed([sys.executable, "-m", "maskfix", "rewrite", "--no-cache", "--diff", "-q",
                                   str(path)]))
                ruff.append(timed(["ruff", "check", "--select", "E9", "--no-cache", "-q", str(path)]))
                start = time.perf_counter()
                ast.parse(source)
                parse.append(time.perf_counter() - start)
            med = [statistics.median(x) for x in (check, diff, ruff, parse)]
            rows.append((mb, *med))
    print("| size MB | check s | rewrite --diff s | check s/MB | ruff E9 s | check / ruff | Python's ast.parse s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mb, check, diff, ruff, parse in rows:
        print(f"| {mb:.2f} | {check:.2f} | {diff:.2f} | {check / mb:.2f} | {ruff:.3f} | {check / ruff:.1f} "
              f"| {parse:.2f} |")


if __name__ == "__main__":
    main()
