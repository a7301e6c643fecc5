"""Notebooks through the command line: one program, cell locations, faithful write-back."""

import json
from pathlib import Path

from maskfix.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


def make_notebook(path: Path) -> dict:
    source = (FIXTURES / "book_tf" / "before.py").read_text()
    layers, build = source.split("def build(")
    body = ["    " + l[4:] if l.startswith("    ") else l for l in ("def build(" + build).splitlines(True)]

    def code(text, outputs=()):
        lines = text.splitlines(True)
        return {"cell_type": "code", "execution_count": 1, "id": f"c{len(cells)}", "metadata": {},
                "outputs": list(outputs), "source": lines}

    cells = []
    cells.append(code("%pip install -q tensorflow\n!nvidia-smi"))
    cells.append(code(layers.rstrip("\n")))
    cells.append({"cell_type": "markdown", "id": "md", "metadata": {}, "source": ["## Model"]})
    cells.append(code("".join(body).rstrip("\n") + "\nmodel = build()",
                      outputs=[{"name": "stdout", "output_type": "stream", "text": ["built\n"]}]))
    nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                      "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return nb


def test_check_reports_cell_locations(tmp_path, capsys):
    nb_path = tmp_path / "translate.ipynb"
    make_notebook(nb_path)
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{nb_path}:cell 2:")
    cell2 = json.loads(nb_path.read_text())["cells"][1]["source"]
    line = int(out.split(":")[2])
    assert "attention_mask=padding_mask" in cell2[line - 1]


def test_rewrite_changes_only_code_cells_it_fixes(tmp_path, capsys):
    nb_path = tmp_path / "translate.ipynb"
    original = make_notebook(nb_path)
    assert main(["rewrite", str(nb_path)]) == 1
    new = json.loads(nb_path.read_text())
    assert [c["cell_type"] for c in new["cells"]] == [c["cell_type"] for c in original["cells"]]
    assert new["cells"][0] == original["cells"][0]  # magics untouched
    assert new["cells"][2] == original["cells"][2]
    assert new["metadata"] == original["metadata"]
    assert new["cells"][3]["outputs"] == original["cells"][3]["outputs"]
    fixed_layer = "".join(new["cells"][1]["source"])
    assert "encoder_padding_mask=None" in fixed_layer and "attention_mask=cross_attention_mask" in fixed_layer
    fixed_model = "".join(new["cells"][3]["source"])
    assert "encoder_padding_mask = tf.math.not_equal(encoder_inputs, 0)" in fixed_model
    assert "maskfix" not in fixed_layer + fixed_model  # no placeholder leaks
    text = nb_path.read_text()
    assert text.endswith("}\n") and text.startswith('{\n "cells": [\n  {\n')
    capsys.readouterr()
    assert main(["check", str(nb_path)]) == 0


def test_invalid_notebook_is_an_error_for_that_file_only(tmp_path, capsys):
    make_notebook(tmp_path / "good.ipynb")
    (tmp_path / "bad.ipynb").write_text('{"cells": [ {"cell_type": "code", "source": "MultiHeadAttention"')
    code = main(["check", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "good.ipynb:cell 2:" in out
    assert f"{tmp_path / 'bad.ipynb'}: invalid notebook" in err
    assert len(err.strip().splitlines()) == 2  # one error line plus the summary
