"""Other calls of a decoder sub-model that the rewrite gives an ``encoder_padding_mask`` input."""

import re
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


def flat(text):
    """``text`` on one line, whatever the rewrite's line wrapping."""
    return re.sub(r"([(\[]) | ([)\]])", r"\1\2", " ".join(text.split()))


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


def test_a_helper_given_the_sub_model_gets_the_mask_as_a_new_parameter():
    source = BEFORE.replace(
        "    translator = keras.Model([source, target], decoder([target, encoder(source)]))\n",
        "    translator = keras.Model([source, target], run_model(decoder, target, encoder(source)))\n",
    ).replace("def build_translator(", "def run_model(model, tokens, states):\n    return model([tokens, states])\n\n\n"
              "def build_translator(")
    out = run({"m.py": source}, fix=True)["m.py"]
    assert codes(out) == ["MF001"]
    new = flat(out.new_source)
    assert ("def run_model(model, tokens, states, encoder_padding_mask=None): "
            "return model([tokens, states, encoder_padding_mask])") in new
    assert "run_model(decoder, target, encoder(source), encoder_padding_mask=ops.not_equal(source, 0))" in new
    assert not run({"m.py": out.new_source})["m.py"].findings


def test_states_from_a_one_line_helper_and_a_closure_are_followed():
    source = BEFORE.replace(
        "    memory = encoder.predict(source_ids, verbose=0)\n",
        "    memory = encode(source_ids)\n",
    ).replace(
        "        probs = decoder.predict([out, memory], verbose=0)\n",
        "        def step():\n            return decoder.predict([out, memory], verbose=0)\n        probs = step()\n",
    ).replace("def greedy_translate(", "def encode(ids):\n    return encoder.predict(ids, verbose=0)\n\n\n"
              "def greedy_translate(")
    out = run({"m.py": source}, fix=True)["m.py"]
    assert codes(out) == ["MF001"]
    assert "return decoder.predict([out, memory, ops.not_equal(source_ids, 0)], verbose=0)" in flat(out.new_source)


def test_each_caller_of_a_helper_passes_the_mask_of_its_own_source():
    source = BEFORE.replace(
        "        probs = decoder.predict([out, memory], verbose=0)\n",
        "        probs = step(out, memory)\n",
    ).replace("def greedy_translate(", "def step(prefix, states):\n    return decoder.predict([prefix, states])\n\n\n"
              "def greedy_translate(") + (
        "\n\ndef score(ids, prefix):\n    return step(prefix, encoder.predict(ids))\n")
    out = run({"m.py": source}, fix=True)["m.py"]
    assert codes(out) == ["MF001"]
    new = flat(out.new_source)
    assert "probs = step(out, memory, encoder_padding_mask=ops.not_equal(source_ids, 0))" in new
    assert "return step(prefix, encoder.predict(ids), encoder_padding_mask=ops.not_equal(ids, 0))" in new
    # a caller whose states cannot be followed leaves the helper and the sub-model as they are
    blocked = source.replace("step(prefix, encoder.predict(ids))", "step(prefix, ids)")
    out = run({"m.py": blocked}, fix=True)["m.py"]
    assert codes(out) == ["MF001", "MF002"]
    assert "def step(prefix, states):\n" in out.new_source
