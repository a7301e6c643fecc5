"""Other calls of a decoder sub-model that the rewrite gives an ``encoder_padding_mask`` input."""

from pathlib import Path

import pytest

from maskfix import engine

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
BEFORE = (FIXTURES / "fam_submodel_callers_keras3" / "before.py").read_text()


def run(sources, fix=False):
    out = engine.run(sources, fix=fix)
    assert not any(o.error for o in out.values()), {k: o.error for k, o in out.items()}
    return out


def codes(outcome):
    return [f.code for f in outcome.findings]


def test_every_call_of_the_sub_model_gets_the_mask():
    new = engine.rewrite_source(BEFORE)
    assert "decoder.predict([out, memory, ops.not_equal(source_ids, 0)], verbose=0)" in new
    assert "decoder([target, encoder(source), ops.not_equal(source, 0)])" in new


def test_a_call_whose_encoder_states_cannot_be_followed_blocks_the_sub_model_change():
    source = BEFORE.replace("memory = encoder.predict(source_ids, verbose=0)", "memory = load_states(source_ids)")
    out = run({"m.py": source}, fix=True)["m.py"]
    assert codes(out) == ["MF001", "MF002"]
    assert "`decoder.predict`" in out.findings[1].message and "line 77" in out.findings[1].message
    # the layer is fixed; the sub-model keeps its two inputs, so no call of it breaks
    assert "keras.Model([target, memory_in], probs)" in out.new_source
    assert "decoder.predict([out, memory], verbose=0)" in out.new_source


@pytest.mark.parametrize("call", ["decoder.fit([out, memory], out)", "decoder.predict([out] + [memory])"])
def test_calls_that_cannot_be_updated_are_reported(call):
    source = BEFORE.replace("probs = decoder.predict([out, memory], verbose=0)", f"probs = {call}")
    out = run({"m.py": source}, fix=True)["m.py"]
    assert codes(out) == ["MF001", "MF002"]
    assert "keras.Model([target, memory_in], probs)" in out.new_source


def test_a_local_model_of_the_same_name_is_another_model():
    source = BEFORE.replace(
        "def greedy_translate(source_ids, start_id=1, steps=6):\n",
        "def score(path, batch):\n    decoder = keras.models.load_model(path)\n    return decoder.predict(batch)\n\n\n"
        "def greedy_translate(source_ids, start_id=1, steps=6):\n")
    out = run({"m.py": source}, fix=True)["m.py"]
    assert codes(out) == ["MF001"]
    assert "return decoder.predict(batch)\n" in out.new_source


def test_a_call_in_another_file_is_reported_and_nothing_breaks():
    head, tail = BEFORE.split("encoder, decoder, translator = build_translator()")
    other = ("import numpy as np\nfrom model import build_translator\n\n"
             "encoder, decoder, translator = build_translator()" + tail)
    out = run({"model.py": head, "infer.py": other}, fix=True)
    assert codes(out["model.py"]) == ["MF001", "MF002"]
    message = out["model.py"].findings[1].message
    assert "`decoder.predict` in another file" in message and "infer.py line" in message
    assert "keras.Model([target, memory_in], probs)" in out["model.py"].new_source
    assert out["infer.py"].new_source is None
