"""Regression tests for ``maskfix verify`` defects a new user hit (issue 13, item 11)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskfix.verify.command import run_verify
from maskfix.verify.loader import load_definitions

from verify_support import JOB_NAMES, original_example


def test_tuple_unpacked_constants_are_loaded(tmp_path):
    path = tmp_path / "consts.py"
    path.write_text("PAD, START = 0, 1\n(A, B), C = (2, 3), 4\n[D, *REST] = [5, 6, 7]\n"
                    "X, Y = map(int, '12')\n")
    loaded = load_definitions(path)
    ns = loaded.module.__dict__
    assert (ns["PAD"], ns["START"], ns["A"], ns["B"], ns["C"]) == (0, 1, 2, 3, 4)
    assert ns["D"] == 5 and ns["REST"] == [6, 7]
    assert "X" not in ns  # not a literal: a call, skipped
    assert any("map(int" in s for s in loaded.skipped)


def test_layer_naming_a_non_decoder_class_cannot_run(capsys):
    example = str(original_example("keras3"))
    assert run_verify(example, layer="TransformerEncoder") == 2
    out, err = capsys.readouterr()
    assert "TransformerEncoder is not a decoder layer" in err and "takes 1 required" in err
    assert "Probes" not in out
    assert run_verify(example, layer="Missing") == 2
    assert "no class Missing in the file" in capsys.readouterr().err


def test_decoder_check_follows_base_classes():
    from maskfix.verify.loader import why_not_a_decoder

    source = ("class Base:\n    def call(self, x, enc, mask=None):\n        pass\n\n"
              "class Child(Base):\n    pass\n\nclass Plain:\n    pass\n")
    assert why_not_a_decoder(source, "Child") is None
    assert "defines no call()" in why_not_a_decoder(source, "Plain")


def test_errors_go_to_stderr(tmp_path, capsys):
    plain = tmp_path / "plain.py"
    plain.write_text("import numpy as np\n")
    assert run_verify(str(plain)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == f"maskfix verify: cannot verify {plain}: the file imports neither keras nor tensorflow.keras"
    assert run_verify(str(tmp_path / "missing.py")) == 2
    out, err = capsys.readouterr()
    assert out == "" and "missing.py: No such file or directory" in err


def test_missing_verify_extra_is_one_line(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] in ("keras", "tf_keras") else real(name, *a))
    assert run_verify(str(original_example("keras3")), backend="torch") == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"maskfix verify: cannot verify {original_example('keras3')}: "
                                "keras not installed for keras3/torch: install maskfix[verify]"]
    assert "Traceback" not in out + err
    assert run_verify(str(original_example("tf_keras"))) == 2
    assert "tf_keras not installed for tf_keras: install maskfix[verify]" in capsys.readouterr().err


def test_worker_without_keras_reports_one_line(tmp_path, monkeypatch):
    """The worker itself failing to import a package gives one line, not its traceback."""
    shadow = tmp_path / "shadow"
    (shadow / "keras").mkdir(parents=True)
    (shadow / "keras" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'keras'\", name='keras')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    from maskfix.verify.runtime import Runtime, run_jobs

    with pytest.raises(RuntimeError) as info:
        run_jobs(Runtime("keras3", "torch"), [{"path": str(original_example("keras3")), "tasks": []}])
    assert str(info.value) == "keras not installed for keras3/torch: install maskfix[verify]"


def _notebook(path: Path, cells) -> None:
    doc = {"cells": [{"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": text.splitlines(True),
                      **({"execution_count": None, "outputs": []} if kind == "code" else {})}
                     for i, (kind, text) in enumerate(cells)],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(doc))


def test_notebook_syntax_error_names_the_cell(tmp_path, capsys):
    nb = tmp_path / "nb.ipynb"
    _notebook(nb, [("markdown", "# title"), ("code", "import keras\n"), ("code", "x = 1\ndef f(:\n")])
    assert run_verify(str(nb)) == 2
    out, err = capsys.readouterr()
    assert f"cannot verify {nb}: syntax error at cell 3:line 2" in err
    assert "maskfix-verify-" not in out + err and "nb.py" not in out + err


@pytest.mark.xdist_group("runtime_results")
@pytest.mark.parametrize("label", ["keras3/torch"])
def test_width_follows_init_or_cannot_run(runtime_results, label):
    """The layers of verify_support.WIDE_DECODERS, probed in the session's torch worker."""
    wide, odd = runtime_results.get(label)["jobs"][JOB_NAMES.index("extra")]["tasks"]
    assert wide["width"] == 8, wide
    failed = [p for p in wide["probes"] if not p["passed"]]
    assert len(wide["probes"]) == 8 and not failed, failed
    # `n` names no width: probed 16 wide, the 8-wide layer cannot run, which is no mask verdict
    # (run_verify turns a task error into exit 2).
    assert "OddDecoder does not run on inputs of width 16" in odd["error"]
    assert "pass it with --init NAME=VALUE" in odd["error"]


def test_conflicting_widths_are_refused():
    from maskfix.verify.layer_probes import width_from_overrides

    class Layer:
        def __init__(self, embed_dim, hidden_size, key_dim):
            pass

    assert width_from_overrides(Layer, {"embed_dim": 8, "key_dim": 4}) == 8
    assert width_from_overrides(Layer, {}) == 16
    with pytest.raises(ValueError, match="conflicting widths"):
        width_from_overrides(Layer, {"embed_dim": 8, "hidden_size": 12})


def test_cli_init_error_goes_to_stderr(capsys):
    from maskfix.cli import main

    assert main(["verify", str(original_example("keras3")), "--init", "nonsense"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--init expects NAME=VALUE" in err
