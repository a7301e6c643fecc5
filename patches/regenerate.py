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

Exit status: 0 patches written, 1 an upstream file differs from the recorded sha256 (patches are
still written, with a warning), 2 an error.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", metavar="TARGET=PATH",
                        help=f"target ({', '.join(TARGETS)}) and the upstream checkout (or the file itself)")
    parser.add_argument("--out", type=Path, default=HERE, help="where the <target>/ folders go")
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
