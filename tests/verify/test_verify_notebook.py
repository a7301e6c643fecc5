"""``maskfix verify`` on a notebook: its code cells are probed as one program."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_cli_notebooks import make_notebook  # noqa: E402

from maskfix.cli import main  # noqa: E402

from maskfix.verify.runtime import TF_KERAS, missing_modules  # noqa: E402

# Checked without importing: Keras runs in the probe subprocesses, and importing TensorFlow at
# collection would cost every xdist worker seconds of CPU and a gigabyte of memory.
MISSING = missing_modules(TF_KERAS)
if MISSING:
    pytest.skip(f"{', '.join(MISSING)} not installed", allow_module_level=True)


def test_verify_a_notebook_before_and_after_rewrite(tmp_path, capsys):
    nb = tmp_path / "translate.ipynb"
    make_notebook(nb)
    assert main(["verify", str(nb), "--layer", "TransformerDecoder"]) == 1
    out = capsys.readouterr().out
    assert f"Notebook {nb}: its code cells joined into one program" in out
    assert "FAIL" in out and "full_source_visibility" in out
    # Lines are the notebook's (cell 2 holds the layers), never the joined program's or a temp path.
    assert f"Executed from {nb} (definitions only" in out
    assert "  cell 2:line " in out and "class TransformerDecoder" in out
    assert "maskfix-verify-" not in out and "translate.py" not in out
    assert main(["rewrite", "-q", str(nb)]) == 1
    capsys.readouterr()
    assert main(["verify", str(nb), "--layer", "TransformerDecoder"]) == 0
    assert "8 passed, 0 failed" in capsys.readouterr().out


def test_an_invalid_notebook_cannot_be_verified(tmp_path, capsys):
    nb = tmp_path / "broken.ipynb"
    nb.write_text('{"cells": [')
    assert main(["verify", str(nb)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"cannot verify {nb}: invalid or truncated JSON" in err
