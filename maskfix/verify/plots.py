"""Pictures of verification results (matplotlib, imported lazily, no display needed).

* :func:`plot_influence`: the measured T x S and T x T influence of a decoder layer, original and
  rewritten side by side, one row per mask-passing mode;
* :func:`plot_ratio_accuracy`: validation token accuracy per length-ratio bucket, original and
  rewritten, per runtime, with the majority-token baseline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("matplotlib not installed: install maskfix[verify]") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> None:
    """Write the PNG atomically: a reader never sees half a picture."""
    import os
    import tempfile

    out = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=str(out.parent or "."))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # an ordinary new file, not mkstemp's private one
    try:
        # Fixed metadata: the same figures give the same bytes.
        fig.savefig(tmp, dpi=110, metadata={"Software": None})
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def plot_influence(panels: Sequence[Tuple[str, dict]], out: Path, title: str = "") -> None:
    """``panels``: (column title, result of ``influence_matrices``) pairs, e.g. original and
    rewritten. Draws, per mode, the cross and self influence of each, log scale; cells below the
    probes' tolerance are white, padded source columns are hatched red."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    modes = list(panels[0][1]["modes"])
    ncols = 2 * len(panels)
    fig, axes = plt.subplots(len(modes), ncols, figsize=(3.1 * ncols, 3.0 * len(modes) + 0.8),
                             squeeze=False, constrained_layout=True)
    cmap = plt.get_cmap("viridis").with_extremes(under="white")
    image = None
    for col, (name, data) in enumerate(panels):
        tol = data["tolerance"]
        norm = LogNorm(vmin=tol, vmax=10.0)
        for row, mode in enumerate(modes):
            entry = data["modes"][mode]
            for k, which in enumerate(("cross", "self")):
                ax = axes[row][2 * col + k]
                heading = f"{name}\n{'T x S: source -> step' if which == 'cross' else 'T x T: step -> step'}"
                ax.set_title(heading + f" [{mode}]", fontsize=8)
                width = data["source_steps"] if which == "cross" else data["steps"]
                if "error" in entry:
                    ax.set_xlim(0, 1)
                    ax.set_ylim(0, 1)
                    ax.text(0.5, 0.5, "crashed:\n" + _wrap(entry["error"], 34), ha="center", va="center",
                            fontsize=6, color="darkred")
                    ax.set_xticks([])
                    ax.set_yticks([])
                    continue
                matrix = np.asarray(entry[which])
                image = ax.imshow(np.maximum(matrix, tol * 0.5), cmap=cmap, norm=norm, aspect="equal",
                                  interpolation="nearest")
                ax.set_xticks(range(width))
                ax.set_yticks(range(data["steps"]))
                ax.tick_params(labelsize=6)
                ax.set_xlabel("source position" if which == "cross" else "decoder input step", fontsize=7)
                ax.set_ylabel("output step", fontsize=7)
                if which == "cross":
                    pad_from = data["source_length"]
                    for s in range(pad_from, width):
                        ax.add_patch(Rectangle((s - 0.5, -0.5), 1, data["steps"], fill=False, hatch="///",
                                               edgecolor="red", linewidth=0.0))
                    labels = [str(s) if s < pad_from else "pad" for s in range(width)]
                    ax.set_xticklabels(labels)
                    for tick, s in zip(ax.get_xticklabels(), range(width)):
                        if s >= pad_from:
                            tick.set_color("red")
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.6, extend="min")
        bar.set_label("how far the output step moves (white: not at all)", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    _save(fig, out)
    plt.close(fig)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:6])


def _bucket_label(bucket: str) -> str:
    """``T/S < 0.8`` -> ``< 0.8``; ``0.8 <= T/S <= 1.25`` -> ``0.8 to 1.25``."""
    low, sep, high = bucket.partition(" <= T/S <= ")
    if sep:
        return f"{low} to {high}"
    return bucket.replace("T/S ", "")


# Bars reach 1.0 and their value labels a little above; crash notes go in the band above that.
_NOTE_BAND = 1.38


def ratio_accuracy_figure(runs: Dict[str, Dict[str, Optional[dict]]], title: str = ""):
    """The figure of :func:`plot_ratio_accuracy`, not yet saved (tests measure its layout)."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    labels = list(runs)
    fig, axes = plt.subplots(1, len(labels), figsize=(3.6 * len(labels), 3.6), squeeze=False,
                             constrained_layout=True)
    colours = {"original": "#d95f02", "rewritten": "#1b9e77"}
    shown = set()
    for ax, label in zip(axes[0], labels):
        ax.set_title(label, fontsize=9)
        ax.set_ylim(0, _NOTE_BAND)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_ylabel("validation token accuracy", fontsize=8)
        buckets: List[str] = []
        notes = []
        for k, (which, metrics) in enumerate(runs[label].items()):
            if not metrics:
                continue
            if "crash" in metrics:
                c = metrics["crash"]
                shape = f" (S={c['shape'][0]}, T={c['shape'][1]})" if c.get("shape") else ""
                notes.append(f"{which}: crashed at epoch {c['epoch'] + 1}, batch {c['batch'] + 1}{shape}")
                continue
            rows = metrics["buckets"]
            buckets = [r["bucket"] for r in rows]
            xs = np.arange(len(rows)) + (k - 0.5) * 0.38
            accs = [r.get("accuracy", 0.0) for r in rows]
            ax.bar(xs, accs, width=0.36, color=colours.get(which, "grey"))
            shown.add(which)
            for xpos, r in zip(xs, rows):
                text = f"{r['accuracy']:.2f}" if "accuracy" in r else "crash"
                ax.text(xpos, r.get("accuracy", 0.0) + 0.015, text, ha="center", va="bottom", fontsize=6)
            base = [r.get("baseline") for r in rows]
            if all(b is not None for b in base):
                ax.hlines(base, np.arange(len(rows)) - 0.4, np.arange(len(rows)) + 0.4, colors="black",
                          linestyles="dashed", linewidth=0.8)
                shown.add("baseline")
        ax.axhline(1.0, color="0.85", linewidth=0.6, zorder=0)
        ax.set_xticks(range(len(buckets)))
        ax.set_xticklabels([_bucket_label(b) for b in buckets], fontsize=7)
        ax.set_xlabel("target/source length ratio", fontsize=8)
        if notes:
            ax.text(0.5, 0.985, "\n".join(_wrap(n, 60) for n in notes), transform=ax.transAxes, ha="center",
                    va="top", fontsize=6, color="darkred")
    # One legend for the figure, under the panels: inside a panel it covered bars and baselines.
    handles = [Patch(color=colours[w], label=w) for w in colours if w in shown]
    if "baseline" in shown:
        handles.append(Line2D([], [], color="black", linestyle="dashed", linewidth=0.8, label="majority token"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_ratio_accuracy(runs: Dict[str, Dict[str, Optional[dict]]], out: Path, title: str = "") -> None:
    """``runs``: runtime label -> {"original": metrics, "rewritten": metrics} from
    ``train_by_ratio``. One panel per runtime: bars of validation token accuracy per ratio
    bucket, the majority-token baseline as a line; a crashed run is written in its panel."""
    plt = _pyplot()
    fig = ratio_accuracy_figure(runs, title)
    _save(fig, out)
    plt.close(fig)
