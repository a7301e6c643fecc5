"""Large files reach LibCST sliced (maskfix.slicing); the verdict must not depend on it.

Every golden fixture, and the metamorphic transformations that spread a decoder over helpers
and files, is padded with unrelated definitions between its top-level statements, then run with
slicing forced on and off: findings (codes, lines, columns, messages), rewrites and errors must
be identical, and slicing must actually have dropped the padding.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from maskfix import engine, limits, slicing

sys.path.insert(0, str(Path(__file__).parent / "metamorphic"))
from transforms import TRANSFORMS  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
VARIANTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "before.py").exists())
SHAPES = ["identity", "sibling_module", "extract_module_function"]


def pad(source: str, seed: int = 0) -> str:
    """``source`` with unrelated top-level functions and classes before, between and after its statements."""
    lines = source.splitlines(True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"
    tree = ast.parse(source)
    cuts = {min([s.lineno] + [d.lineno for d in getattr(s, "decorator_list", [])]) - 1 for s in tree.body[1:]}
    out = []
    for i, line in enumerate(lines):
        if i in cuts or i == 0:
            out.append(_filler(seed + i))
        out.append(line)
    out.append(_filler(seed + len(lines)))
    return "".join(out)


def _filler(n: int) -> str:
    return (f"def pad_fn_{n}(a, b={n % 7}):\n    total = [a * b for _ in range(b)]\n    return sum(total)\n\n\n"
            f"class PadThing{n}:\n    size = {n}\n\n    def grow(self, k):\n        return self.size + k\n\n\n")


def outcome_view(outcomes):
    return {key: (o.error, [(f.code, f.line, f.column, f.message, f.fixable) for f in o.findings], o.new_source,
                  sorted(o.decoders), o.notes) for key, o in outcomes.items()}


def both_ways(monkeypatch, files):
    seen = []
    real = slicing.drop_unrelated

    def counting(hidden, elsewhere=frozenset()):
        n = real(hidden, elsewhere)
        seen.append(n)
        return n

    monkeypatch.setattr(slicing, "drop_unrelated", counting)
    monkeypatch.setattr(slicing, "SLICE_BYTES", 0)
    sliced = outcome_view(engine.run(files, fix=True))  # findings as well as the rewrite
    monkeypatch.setattr(slicing, "SLICE_BYTES", 1 << 60)
    whole = outcome_view(engine.run(files, fix=True))
    return sliced, whole, seen


def python_files(variant, shape):
    source = (FIXTURES / variant / "before.py").read_text()
    files = {"before.py": source} if shape == "identity" else TRANSFORMS[shape](source)
    if not files:
        return None
    files = {k: v for k, v in files.items() if k.endswith(".py")}
    return {k: pad(v, seed=100 * i) for i, (k, v) in enumerate(files.items())} or None


# every fixture as it is; the transformations of every third one with a fix, to keep the suite quick
FIXABLE = [v for v in VARIANTS if (FIXTURES / v / "after.py").exists()]
CASES = [(v, "identity") for v in VARIANTS] + [(v, shape) for shape in SHAPES[1:] for v in FIXABLE[::3]]


@pytest.mark.parametrize("variant, shape", CASES)
def test_slicing_never_changes_the_verdict(monkeypatch, variant, shape):
    files = python_files(variant, shape)
    if files is None:
        pytest.skip("transformation does not apply")
    sliced, whole, dropped = both_ways(monkeypatch, files)
    assert sliced == whole
    assert sum(dropped) > 0  # the padding was set aside, so the comparison means something


def test_padding_is_dropped_and_restored_byte_for_byte(monkeypatch):
    source = pad((FIXTURES / "raw_mask" / "before.py").read_text())
    hidden = limits.hide_deep_statements(source, ast.parse(source))
    assert slicing.drop_unrelated(hidden) > 0
    assert "pad_fn_" not in hidden.source and "class Decoder" in hidden.source
    assert hidden.restore(hidden.source) == source


def test_a_definition_named_in_another_file_is_kept():
    source = pad((FIXTURES / "raw_mask" / "before.py").read_text())
    hidden = limits.hide_deep_statements(source, ast.parse(source))
    slicing.drop_unrelated(hidden, {"pad_fn_0"})
    assert "def pad_fn_0(" in hidden.source and "PadThing0" not in hidden.source


def test_helpers_reached_only_by_name_are_kept():
    source = (
        "import tensorflow as tf\n\n\n"
        "def unrelated(x):\n    return x + 1\n\n\n"
        "def tri(n):\n    return tf.linalg.band_part(tf.ones((n, n)), -1, 0)\n\n\n"
        "def shape_of(t):\n    return tf.shape(t)[1]\n\n\n"
        "def look_ahead(t):\n    return tri(shape_of(t))\n"
    )
    hidden = limits.hide_deep_statements(source, ast.parse(source))
    assert slicing.drop_unrelated(hidden) == 1
    assert "def shape_of" in hidden.source and "def unrelated" not in hidden.source

