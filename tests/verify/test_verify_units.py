"""Keras-free parts of maskfix.verify, plus the verify command's exit codes."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from maskfix.verify.command import run_verify
from maskfix.verify.layer_probes import infer_init_kwargs
from maskfix.verify.loader import find_decoder_classes, load_definitions
from maskfix.verify.results import ProbeResult, assert_failed, assert_passed, format_table
from maskfix.verify.runtime import Runtime, detect_runtime

from verify_support import expected_fixed, fixed_example, original_example


def test_package_imports_without_keras():
    code = "import sys, maskfix.verify; print(sorted(m for m in ('keras', 'tensorflow', 'tf_keras', 'jax', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import tensorflow as tf\nfrom tensorflow import keras\n", "tf_keras"),
        ("from tensorflow.keras import layers\n", "tf_keras"),
        ("import tensorflow as tf\nx = tf.keras.layers.Dense(2)\n", "tf_keras"),
        ("import tf_keras as keras\n", "tf_keras"),
        ("import keras\nfrom keras import layers, ops\n", "keras3/tensorflow"),
        ("import tensorflow as tf\nimport keras\n", "keras3/tensorflow"),
        ("import os\nos.environ['KERAS_BACKEND'] = 'jax'\nimport keras\n", "keras3/jax"),
    ],
)
def test_detect_runtime(source, expected, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert detect_runtime(source).label == expected


def test_detect_runtime_backend_from_environment(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert detect_runtime("import keras\n").label == "keras3/torch"
    assert detect_runtime("import keras\n", backend="jax").label == "keras3/jax"


def test_detect_runtime_rejects_non_keras_file():
    with pytest.raises(ValueError):
        detect_runtime("import numpy as np\n")


def test_runtime_environment():
    legacy = Runtime("tf_keras").env(base={"KERAS_BACKEND": "jax"})
    assert legacy["TF_USE_LEGACY_KERAS"] == "1"
    k3 = Runtime("keras3", "torch").env(base={"TF_USE_LEGACY_KERAS": "1"})
    assert k3["KERAS_BACKEND"] == "torch" and "TF_USE_LEGACY_KERAS" not in k3


@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
def test_find_decoder_class_in_examples(flavour, tmp_path):
    assert find_decoder_classes(original_example(flavour).read_text()) == ["TransformerDecoder"]
    assert find_decoder_classes(fixed_example(flavour, tmp_path).read_text()) == ["TransformerDecoder"]


def test_load_definitions_runs_no_top_level_code(tmp_path):
    path = tmp_path / "target.py"
    path.write_text(textwrap.dedent(
        """
        import math
        LIMIT = 3
        NAMES = ("a", "b")
        RAN = []
        RAN.append("top level")
        side_effect = open(__file__).read()

        def f():
            return LIMIT

        class C:
            pass

        if __name__ == "__main__":
            RAN.append("main")
        """
    ))
    loaded = load_definitions(path)
    ns = loaded.module.__dict__
    assert ns["f"]() == 3 and "C" in ns and ns["NAMES"] == ("a", "b") and ns["math"].pi
    assert "RAN" in ns and ns["RAN"] == []  # the literal assignment ran, the append did not
    assert "side_effect" not in ns
    assert any("RAN.append" in s for s in loaded.skipped)
    assert any("if __name__" in s for s in loaded.skipped)


class _Decoder:
    def __init__(self, embed_dim, latent_dim, num_heads, dropout_rate=0.1, name=None, **kwargs):
        pass


class _Odd:
    def __init__(self, d_model, n_heads, colour):
        pass


def test_infer_init_kwargs():
    assert infer_init_kwargs(_Decoder, 16) == {"embed_dim": 16, "latent_dim": 32, "num_heads": 2,
                                               "dropout_rate": 0.0}
    with pytest.raises(ValueError, match="colour"):
        infer_init_kwargs(_Odd, 16)
    assert infer_init_kwargs(_Odd, 8, {"colour": 1}) == {"d_model": 8, "n_heads": 2, "colour": 1}


def test_result_assertions_and_table():
    ok, bad = ProbeResult("p", True, "fine"), ProbeResult("q", False, "broken", mode="explicit")
    assert_passed(ok)
    assert_failed(bad)
    with pytest.raises(AssertionError, match=r"q\[explicit\] failed: broken"):
        assert_passed(bad)
    with pytest.raises(AssertionError, match="expected to fail"):
        assert_failed(ok)
    table = format_table([ok, bad])
    assert "PASS" in table and "FAIL" in table and "q[explicit]" in table


def test_verify_cannot_run_on_non_keras_file(tmp_path, capsys):
    path = tmp_path / "plain.py"
    path.write_text("import numpy as np\n")
    assert run_verify(str(path)) == 2
    assert run_verify(str(tmp_path / "missing.py")) == 2


def test_verify_exit_codes_on_examples(tmp_path, capsys):
    assert run_verify(str(original_example("keras3")), backend="torch", modes=["explicit"]) == 1
    out = capsys.readouterr().out
    assert "definitions only" in out and "class TransformerDecoder" in out
    assert "if __name__" in out  # listed as skipped
    assert re.search(r"full_source_visibility\[explicit\]\s+FAIL", out)
    fixed = fixed_example("tf_keras", tmp_path)
    assert run_verify(str(fixed), layer="TransformerDecoder") == 0
    assert "0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
def test_fixed_example_matches_expected_wiring(flavour, tmp_path):
    """The fixed module under test has the same syntax tree as the hand-written fix."""
    import ast

    produced = ast.dump(ast.parse(fixed_example(flavour, tmp_path).read_text()))
    assert produced == ast.dump(ast.parse(expected_fixed(flavour).read_text()))
