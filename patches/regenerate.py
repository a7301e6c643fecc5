#!/usr/bin/env python3
"""Regenerate the upstream patches in this folder with ``maskfix rewrite``.

Usage::

    python patches/regenerate.py keras-io=PATH deep-learning-with-python-notebooks=PATH \
        deep-learning-with-python-notebooks-second-edition=PATH keras=PATH

Each ``TARGET=PATH`` names a checkout of the target's upstream repository (only the target file is
read). Targets not named are left alone. For every target the upstream file is committed to a
throwaway git repository at its upstream path, ``maskfix rewrite`` is run on it and committed, an
optional hand edit is committed separately, and ``git format-patch`` writes the patches to
``patches/<target>/``. Author, dates and options are fixed, so the output is byte-for-byte
reproducible from the same upstream file.

With ``--influence``, the patches are left alone; instead the target's decoder layer is measured
before and after ``maskfix rewrite`` (the change of ``0001``), under the Keras runtime the file
targets, with the influence probe of ``maskfix verify --plot``: ``influence.json`` (the matrices and
their summary) and ``influence.png`` go to ``patches/<target>/``, and the block between the
influence markers of its ``PR.md`` is rewritten from them.

Exit status: 0 patches written, 1 an upstream file differs from the recorded sha256 (patches are
still written, with a warning), 2 an error.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
AUTHOR = "maskfix <maskfix@users.noreply.github.com>"
DATE = "2026-11-25T12:00:00+00:00"
TUTOBOOK_DATE = "2026/11/25"


def bump_last_modified(text: str) -> str:
    """keras-io tutobooks carry a ``Last modified: YYYY/MM/DD`` header line; set it to the PR date."""
    new, n = re.subn(r"^Last modified: \d{4}/\d{2}/\d{2}$", f"Last modified: {TUTOBOOK_DATE}",
                     text, count=1, flags=re.M)
    if n != 1:
        raise ValueError("no 'Last modified: YYYY/MM/DD' header line")
    return new


@dataclass(frozen=True)
class Target:
    name: str            # folder under patches/
    repo: str            # upstream owner/name
    path: str            # file path inside the upstream repository
    revision: str        # upstream commit the patch is made against
    sha256: str          # sha256 of the upstream file at that revision
    slug: str            # patch file name: 0001-<slug>.patch
    subject: str
    body: str
    hand_edit: Optional[Callable[[str], str]] = None
    hand_slug: str = ""
    hand_subject: str = ""
    hand_body: str = ""
    layer: str = "TransformerDecoder"
    # How masks reach the decoder in the influence measurement; see MODE_WORDS.
    influence_modes: Tuple[str, ...] = ("implicit", "explicit")


_BODY_TF = """\
The second MultiHeadAttention of TransformerDecoder attends over the
encoder outputs, but its attention_mask is built from the decoder's own
padding mask combined with the causal mask. Decoder step t therefore sees
only source positions <= t, source padding is never masked, and the layer
fails as soon as source and target lengths differ.

Self-attention now uses the decoder padding mask combined with the causal
mask, and cross-attention uses a padding mask computed from the encoder's
token ids, passed as encoder_padding_mask.
"""

TARGETS: Dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            name="keras-io",
            repo="keras-team/keras-io",
            path="examples/nlp/neural_machine_translation_with_transformer.py",
            revision="035d541043bd29938cc78a20f19d998ffaa4a05a",
            sha256="579834ef044701d13a32ae6cc7232f8be05f010d739792de73662711b33bbf4f",
            slug="fix-cross-attention-mask",
            subject="Mask the NMT Transformer's cross-attention with the source padding mask",
            body=_BODY_TF + """
The decoder sub-model gains an encoder_padding_mask input; the
end-to-end model keeps its two inputs.

Fixes #1964.
""",
            hand_edit=bump_last_modified,
            hand_slug="update-last-modified-date",
            hand_subject="Update the Last modified date of the NMT Transformer example",
            hand_body="Tutobook header only; no code change.\n",
        ),
        Target(
            name="deep-learning-with-python-notebooks",
            repo="fchollet/deep-learning-with-python-notebooks",
            path="chapter11_part04_sequence-to-sequence-learning.ipynb",
            revision="1bb759b55fc2433504525a3648154df69219556d",
            sha256="b57f02880460e496b18fb81b5d81d7b686c1c66568f3129fc147024e24f1d27e",
            slug="fix-cross-attention-mask",
            subject="chapter11_part04: mask cross-attention with the source padding mask",
            body=_BODY_TF + """
Fixes #209.
""",
        ),
        Target(
            name="deep-learning-with-python-notebooks-second-edition",
            repo="fchollet/deep-learning-with-python-notebooks",
            path="second_edition/chapter11_part04_sequence-to-sequence-learning.ipynb",
            revision="031aeace4c337592cae0a923a971bf6995be00ac",
            sha256="3446d51255005f24b1781f4419034a9aa22f34f6aae16588460542dfc86dded6",
            slug="fix-cross-attention-mask",
            subject="second_edition/chapter11_part04: mask cross-attention with the source padding mask",
            body=_BODY_TF + """
Fixes #209.
""",
        ),
        Target(
            name="keras",
            repo="keras-team/keras",
            path="examples/keras_io/nlp/neural_machine_translation_with_transformer.py",
            revision="2fae37e0c71c70f81baeed9f5e216ae4d8b92280",
            sha256="a7b3b34c02fdaeb7f1bd83b5fcf1e7eb700f74328612b51094cbb59bf733d6ee",
            slug="fix-padding-and-cross-attention-masks",
            subject="NMT Transformer example: create padding masks and mask cross-attention by the source",
            body="""\
PositionalEmbedding.compute_mask returns None when no mask comes in, and
the first layer of a model never receives one, so no padding mask is
ever created: padding is attended to in the encoder and in both decoder
attentions. The decoder's cross-attention mask is, besides, built from
the decoder's padding mask and the causal mask, which is wrong for keys
that are encoder outputs.

compute_mask now always returns the mask computed from the token ids.
Self-attention uses the decoder padding mask combined with the causal
mask, and cross-attention uses a padding mask computed from the
encoder's token ids, passed as encoder_padding_mask. The decoder
sub-model gains an encoder_padding_mask input; the end-to-end model
keeps its two inputs.
""",
            # Before the patch the model creates no Keras mask at all: the decoder runs unmasked.
            influence_modes=("unmasked", "implicit", "explicit"),
        ),
    ]
}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git(repo: Path, *args: str, **kwargs) -> str:
    env = dict(os.environ)
    for who in ("AUTHOR", "COMMITTER"):
        name, email = AUTHOR[:-1].split(" <")
        env[f"GIT_{who}_NAME"], env[f"GIT_{who}_EMAIL"], env[f"GIT_{who}_DATE"] = name, email, DATE
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return subprocess.run(
        ["git", "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null",
         "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false", *args],
        cwd=repo, env=env, check=True, capture_output=True, text=True, **kwargs,
    ).stdout


def _commit(repo: Path, subject: str, body: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--no-verify", "-F", "-", input=f"{subject}\n\n{body}")


def make_patches(target: Target, source: Path, out_dir: Path) -> List[Path]:
    """Write ``0001-*.patch`` (maskfix) and, if the target has a hand edit, ``0002-*.patch``."""
    with tempfile.TemporaryDirectory(prefix=f"maskfix-patch-{target.name}-") as tmp:
        repo = Path(tmp)
        _git(repo, "init", "-q")
        dest = repo / target.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(source.read_bytes())
        _commit(repo, f"{target.repo}@{target.revision[:12]}", f"Upstream {target.path}.\n")
        base = _git(repo, "rev-parse", "HEAD").strip()
        run = subprocess.run([sys.executable, "-m", "maskfix", "rewrite", "-q", target.path],
                             cwd=repo, capture_output=True, text=True)
        if run.returncode == 2 or _git(repo, "status", "--porcelain").strip() == "":
            raise RuntimeError(f"{target.name}: maskfix rewrite changed nothing "
                               f"(exit {run.returncode}): {run.stdout}{run.stderr}")
        _commit(repo, target.subject, target.body)
        if target.hand_edit is not None:
            dest.write_text(target.hand_edit(dest.read_text(encoding="utf-8")), encoding="utf-8", newline="")
            _commit(repo, target.hand_subject, target.hand_body)
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("[0-9][0-9][0-9][0-9]-*.patch"):
            old.unlink()
        names = _git(repo, "format-patch", "--zero-commit", "--no-signature", "--no-numbered",
                     "--full-index", "--stat=100,80", "-o", str(out_dir), f"{base}..HEAD").split()
        slugs = [target.slug] + ([target.hand_slug] if target.hand_edit is not None else [])
        written = []
        for number, (name, slug) in enumerate(zip(names, slugs), start=1):
            final = out_dir / f"{number:04d}-{slug}.patch"
            Path(name).replace(final)
            written.append(final)
        return written


INFLUENCE_BEGIN = "<!-- influence: written by patches/regenerate.py --influence from influence.json -->"
INFLUENCE_END = "<!-- /influence -->"
MODE_WORDS = {
    "implicit": "masks attached by Keras, as inside a model",
    "explicit": "`mask=` passed by keyword",
    "unmasked": "no mask attached or passed",
}


def _evidence_module():
    """``evidence.py`` of this folder (it turns a notebook or a tf.keras-era file into a program)."""
    spec = importlib.util.spec_from_file_location("maskfix_patches_evidence", HERE / "evidence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rounded(value):
    """Six significant digits: the JSON stays readable and diffs stay small."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def measure_influence(target: Target, source: Path, out_dir: Path) -> dict:
    """Measure the target's decoder layer in ``source`` and as ``maskfix rewrite`` fixes it.

    Writes ``influence.json`` and ``influence.png`` to ``out_dir`` and returns the JSON data.
    The runtime is the one the file targets (``maskfix verify``'s choice: tf_keras for tf.keras
    code, Keras 3 with the backend the file names otherwise); only definitions are run.
    """
    from maskfix.verify.influence import summarize_influence
    from maskfix.verify.plots import plot_influence
    from maskfix.verify.runtime import detect_runtime, run_jobs

    to_script = _evidence_module().to_script
    with tempfile.TemporaryDirectory(prefix=f"maskfix-influence-{target.name}-") as tmp:
        work = Path(tmp)
        before, after = work / f"before{source.suffix}", work / f"after{source.suffix}"
        before.write_bytes(source.read_bytes())
        after.write_bytes(source.read_bytes())
        run = subprocess.run([sys.executable, "-m", "maskfix", "rewrite", "-q", str(after)],
                             capture_output=True, text=True)
        if run.returncode == 2 or after.read_bytes() == before.read_bytes():
            raise RuntimeError(f"{target.name}: maskfix rewrite changed nothing "
                               f"(exit {run.returncode}): {run.stdout}{run.stderr}")
        programs = []
        for path in (before, after):
            program = work / f"{path.stem}_program.py"
            program.write_text(to_script(path), encoding="utf-8")
            programs.append(program)
        runtime = detect_runtime(programs[0].read_text(encoding="utf-8"))
        task = {"kind": "influence", "layer": target.layer, "modes": list(target.influence_modes)}
        result = run_jobs(runtime, [{"path": str(p), "tasks": [task]} for p in programs],
                          threads=1, timeout=900)
    measured = []
    for which, job in zip(("before", "after"), result["jobs"]):
        done = job.get("tasks", [{}])[0]
        if "error" in job or "error" in done:
            raise RuntimeError(f"{target.name}: {which} the patch: {job.get('error') or done['error']}")
        measured.append(_rounded({k: v for k, v in done.items() if k != "kind"}))
    digest = sha256_of(source)
    data = {
        "target": target.name,
        "layer": target.layer,
        "runtime": result["runtime"],
        "measured_file": {"name": source.name, "sha256": digest, "is_recorded_upstream": digest == target.sha256},
        "before": measured[0],
        "after": measured[1],
        "summary": {"before": summarize_influence(measured[0]), "after": summarize_influence(measured[1])},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_json = out_dir / ".influence.json.tmp"
    tmp_json.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp_json, out_dir / "influence.json")
    plot_influence([("before the patch", measured[0]), ("after the patch", measured[1])],
                   out_dir / "influence.png",
                   title=f"{target.repo}@{target.revision[:7]} {target.path}: {target.layer}\n"
                         f"{result['runtime']}")
    return data


def _moved(value: float, tolerance: float) -> str:
    return "none" if value <= tolerance else f"{value:.3g}"


def render_influence(data: dict) -> str:
    """The PR.md block, markers included, for the JSON written by :func:`measure_influence`."""
    dims = data["before"]
    tol = dims["tolerance"]
    padded = dims["source_steps"] - dims["source_length"]
    file = data["measured_file"]
    lines = [
        INFLUENCE_BEGIN,
        f"Influence maps of `{data['layer']}` before and after the patch, measured under "
        f"{data['runtime']}: {dims['steps']} decoder steps, {dims['source_steps']} source positions of which the last "
        f"{padded} are padding, width {dims['width']}, random seeded weights. One input position at a "
        "time is perturbed (an encoder output for the T x S map, a decoder input for the T x T map) "
        f"and the move of every output step recorded; moves up to {tol:.0e} count as none. The fixed layer "
        "also gets `encoder_padding_mask=`, as the patched model passes it.".replace("e-0", "e-"),
        "",
        "| masks | measure | before | after |",
        "| --- | --- | --- | --- |",
    ]
    for mode in data["summary"]["before"]:
        b, a = data["summary"]["before"][mode], data["summary"]["after"][mode]
        label = f"{mode} ({MODE_WORDS.get(mode, mode)})"
        if "error" in b or "error" in a:
            cells = [f"crashed: `{r['error']}`".replace("|", "/") if "error" in r else "runs" for r in (b, a)]
            lines.append(f"| {label} | runs | {cells[0]} | {cells[1]} |")
            continue
        rows = [
            ("real (step, source) pairs that move",
             lambda r: f"{r['real_pairs_moving']} / {r['real_pairs']}"),
            ("real source positions that move step 0",
             lambda r: f"{r['step0_sources']} / {r['real_sources']}"),
            ("largest move through a padded source position", lambda r: _moved(r["padding_max"], tol)),
            ("largest move from a later decoder step", lambda r: _moved(r["future_max"], tol)),
        ]
        for k, (name, cell) in enumerate(rows):
            lines.append(f"| {label if k == 0 else ''} | {name} | {cell(b)} | {cell(a)} |")
    if file["is_recorded_upstream"]:
        where = f"the upstream file at the recorded revision (sha256 `{file['sha256']}`)"
    else:
        where = (f"`{file['name']}` (sha256 `{file['sha256']}`), which is not the recorded upstream "
                 "file (what it holds is stated above)")
    lines += [
        "",
        f"Measured on {where}. Only its definitions run; the fixed layer is the same file after "
        "`maskfix rewrite`.",
        "",
        "![influence maps before and after](influence.png)",
        INFLUENCE_END,
    ]
    return "\n".join(lines)


def update_pr(pr: Path, block: str) -> bool:
    """Replace the influence block of ``pr``; False when the file has no markers."""
    text = pr.read_text(encoding="utf-8")
    start, end = text.find(INFLUENCE_BEGIN), text.find(INFLUENCE_END)
    if start < 0 or end < start:
        return False
    new = text[:start] + block + text[end + len(INFLUENCE_END):]
    if new != text:
        tmp = pr.with_name(f".{pr.name}.tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, pr)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", metavar="TARGET=PATH",
                        help=f"target ({', '.join(TARGETS)}) and the upstream checkout (or the file itself)")
    parser.add_argument("--out", type=Path, default=HERE, help="where the <target>/ folders go")
    parser.add_argument("--influence", action="store_true",
                        help="measure the decoder before and after the patch instead of writing patches")
    args = parser.parse_args(argv)
    status, jobs = 0, []
    for item in args.checkouts:
        name, sep, where = item.partition("=")
        if not sep or name not in TARGETS:
            parser.error(f"expected TARGET=PATH with TARGET one of {', '.join(TARGETS)}, got {item!r}")
        jobs.append((name, where))
    for name, where in jobs:
        target = TARGETS[name]
        root = Path(where)
        source = root if root.is_file() else root / target.path
        if not source.is_file():
            print(f"{name}: {source} not found", file=sys.stderr)
            return 2
        digest = sha256_of(source)
        if digest != target.sha256:
            print(f"{name}: warning: {source} has sha256 {digest}, the patches were recorded against "
                  f"{target.sha256} ({target.repo}@{target.revision})", file=sys.stderr)
            status = 1
        try:
            if args.influence:
                folder = args.out / target.name
                data = measure_influence(target, source, folder)
                pr = folder / "PR.md"
                if pr.is_file() and not update_pr(pr, render_influence(data)):
                    print(f"{name}: warning: {pr} has no influence markers; not updated", file=sys.stderr)
                    status = 1
                written = [folder / "influence.json", folder / "influence.png"]
            else:
                written = make_patches(target, source, args.out / target.name)
        except (RuntimeError, ValueError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            print(f"{name}: {exc} {detail}".strip(), file=sys.stderr)
            return 2
        for path in written:
            print(path)
    return status


if __name__ == "__main__":
    sys.exit(main())
