"""The --train table and the pictures, from recorded figures (no Keras)."""
from __future__ import annotations

import numpy as np
import pytest

from maskfix.verify.command import format_ratio_table

BUCKETS = ["T/S < 0.8", "0.8 <= T/S <= 1.25", "T/S > 1.25"]


def _run(accuracies):
    return {
        "seed": 0, "epochs": 4, "train_pairs": 100, "per_bucket": 10, "square": False,
        "epoch0_shapes": [[4, 9], [6, 6]], "epoch0_unequal": 1,
        "loss_first": 2.5, "loss_last": 1.0,
        "buckets": [{"bucket": b, "pairs": 10, "tokens": 40, "loss": 1.0 - a / 2, "accuracy": a, "baseline": 0.2}
                    for b, a in zip(BUCKETS, accuracies)],
    }


CRASHED = {
    "seed": 0, "epochs": 4, "train_pairs": 100, "per_bucket": 10, "square": False,
    "epoch0_shapes": [[4, 9], [6, 6]], "epoch0_unequal": 1,
    "crash": {"epoch": 0, "batch": 0, "shape": [4, 9],
              "error": "InvalidArgumentError: Incompatible shapes: [32,9,9] vs. [32,1,4]"},
}


def test_ratio_table_shows_each_bucket_and_the_crash():
    text = format_ratio_table([CRASHED, _run([0.61, 0.72, 0.83])], ["as written", "rewritten"], "tf_keras")
    lines = text.splitlines()
    assert "100 pairs in 2 length-bucketed batches per epoch, 1 of them with S != T" in lines[0]
    for bucket, acc in zip(BUCKETS, ("0.61", "0.72", "0.83")):
        row = next(line for line in lines if line.startswith(bucket))
        assert "0.20" in row and "(training crashed)" in row and row.endswith(acc)
    assert ("as written: crashed at epoch 1, batch 1 (S=4, T=9): InvalidArgumentError: "
            "Incompatible shapes: [32,9,9] vs. [32,1,4]") in lines
    assert "rewritten: training loss 2.50 -> 1.00" in lines


def test_pictures_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    from maskfix.verify.plots import plot_influence, plot_ratio_accuracy

    tri = np.tril(np.ones((8, 8)))
    entry = {"width": 16, "steps": 8, "source_steps": 8, "source_length": 6, "tolerance": 1e-4,
             "modes": {"implicit": {"cross": tri.tolist(), "self": tri.tolist()},
                       "explicit": {"error": "InvalidArgumentError: Incompatible shapes"}}}
    out = tmp_path / "influence.png"
    plot_influence([("as written", entry), ("rewritten", entry)], out, title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chart = tmp_path / "ratio.png"
    plot_ratio_accuracy({"tf_keras": {"original": CRASHED, "rewritten": _run([0.6, 0.7, 0.8])}}, chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["influence.png", "ratio.png"]  # no temp left


def test_verify_help_lists_train_and_plot(capsys):
    from maskfix.cli import main

    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = capsys.readouterr().out
    assert "--train" in out and "--plot OUT.png" in out and "--seed" in out


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_ratio_picture_labels_do_not_overlap():
    """Value labels, crash notes and the legend each have their own room (docs/img/ratio_accuracy.png)."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from maskfix.verify import plots

    runs = {"tf_keras": {"original": CRASHED, "rewritten": _run([0.93, 0.98, 0.97])},
            "tf_keras (square batches)": {"original": _run([0.61, 0.79, 0.83]),
                                          "rewritten": _run([0.94, 0.98, 1.0])}}
    fig = plots.ratio_accuracy_figure(runs, title="t")
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [lg.get_window_extent(renderer) for lg in fig.legends]
        legends += [ax.get_legend().get_window_extent(renderer) for ax in fig.axes if ax.get_legend()]
        assert legends, "the picture has a legend"
        for ax in fig.axes:
            frame = ax.get_window_extent(renderer)
            texts = [t.get_window_extent(renderer) for t in ax.texts]
            assert len(texts) >= 3
            for i, a in enumerate(texts):
                assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
                for b in texts[i + 1:]:
                    assert not _overlap(a, b), (ax.get_title(), a, b)
            for lg in legends:
                assert not _overlap(lg, frame), ax.get_title()
    finally:
        plt.close(fig)
