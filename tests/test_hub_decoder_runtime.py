"""keras_hub's TransformerDecoder given decoder-side encoder masks (MF001), run under Keras 3.

The source is padded to different lengths while the target stays the same: a decoder whose
cross-attention hides the source padding gives the same outputs for the real target steps; one
handed the target's padding as ``encoder_padding_mask`` cannot even run when the two lengths differ.
"""

import importlib.util
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
keras = pytest.importorskip("keras")
pytest.importorskip("keras_hub")

FIXTURES = Path(__file__).parent / "fixtures"
TARGET = np.array([[6, 7, 8, 0]])
SHORT, LONG = np.array([[3, 4, 5, 0, 0]]), np.array([[3, 4, 5, 0, 0, 0, 0, 0]])


def model_of(variant, name, builder):
    path = FIXTURES / variant / name
    spec = importlib.util.spec_from_file_location(f"hub_{variant}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keras.utils.set_random_seed(0)
    return getattr(module, builder)()


def outputs(model, source):
    return np.asarray(model([source, TARGET]))[:, :3]


def test_swapped_padding_masks_break_on_unequal_lengths_and_the_fix_hides_source_padding():
    before = model_of("hub_decoder_swapped", "before.py", "build_translator")
    with pytest.raises(Exception):
        outputs(before, SHORT)
    after = model_of("hub_decoder_swapped", "after.py", "build_translator")
    assert np.allclose(outputs(after, SHORT), outputs(after, LONG), atol=1e-5)


def test_the_targets_padding_on_the_cross_attention_breaks_on_unequal_lengths():
    model = model_of("hub_decoder_target_mask", "before.py", "Seq2Seq")
    with pytest.raises(Exception):
        outputs(model, SHORT)
