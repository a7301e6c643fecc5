#!/usr/bin/env python3
"""Probe and briefly train an upstream example before and after its patch.

Usage::

    python patches/evidence.py BEFORE AFTER [--extra-defs FILE] [--backend B] [--epochs N] [--json OUT]

BEFORE and AFTER are the upstream file (``.py`` or ``.ipynb``) unpatched and patched. For each:

1. a notebook's code cells are joined into a script (shell ``!`` and ``%`` lines dropped); in a
   tf.keras-era file, ``from keras.`` imports are read as ``from tensorflow.keras.`` (in TF 2.6,
   ``keras`` was Keras 2);
2. ``maskfix verify`` runs the layer probes on ``TransformerDecoder`` (definitions only);
3. a harness module is generated from the file's imports and classes (plus classes from
   ``--extra-defs``, for a notebook that uses a layer defined in an earlier one) and a
   ``build_model`` whose body is the file's own model-building statements, from the
   ``embed_dim = ...`` line after the layer classes down to ``transformer = ...``, with small sizes;
4. the model probes run on it, and ``train_briefly`` trains it on a synthetic parallel corpus
   (target = source reversed, words remapped; pad id 0), with equal and unequal lengths.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import textwrap
from io import StringIO
from pathlib import Path

from maskfix.verify.command import run_verify
from maskfix.verify.runtime import detect_runtime, probe_in_runtime, train_in_runtime

HYPERPARAMETERS = ("embed_dim", "latent_dim", "dense_dim", "num_heads")

CORPUS = '''
SEQUENCE_LENGTH = 32


def make_corpus(seed, n, src_len=10, tgt_len=10, src_vocab_size=16):
    import numpy as np

    rng = np.random.default_rng(seed)
    n_words = src_vocab_size - 3
    enc = np.zeros((n, src_len), dtype="int64")
    dec = np.zeros((n, tgt_len), dtype="int64")
    tgt = np.zeros((n, tgt_len), dtype="int64")
    for row in range(n):
        length = int(rng.integers(2, min(src_len, tgt_len - 1) + 1))
        words = rng.integers(0, n_words, size=length)
        target = [3 + (7 * int(w) + 3) % n_words for w in words[::-1]]
        enc[row, :length] = 3 + words
        dec[row, : length + 1] = [1] + target
        tgt[row, : length + 1] = target + [2]
    return enc, dec, tgt
'''


def to_script(path: Path) -> str:
    """The file as one program: a notebook's code cells joined, tf.keras-era imports read as such."""
    if path.suffix != ".ipynb":
        text = path.read_text(encoding="utf-8")
    else:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        chunks = []
        for cell in cells:
            if cell.get("cell_type") != "code":
                continue
            src = cell["source"]
            src = "".join(src) if isinstance(src, list) else src
            chunks.append("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("!", "%"))))
        text = "\n\n".join(chunks) + "\n"
    if "from tensorflow import keras" in text:
        text = text.replace("from keras.", "from tensorflow.keras.")
    return text


def _segment(source: str, node: ast.AST) -> str:
    return ast.get_source_segment(source, node)


def _defs(source: str):
    tree = ast.parse(source)
    imports = [_segment(source, n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    classes = {n.name: _segment(source, n) for n in tree.body if isinstance(n, ast.ClassDef)}
    return tree, imports, classes


def make_harness(script: str, extra: str | None) -> str:
    tree, imports, classes = _defs(script)
    if extra is not None:
        _, extra_imports, extra_classes = _defs(extra)
        imports = extra_imports + imports
        classes = {**extra_classes, **classes}
    last_class = max(i for i, n in enumerate(tree.body) if isinstance(n, ast.ClassDef))
    body, started = [], False
    for node in tree.body[last_class + 1:]:
        names = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if not started:
            started = names == ["embed_dim"]
            if not started:
                continue
        if names and names[0] in HYPERPARAMETERS and isinstance(node.value, ast.Constant):
            continue
        body.append(_segment(script, node))
        if names == ["transformer"]:
            break
    else:
        raise ValueError("no `transformer = ...` statement after the layer classes")
    lines = [
        "def build_model(src_vocab_size, tgt_vocab_size, embed_dim=32, latent_dim=64, num_heads=2,",
        "                dense_dim=None):",
        "    vocab_size = src_vocab_size",
        "    sequence_length = SEQUENCE_LENGTH",
        "    dense_dim = dense_dim or latent_dim",
        textwrap.indent("\n".join(body), "    "),
        "    return transformer",
    ]
    return "\n".join(imports) + "\n\n\n" + "\n\n\n".join(classes.values()) + "\n\n" + CORPUS + "\n\n" + "\n".join(lines) + "\n"


def evaluate(path: Path, extra: Path | None, workdir: Path, label: str, epochs: int,
             backend: str | None = None) -> dict:
    script = to_script(path)
    runtime = detect_runtime(script, backend)
    script_path = workdir / f"{label}_script.py"
    script_path.write_text(script, encoding="utf-8")
    out = StringIO()
    code = run_verify(str(script_path), layer="TransformerDecoder", backend=backend, out=out)
    harness = workdir / f"{label}_harness.py"
    harness.write_text(make_harness(script, to_script(extra) if extra else None), encoding="utf-8")
    result = {"runtime": runtime.label, "verify_exit": code, "verify": out.getvalue()}
    try:
        probes = probe_in_runtime(harness, runtime, level="model")
        result["model_probes"] = [(p.name, p.passed, p.reason) for p in probes]
    except RuntimeError as exc:
        result["model_probes"] = [("build", False, str(exc).splitlines()[-1])]
    for key, (src_len, tgt_len) in {"train_equal": (10, 10), "train_unequal": (8, 12)}.items():
        try:
            result[key] = train_in_runtime(harness, runtime, epochs=epochs, src_len=src_len,
                                           tgt_len=tgt_len, n_train=2048, n_heldout=256)
        except RuntimeError as exc:
            result[key] = {"crash": str(exc).splitlines()[-1][:300], "src_len": src_len, "tgt_len": tgt_len}
    return result


def report(results: dict) -> str:
    lines = []
    for label, r in results.items():
        lines.append(f"## {label} ({r['runtime']})\n")
        verify = r["verify"]
        start = verify.find("Probes on")
        lines.append(f"maskfix verify (exit {r['verify_exit']}):")
        lines.append((verify[start:] if start >= 0 else verify).rstrip())
        lines.append("\nModel probes:")
        for name, passed, reason in r["model_probes"]:
            lines.append(f"  {name:28s} {'PASS' if passed else 'FAIL'}  {reason}")
        for key in ("train_equal", "train_unequal"):
            m = r[key]
            if "crash" in m:
                lines.append(f"  {key} src_len={m['src_len']} tgt_len={m['tgt_len']}: crashed: {m['crash']}")
            else:
                lines.append(f"  {key} src_len={m['src_len']} tgt_len={m['tgt_len']} epochs={m['epochs']}: "
                             f"loss {m['loss_first']:.3f} -> {m['loss_last']:.3f}, held-out token accuracy "
                             f"{m['heldout_token_accuracy']:.3f} (chance {m['chance']:.3f})")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--extra-defs", type=Path, help="file whose classes the example also needs")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                        help="Keras 3 backend (default: the one the file selects, else tensorflow)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="maskfix-evidence-") as tmp:
        results = {label: evaluate(path, args.extra_defs, Path(tmp), label, args.epochs, args.backend)
                   for label, path in (("before", args.before), ("after", args.after))}
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
