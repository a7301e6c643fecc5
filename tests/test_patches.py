"""The upstream patches: regenerated from small fixtures of each target's shape, and well-formed."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATCHES = ROOT / "patches"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "patches"

_spec = importlib.util.spec_from_file_location("maskfix_patches_regenerate", PATCHES / "regenerate.py")
regenerate = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = regenerate  # dataclasses look the module up while the class is built
_spec.loader.exec_module(regenerate)

TARGETS = sorted(regenerate.TARGETS)
DIFF_PATH = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def _checkout(tmp_path: Path, name: str) -> Path:
    """A git work tree holding the fixture file at the target's upstream path."""
    work = tmp_path / "checkout"
    shutil.copytree(FIXTURES / name, work)
    assert _git(work, "init", "-q").returncode == 0
    return work


def _expected_names(target) -> list:
    names = [f"0001-{target.slug}.patch"]
    if target.hand_edit is not None:
        names.append(f"0002-{target.hand_slug}.patch")
    return names


@pytest.mark.parametrize("name", TARGETS)
def test_fixture_reproduces_target_shape(name):
    target = regenerate.TARGETS[name]
    fixture = FIXTURES / name / target.path
    assert fixture.is_file()
    run = subprocess.run([sys.executable, "-m", "maskfix", "check", str(fixture)],
                         capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "MF001 [*]" in run.stdout
    assert ("MF007 [*]" in run.stdout) == (name == "keras")


@pytest.mark.parametrize("name", TARGETS)
def test_regenerated_patch_applies_to_fixture(name, tmp_path):
    target = regenerate.TARGETS[name]
    work = _checkout(tmp_path, name)
    out = tmp_path / "out"
    written = regenerate.make_patches(target, work / target.path, out)
    assert [p.name for p in written] == _expected_names(target)

    first = written[0].read_text()
    assert first.startswith("From 0000000000000000000000000000000000000000 ")
    assert f"From: {regenerate.AUTHOR}\n" in first
    assert "Subject: [PATCH] " in first
    assert {m for pair in DIFF_PATH.findall(first) for m in pair} == {target.path}

    check = _git(work, "apply", "--check", *map(str, written))
    assert check.returncode == 0, check.stderr
    assert _git(work, "apply", *map(str, written)).returncode == 0
    after = subprocess.run([sys.executable, "-m", "maskfix", "check", target.path],
                           cwd=work, capture_output=True, text=True)
    assert after.returncode == 0, after.stdout + after.stderr
    if target.hand_edit is not None:
        assert f"Last modified: {regenerate.TUTOBOOK_DATE}" in (work / target.path).read_text()

    again = regenerate.make_patches(target, FIXTURES / name / target.path, tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]


def test_command_line_rejects_unknown_target(tmp_path):
    run = subprocess.run([sys.executable, str(PATCHES / "regenerate.py"), f"nope={tmp_path}"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "TARGET=PATH" in run.stderr


def test_command_line_warns_on_other_revision(tmp_path):
    run = subprocess.run([sys.executable, str(PATCHES / "regenerate.py"), "--out", str(tmp_path),
                          f"keras-io={FIXTURES / 'keras-io'}"], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert "warning" in run.stderr and regenerate.TARGETS["keras-io"].sha256 in run.stderr
    assert sorted(p.name for p in (tmp_path / "keras-io").iterdir()) == _expected_names(
        regenerate.TARGETS["keras-io"])


@pytest.mark.parametrize("name", TARGETS)
def test_committed_patches_are_well_formed(name, tmp_path):
    target = regenerate.TARGETS[name]
    folder = PATCHES / name
    patches = sorted(folder.glob("*.patch"))
    assert [p.name for p in patches] == _expected_names(target)
    for patch in patches:
        text = patch.read_text()
        assert text.startswith("From 0000000000000000000000000000000000000000 ")
        assert "\nSubject: [PATCH] " in text
        assert {m for pair in DIFF_PATH.findall(text) for m in pair} == {target.path}
        stat = _git(tmp_path, "apply", "--stat", str(patch))
        assert stat.returncode == 0, stat.stderr
        assert "1 file changed" in stat.stdout
    pr = (folder / "PR.md").read_text()
    assert target.revision in pr and target.sha256 in pr and target.repo in pr
