"""Run one transformation of one golden fixture through maskfix and judge the result.

A result is ``pass`` when the transformed program gets the fixture's verdict (the set of codes
with their fixability), every file with a finding passes both screens, the rewritten output
compiles, and rewriting it again changes nothing and finds nothing; ``n/a`` when the
transformation does not apply; otherwise ``fail`` with the first reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Tuple

from maskfix import engine
from maskfix.notebook import Notebook
from maskfix.prefilter import Imports, might_match
from maskfix.screen import worth_parsing

from transforms import TRANSFORMS, Files

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VARIANTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "before.py").exists())

Verdict = FrozenSet[Tuple[str, bool]]


@dataclass
class Result:
    status: str  # "pass", "n/a" or "fail"
    reason: str = ""
    files: Files = field(default_factory=dict)  # the transformed program
    fixed: Files = field(default_factory=dict)  # its rewrite, Python text per key


@lru_cache(maxsize=None)
def source_of(variant: str) -> str:
    with open(FIXTURES / variant / "before.py", newline="") as fh:
        return fh.read()


def verdict(outcomes: Dict[str, engine.Outcome]) -> Verdict:
    return frozenset((f.code, f.fixable) for o in outcomes.values() for f in o.findings)


@lru_cache(maxsize=None)
def fixture_verdict(variant: str) -> Verdict:
    """The golden verdict, from the fixture's expected.txt (``LINE:COL: CODE [*]`` per finding)."""
    text = (FIXTURES / variant / "expected.txt").read_text()
    return frozenset((line.split()[1], line.endswith("[*]")) for line in text.splitlines() if line.strip())


def show(v: Verdict) -> str:
    return "{" + ", ".join(f"{c}{' [*]' if fx else ''}" for c, fx in sorted(v)) + "}"


def _python(files: Files) -> Tuple[Dict[str, str], Dict[str, Notebook]]:
    sources, notebooks = {}, {}
    for key, text in files.items():
        if key.endswith(".ipynb"):
            nb = notebooks[key] = Notebook.parse(text)
            sources[key] = nb.source
        else:
            sources[key] = text
    return sources, notebooks


def _compiles(sources: Dict[str, str]) -> Optional[str]:
    for key, text in sources.items():
        try:
            compile(text, key, "exec")
        except SyntaxError as exc:
            return f"{key} does not compile: {exc.msg} at line {exc.lineno}"
    return None


@lru_cache(maxsize=None)
def transformed(variant: str, transform: str) -> Optional[Files]:
    """The fixture rewritten by the transformation, None when it does not apply (no analysis run)."""
    return TRANSFORMS[transform](source_of(variant))


@lru_cache(maxsize=None)
def evaluate(variant: str, transform: str) -> Result:
    files = transformed(variant, transform)
    if files is None:
        return Result("n/a")
    sources, notebooks = _python(files)
    problem = _compiles(sources)
    if problem:
        return Result("fail", "transformation bug: " + problem, files)
    out = engine.run(sources, fix=True)
    errors = [f"{k}: {o.error}" for k, o in out.items() if o.error]
    if errors:
        return Result("fail", errors[0], files)
    want, got = fixture_verdict(variant), verdict(out)
    if got != want:
        return Result("fail", f"verdict {show(got)}, expected {show(want)}", files)
    passes = {k: might_match(files[k].encode(), notebook=k.endswith(".ipynb")) and worth_parsing(sources[k])
              for k in files}
    # the CLI's second round also keeps a file that defines what a screened file imports
    wanted = Imports()
    for k in files:
        if passes[k] and not k.endswith(".ipynb"):
            wanted.add(files[k].encode())
    for key, o in out.items():
        # A file that only calls an imported decoder (MF002) is kept by name, not by the screens.
        if any(f.code != "MF002" for f in o.findings):
            raw = files[key].encode()
            if not key.endswith(".ipynb") and not passes[key] and wanted.wants(raw, key):
                continue
            if not might_match(raw, notebook=key.endswith(".ipynb")):
                return Result("fail", f"{key}: the byte prefilter drops a file with findings", files)
            if not worth_parsing(sources[key]):
                return Result("fail", f"{key}: the ast screen drops a file with findings", files)
    fixed = {k: (o.new_source if o.new_source is not None else sources[k]) for k, o in out.items()}
    changed = [k for k, o in out.items() if o.new_source is not None]
    fixable = any(fx for _, fx in want)
    if fixable and not changed:
        return Result("fail", "a fixable finding but no rewrite", files)
    if not fixable and changed:
        return Result("fail", f"{changed[0]} rewritten although nothing is fixable", files)
    if not changed:
        return Result("pass", files=files, fixed=fixed)
    problem = _compiles({k: fixed[k] for k in changed})
    if problem:
        return Result("fail", "rewrite output: " + problem, files, fixed)
    for key in changed:
        if key in notebooks:
            Notebook.parse(notebooks[key].with_source(fixed[key]))  # the cells map back
    again = engine.run(fixed, fix=True)
    if any(o.new_source is not None for o in again.values()):
        return Result("fail", "rewriting the output changes it again", files, fixed)
    left = sorted({f.code for o in again.values() for f in o.findings})
    if left:
        return Result("fail", f"the rewritten output still has {', '.join(left)}", files, fixed)
    return Result("pass", files=files, fixed=fixed)


def matrix(variants: List[str] = VARIANTS) -> Dict[Tuple[str, str], Result]:
    return {(v, t): evaluate(v, t) for v in variants for t in TRANSFORMS}
