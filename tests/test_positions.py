"""Positions resolved per statement match LibCST's positions over the whole module."""

import ast
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from maskfix import limits
from maskfix.positions import LazyPositions
from maskfix.syntax import forget_trees, index_tree

FIXTURES = Path(__file__).parent / "fixtures"

ODD = [
    "# -*- coding: utf-8 -*-\n# header\n\n\n@dec  # c\n# between\n@other(\n    1)\n\nclass A(B):\n    x = 1; y = 2\n",
    "import a; import b\r\nx = (1,\r\n     2)\r\n\r\n\r\nasync def f():\r\n    await g()\r\n# trailing\r\n\r\n",
    "def f():\n\tif x:\n\t\treturn [\n\t\t\t1]\n\n\n\n# footer comment\n",
    "x = 1 \\\n    + 2\nif x:\n    pass\nelif y:\n    pass\nelse:\n    z = '''a\nb'''\n",
    "\n\n\n",
    "s = 'caf\u00e9'; t = '\u00e9\u00e9'\nclass K:\n    '''doc'''\n    @property\n    def p(self): return 1\n",
]


def _sources():
    for path in sorted(FIXTURES.glob("*/*.py")):
        yield path.parent.name + "/" + path.name, path.read_text(encoding="utf-8")
    for i, text in enumerate(ODD):
        yield f"odd{i}", text
    deep = "@dec\nclass A:\n    pass\n\n\nZ = " + " + ".join(["1"] * 300) + "\n\n@dec\ndef f(x=" + "-" * 300 + "y):\n    pass\nW = 1\n"
    yield "deep", deep


@pytest.mark.parametrize("name,source", list(_sources()), ids=[n for n, _ in _sources()])
def test_lazy_positions_match_the_whole_module(name, source):
    tree = limits.parse_python(source)
    hidden = limits.hide_deep_statements(source, tree) if tree is not None else limits.Hidden(source)
    module = cst.parse_module(hidden.source)
    index_tree(module)
    try:
        whole = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        lazy = LazyPositions(module, hidden.tree)
        assert lazy._anchor_lines is not None  # the per-statement path was taken
        for node, expected in whole.items():
            assert lazy[node] == expected, (name, type(node).__name__)
    finally:
        forget_trees()


def test_a_source_without_noqa_lays_out_only_the_statements_it_reports(monkeypatch):
    """Whether a ``# noqa`` suppresses a problem is asked of every candidate; without one in the
    file the answer needs no position, and only the reported statements are laid out."""
    from maskfix import engine

    source = (Path(__file__).parent.parent / "examples" / "translation_keras3.py").read_text(encoding="utf-8")
    laid = []
    lay_out = LazyPositions._lay_out
    monkeypatch.setattr(LazyPositions, "_lay_out", lambda self, i: laid.append(i) or lay_out(self, i))
    findings = engine.check_source(source)
    assert findings
    top = ast.parse(source).body
    reported = {next(i for i, s in enumerate(top) if s.lineno <= f.line <= s.end_lineno) for f in findings}
    assert sorted(laid) == sorted(reported)

    laid.clear()  # with a ``# noqa`` anywhere, the candidates' statements are read too
    assert engine.check_source(source + "# noqa: MF999\n") == findings
    assert set(laid) > reported


def test_positions_are_resolved_without_rebuilding_the_module(monkeypatch):
    """LibCST's resolver visits the whole module after the positions, for batched providers that
    are not there; the visit rebuilds every node.  ``resolve_positions`` skips it, same positions."""
    from maskfix.positions import resolve_positions

    source = (FIXTURES / "raw_mask" / "before.py").read_text(encoding="utf-8")
    module = cst.parse_module(source)
    expected = dict(MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider))

    def visit(self, visitor):
        raise AssertionError("the module was visited")

    monkeypatch.setattr(cst.Module, "visit", visit)
    assert dict(resolve_positions(module)) == expected
