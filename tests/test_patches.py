"""The upstream patches: regenerated from small fixtures of each target's shape, and well-formed."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
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


# --- influence evidence: patches/<target>/influence.{json,png} and the PR.md block ---------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _matrices(steps=4, source_steps=4, source_length=3, triangle=False, live_padding=False):
    """Influence data as ``influence_matrices`` returns it, with a chosen mask shape."""
    cross = [[0.0] * source_steps for _ in range(steps)]
    for t in range(steps):
        for s in range(source_steps):
            real = s < source_length
            if (real and (not triangle or s <= t)) or (not real and live_padding):
                cross[t][s] = 0.5
    self_ = [[0.5 if u <= t else 0.0 for u in range(steps)] for t in range(steps)]
    return {"width": 16, "steps": steps, "source_steps": source_steps, "source_length": source_length,
            "tolerance": 1e-4, "modes": {"explicit": {"cross": cross, "self": self_}}}


def test_influence_summary_counts_the_mask_shape():
    from maskfix.verify.influence import summarize_influence

    fixed = summarize_influence(_matrices())["explicit"]
    assert fixed == {"real_pairs_moving": 12, "real_pairs": 12, "step0_sources": 3, "real_sources": 3,
                     "padding_max": 0.0, "future_max": 0.0}
    buggy = summarize_influence(_matrices(triangle=True, live_padding=True))["explicit"]
    # Step t sees source positions 0..t: 1 + 2 + 3 + 3 of the 12 real pairs.
    assert buggy["real_pairs_moving"] == 9 and buggy["step0_sources"] == 1
    assert buggy["padding_max"] == 0.5 and buggy["future_max"] == 0.0
    crashed = {**_matrices(), "modes": {"implicit": {"error": "InvalidArgumentError: shapes"}}}
    assert summarize_influence(crashed) == {"implicit": {"error": "InvalidArgumentError: shapes"}}


def _evidence(before: dict, after: dict, upstream=False) -> dict:
    from maskfix.verify.influence import summarize_influence

    return {"target": "x", "layer": "TransformerDecoder", "runtime": "tf_keras 2.x",
            "measured_file": {"name": "f.py", "sha256": "ab" * 32, "is_recorded_upstream": upstream},
            "before": before, "after": after,
            "summary": {"before": summarize_influence(before), "after": summarize_influence(after)}}


def test_render_influence_and_update_pr(tmp_path):
    data = _evidence(_matrices(triangle=True, live_padding=True), _matrices())
    block = regenerate.render_influence(data)
    assert block.startswith(regenerate.INFLUENCE_BEGIN) and block.endswith(regenerate.INFLUENCE_END)
    assert "| real (step, source) pairs that move | 9 / 12 | 12 / 12 |" in block
    assert "| real source positions that move step 0 | 1 / 3 | 3 / 3 |" in block
    assert "| largest move through a padded source position | 0.5 | none |" in block
    assert "not the recorded upstream file" in block
    assert "the upstream file at the recorded revision" in regenerate.render_influence(
        _evidence(_matrices(), _matrices(), upstream=True))

    crashed = {**_matrices(), "modes": {"explicit": {"error": "InvalidArgumentError: a | b"}}}
    row = regenerate.render_influence(_evidence(crashed, _matrices()))
    assert "| runs | crashed: `InvalidArgumentError: a / b` | runs |" in row

    pr = tmp_path / "PR.md"
    pr.write_text("head\n\n" + regenerate.INFLUENCE_BEGIN + "\nold\n" + regenerate.INFLUENCE_END + "\ntail\n")
    assert regenerate.update_pr(pr, block)
    assert pr.read_text() == "head\n\n" + block + "\ntail\n"
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not regenerate.update_pr(plain, block)
    assert plain.read_text() == "no markers\n"


@pytest.mark.parametrize("name", TARGETS)
def test_pr_influence_section_is_the_measurement(name):
    """The numbers in PR.md are rendered from the committed measurement, which is self-consistent."""
    from maskfix.verify.influence import summarize_influence

    target = regenerate.TARGETS[name]
    folder = PATCHES / name
    data = json.loads((folder / "influence.json").read_text())
    assert data["target"] == name and data["layer"] == target.layer
    for which in ("before", "after"):
        assert list(data[which]["modes"]) == list(target.influence_modes)
        assert data["summary"][which] == summarize_influence(data[which])
    assert (folder / "influence.png").read_bytes()[:8] == PNG_MAGIC
    pr = (folder / "PR.md").read_text()
    assert regenerate.render_influence(data) in pr
    assert "](influence.png)" in pr
    # What the patch is for: the fixed decoder sees every real source position and no padding.
    for mode, after in data["summary"]["after"].items():
        assert after["real_pairs_moving"] == after["real_pairs"], mode
        assert after["padding_max"] <= data["after"]["tolerance"], mode
        assert after["future_max"] <= data["after"]["tolerance"], mode


def test_influence_measured_on_fixture(tmp_path):
    """``--influence`` end to end on the Keras 3 port fixture: measured, drawn, PR block rewritten."""
    pytest.importorskip("keras")
    pytest.importorskip("matplotlib")
    name = "keras"
    # Two of the port's three modes keep the test short; the third is measured the same way.
    target = dataclasses.replace(regenerate.TARGETS[name], layer="Decoder",
                                 influence_modes=("unmasked", "explicit"))
    fixture = FIXTURES / name / target.path
    data = regenerate.measure_influence(target, fixture, tmp_path)
    assert data["runtime"].startswith("keras 3") and "tensorflow" in data["runtime"]
    assert not data["measured_file"]["is_recorded_upstream"]
    assert (tmp_path / "influence.png").read_bytes()[:8] == PNG_MAGIC
    assert json.loads((tmp_path / "influence.json").read_text()) == data
    before, after = data["summary"]["before"], data["summary"]["after"]
    tol = data["before"]["tolerance"]
    # As the fixture's model calls it (no Keras mask), padding reaches every step before the patch;
    # with mask= passed the decoder's own mask shows: a triangle over the source.
    assert before["unmasked"]["padding_max"] > tol
    assert before["explicit"]["step0_sources"] == 1
    assert before["explicit"]["real_pairs_moving"] < before["explicit"]["real_pairs"]
    for mode in target.influence_modes:
        assert after[mode]["real_pairs_moving"] == after[mode]["real_pairs"]
        assert after[mode]["padding_max"] <= tol
