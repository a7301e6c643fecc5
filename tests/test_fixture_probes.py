"""Black-box layer probes on every golden fixture's decoder: the original fails, the fix passes.

Probes (maskfix.verify): encoder padding invariance, full source visibility, decoder causality
and unequal lengths, each with the masks Keras attaches (implicit) and with ``mask=`` passed
explicitly.  Two fixtures are left out on purpose: ``fam_square_causal`` (its self-attention mask
has a fixed length the probes do not use) and ``either_order`` (the probes pass the decoder
sequence first).
"""

from pathlib import Path

import pytest

from maskfix.verify.runtime import TF_KERAS, Runtime, detect_runtime, missing_modules, run_jobs  # noqa: E402

# Checked without importing: Keras runs in the probe subprocesses, and importing TensorFlow at
# collection would cost every xdist worker seconds of CPU and a gigabyte of memory.
MISSING = missing_modules(TF_KERAS) + missing_modules(Runtime("keras3"))
if MISSING:
    pytest.skip(f"{', '.join(MISSING)} not installed", allow_module_level=True)

# One xdist worker builds this module's shared fixture once (pyproject: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("fixture_probes")

FIXTURES = Path(__file__).parent / "fixtures"

# fixture -> (decoder class, constructor overrides, probe modes)
CASES = {
    "book_tf": ("TransformerDecoder", {}, []),
    "kerasio_tf": ("DecoderBlock", {}, []),
    "upfront": ("DecoderLayer", {}, []),
    "positional_tf": ("Decoder", {}, []),
    "band_part_staticmethod": ("Decoder", {}, []),
    "own_mha_class": ("Decoder", {}, []),
    "tf_function_hints": ("TypedDecoder", {}, []),
    "raw_mask": ("Decoder", {}, []),
    "unresolved_call_site": ("Dec", {}, []),
    "comment_dense": ("Decoder", {}, []),
    "dialect_tf_keras_package": ("Decoder", {}, []),
    "dialect_keras_tf_keras": ("Decoder", {}, []),
    "fam_causal_flag_default": ("Decoder", {}, ["implicit"]),  # no mask parameter
    "kerasio_keras3": ("TransformerDecoder", {}, []),
    "fam_causal_flag_call": ("DecoderLayer", {}, ["implicit"]),  # no mask parameter
    "fam_causal_flag_shared": ("Block", {}, ["implicit"]),
    "else_mask": ("CrossDecoder", {}, []),
    "oneline": ("Dec", {"d": 16, "h": 2}, []),
    "causal_only": ("Block", {}, ["implicit"]),  # no mask parameter
    "keras_alias_K": ("MaskedDecoderBlock", {}, []),
    "tril_module_helper": ("TranslatorDecoder", {}, []),
    "mha_list_build": ("StackedDecoder", {}, []),
    "subclassed_model": ("Decoder", {}, []),
    # MF008: the before fails decoder causality (at inference, or only with training=True)
    "fam_noncausal_padding_only": ("TranslationDecoder", {}, []),
    "fam_noncausal_flag_off_training": ("DecoderBlock", {}, ["implicit"]),  # no mask parameter
    "fam_submodel_callers_keras3": ("TargetBlock", {}, []),
    "fam_submodel_callers_tf": ("Decoding", {}, []),
    "zip_attention_lists": ("StackDecoder", {}, []),
    "own_attention_positional": ("Decoder", {}, []),
    "list_input_decoder": ("PairDecoder", {}, []),  # one list input: called with [x, e], mask=[dm, em]
}


def _runtime_of(fixture):
    return detect_runtime((FIXTURES / fixture / "before.py").read_text())


@pytest.fixture(scope="module")
def results():
    """{(fixture, 'before'|'after'): [probe dicts]}, one worker process per runtime."""
    groups = {}
    for fixture in CASES:
        groups.setdefault(_runtime_of(fixture).label, []).append(fixture)
    out = {}
    for fixtures in groups.values():
        runtime = _runtime_of(fixtures[0])
        jobs, keys = [], []
        for fixture in fixtures:
            cls, init, modes = CASES[fixture]
            for which in ("before", "after"):
                jobs.append({"path": str(FIXTURES / fixture / f"{which}.py"),
                             "tasks": [{"kind": "layer_probes", "layer": cls, "init": init, "modes": modes}]})
                keys.append((fixture, which))
        done = run_jobs(runtime, jobs)
        for key, job in zip(keys, done["jobs"]):
            assert "error" not in job, (key, job.get("error"))
            task = job["tasks"][0]
            assert "error" not in task, (key, task.get("error"))
            out[key] = task["probes"]
    return out


def _table(probes):
    return "\n".join(f"{'PASS' if p['passed'] else 'FAIL'} {p['name']}: {p['reason']}" for p in probes)


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_rewritten_decoder_passes_every_probe(results, fixture):
    probes = results[(fixture, "after")]
    assert len(probes) >= 4
    assert all(p["passed"] for p in probes), _table(probes)


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_original_decoder_fails_a_probe(results, fixture):
    probes = results[(fixture, "before")]
    assert not all(p["passed"] for p in probes), _table(probes)
