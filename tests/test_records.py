"""maskfix.records: what the CLI-side data classes rely on, as ``dataclasses`` gives it."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import List, Optional

import pytest

from maskfix.outcome import Outcome
from maskfix.records import Factory, record


@record
class Point:
    x: int
    y: int = 0
    tags: List[str] = Factory(list)
    note: Optional[str] = None


@record(frozen=True)
class Frozen:
    a: int
    b: str = "b"


def test_fields_in_order_positionally_or_by_keyword_with_defaults():
    p = Point(1, tags=["t"])
    assert (p.x, p.y, p.tags, p.note) == (1, 0, ["t"], None)
    assert Point(1, 2) == Point(x=1, y=2) and Point(1) != Point(2)
    assert repr(Point(3)) == "Point(x=3, y=0, tags=[], note=None)"


def test_each_record_gets_a_fresh_default():
    a, b = Point(1), Point(2)
    a.tags.append("x")
    assert b.tags == [] and "tags" not in Point.__dict__


@pytest.mark.parametrize("make, message", [
    (lambda: Point(), "missing required argument: 'x'"),
    (lambda: Point(1, 2, [], None, 5), "at most 4 arguments"),
    (lambda: Point(1, z=3), "unexpected keyword argument 'z'"),
    (lambda: Point(1, x=2), "multiple values for argument 'x'"),
])
def test_wrong_arguments_are_refused(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_frozen_records_refuse_changes_and_hash_by_value():
    f = Frozen(1)
    with pytest.raises(AttributeError):
        f.a = 2
    with pytest.raises(AttributeError):
        del f.b
    assert hash(f) == hash(Frozen(1, "b")) and {f, Frozen(1)} == {f}
    with pytest.raises(TypeError):
        hash(Point(1))  # equal by value, so not hashable


def test_records_cross_a_process_boundary():
    o = Outcome(error="x", decoders=["D"])
    back = pickle.loads(pickle.dumps(o))
    assert back == o and back is not o and back.findings == []


def test_a_run_on_a_few_files_imports_neither_dataclasses_nor_inspect(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    code = ("import sys\nfrom maskfix.cli import main\nmain(['check', '--no-cache', '-q', sys.argv[1]])\n"
            "print(sorted(m for m in ('dataclasses', 'inspect', 'libcst') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True).stdout
    assert out.strip().endswith("[]")
