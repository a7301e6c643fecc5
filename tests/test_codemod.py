"""maskfix.codemod: the rewrite as a LibCST codemod, in-process and through ``python -m libcst.tool``."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest
from libcst.codemod import CodemodContext, SkipFile, TransformSkip, TransformSuccess, transform_module

import maskfix
from maskfix import engine
from maskfix.codemod import FixCrossAttentionMask

FIXTURES = Path(__file__).parent / "fixtures"
# The codemod is a thin wrapper over the engine (tests/test_fixtures.py covers every variant).
VARIANTS = ["book_tf", "kerasio_keras3", "subclassed_model", "keras_alias_K", "oneline"]


def read(variant, name="before.py"):
    with open(FIXTURES / variant / name, newline="") as fh:
        return fh.read()


def codemod(source, filename="model.py"):
    return FixCrossAttentionMask(CodemodContext(filename=filename)).transform_module(cst.parse_module(source))


@pytest.mark.parametrize("variant", VARIANTS)
def test_codemod_matches_the_golden_rewrite(variant):
    assert codemod(read(variant)).code == read(variant, "after.py")


def test_nothing_to_fix_skips_the_file():
    with pytest.raises(SkipFile):
        codemod(read("neg_kerashub_style"))
    result = transform_module(FixCrossAttentionMask(CodemodContext()), read("book_tf", "after.py"))
    assert isinstance(result, TransformSkip)


def test_manual_work_and_unfixable_findings_become_warnings():
    result = transform_module(FixCrossAttentionMask(CodemodContext(filename="m.py")), read("unresolved_call_site"))
    assert isinstance(result, TransformSuccess)
    assert result.code == read("unresolved_call_site", "after.py")
    assert [w.split(" pass ")[0] for w in result.warning_messages] == ["m.py:28:12: MF002 call of Dec:"]

    context = CodemodContext(filename="mixed.py")
    with pytest.raises(SkipFile):  # also called decoder-only: reported, never rewritten
        FixCrossAttentionMask(context).transform_module(cst.parse_module(read("mixed_usage")))
    assert len(context.warnings) == 1 and context.warnings[0].startswith("mixed.py:18:42: MF001 ")


def test_codemod_agrees_with_rewrite_source_on_encodings():
    source = "# -*- coding: latin-1 -*-\r\n# caf\xe9\r\n" + read("book_tf").replace("\n", "\r\n")
    module = cst.parse_module(source.encode("latin-1"))
    out = FixCrossAttentionMask(CodemodContext()).transform_module(module)
    assert out.encoding == module.encoding and out.default_newline == "\r\n"
    assert out.code == engine.rewrite_source(source)


def libcst_tool(*args, cwd):
    """``python -m libcst.tool``, importing the same maskfix as these tests."""
    here = str(Path(maskfix.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "libcst.tool", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def tree(tmp_path):
    shutil.copyfile(FIXTURES / "book_tf" / "before.py", tmp_path / "model.py")
    shutil.copyfile(FIXTURES / "neg_kerashub_style" / "before.py", tmp_path / "ok.py")
    return tmp_path


def assert_fixed(tree, proc):
    assert proc.returncode == 0, proc.stderr
    assert (tree / "model.py").read_bytes() == (FIXTURES / "book_tf" / "after.py").read_bytes()
    assert (tree / "ok.py").read_bytes() == (FIXTURES / "neg_kerashub_style" / "before.py").read_bytes()
    assert "Transformed 1 files successfully" in proc.stderr and "Skipped 1 files" in proc.stderr


@pytest.mark.parametrize("command", ["maskfix.FixCrossAttentionMask", "maskfix.codemod.FixCrossAttentionMask"])
def test_libcst_tool_with_external_command(tree, command):
    proc = libcst_tool("codemod", "--no-format", "--hide-progress", "-x", command, ".", cwd=tree)
    assert_fixed(tree, proc)


def test_libcst_tool_with_maskfix_in_configured_modules(tree):
    (tree / ".libcst.codemod.yaml").write_text("modules:\n  - maskfix\n")
    listed = libcst_tool("list", cwd=tree)
    assert listed.returncode == 0, listed.stderr
    assert "codemod.FixCrossAttentionMask - " in listed.stdout
    proc = libcst_tool("codemod", "--no-format", "--hide-progress", "codemod.FixCrossAttentionMask", ".", cwd=tree)
    assert_fixed(tree, proc)
