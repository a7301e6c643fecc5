"""The varied-ratio corpus, length-bucketed batching and the ratio-stratified split (no Keras)."""
from __future__ import annotations

import numpy as np
import pytest

from maskfix.verify.corpus import (DROPPED, END_ID, PAD_ID, PLAIN, RATIO_BUCKETS, SPLIT, START_ID,
                                   bucket_batches, length_buckets, make_lexicon, make_ratio_corpus,
                                   majority_token, pad_batch, ratio, ratio_bucket, stratified_split)

# One xdist worker builds this module's shared fixture once (pyproject: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("corpus")


@pytest.fixture(scope="module")
def corpus():
    return make_ratio_corpus(0, 1500)


def test_lexicon_is_a_fixed_language():
    lexicon = make_lexicon(16)
    assert lexicon == make_lexicon(16)  # independent of any sample seed
    assert {len(out) for out in lexicon.outputs} == {0, 1, 2}
    assert [len(out) for out in lexicon.outputs] == list(lexicon.classes)
    targets = [t for out in lexicon.outputs for t in out]
    assert len(set(targets)) == len(targets)  # a target id names one source word
    assert min(targets) >= 3 and max(targets) < lexicon.tgt_vocab_size
    counts = {c: lexicon.classes.count(c) for c in (DROPPED, PLAIN, SPLIT)}
    assert counts[DROPPED] >= 1 and counts[SPLIT] >= 1 and counts[PLAIN] > counts[SPLIT]


def test_ratio_distribution_spans_half_to_double(corpus):
    ratios = np.array([ratio(p) for p in corpus])
    assert ratios.min() >= 0.5 and ratios.max() <= 2.0
    assert np.mean(ratios <= 0.6) > 0.05 and np.mean(ratios >= 1.8) > 0.05  # both ends are reached
    shares = np.bincount([ratio_bucket(p) for p in corpus], minlength=3) / len(corpus)
    assert (shares > 0.2).all(), shares  # every validation stratum is well filled
    lexicon = make_lexicon()
    for src, tgt in corpus[:50]:
        assert 3 <= len(src) <= 8 and src.min() >= 3
        assert np.array_equal(tgt, lexicon.translate(src))


def test_corpus_is_deterministic_with_a_seed():
    a, b, c = make_ratio_corpus(3, 40), make_ratio_corpus(3, 40), make_ratio_corpus(4, 40)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_ratio_buckets_match_their_names():
    assert [ratio_bucket((np.ones(n), np.ones(m))) for n, m in [(5, 3), (5, 4), (4, 5), (4, 6)]] == [0, 1, 1, 2]
    assert [b[0] for b in RATIO_BUCKETS] == ["T/S < 0.8", "0.8 <= T/S <= 1.25", "T/S > 1.25"]


def test_stratified_split(corpus):
    train, validation = stratified_split(corpus, per_bucket=50, seed=1)
    assert list(validation) == [name for name, _, _ in RATIO_BUCKETS]
    for i, (name, pairs) in enumerate(validation.items()):
        assert len(pairs) == 50 and {ratio_bucket(p) for p in pairs} == {i}
    assert len(train) == len(corpus) - 150
    held = {id(p) for pairs in validation.values() for p in pairs}
    assert not held & {id(p) for p in train}
    again = stratified_split(corpus, per_bucket=50, seed=1)[1]
    assert all(x is y for name in validation for x, y in zip(validation[name], again[name]))
    with pytest.raises(ValueError, match="only"):
        stratified_split(corpus[:40], per_bucket=50)


def test_pad_batch_pads_to_its_own_maximum():
    pairs = [(np.array([3, 4, 5]), np.array([6])), (np.array([7]), np.array([8, 9, 10, 11]))]
    b = pad_batch(pairs)
    assert b.shape == (3, 5)
    assert b.encoder_inputs.tolist() == [[3, 4, 5], [7, 0, 0]]
    assert b.decoder_inputs.tolist() == [[START_ID, 6, 0, 0, 0], [START_ID, 8, 9, 10, 11]]
    assert b.decoder_targets.tolist() == [[6, END_ID, 0, 0, 0], [8, 9, 10, 11, END_ID]]
    assert b.weights.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert pad_batch(pairs, square=True).shape == (5, 5)


def test_bucketed_batches_differ_in_source_and_target_length(corpus):
    boundaries = length_buckets(8)
    batches = bucket_batches(corpus, 32, boundaries, seed=0)
    assert sum(len(b.encoder_inputs) for b in batches) == len(corpus)
    shapes = [b.shape for b in batches]
    for b in batches:
        src_lengths = (b.encoder_inputs != PAD_ID).sum(1)
        tgt_lengths = (b.decoder_targets != PAD_ID).sum(1)
        # padded to its own maximum, no further, and one source-length bucket per batch
        assert src_lengths.max() == b.shape[0] and tgt_lengths.max() == b.shape[1]
        assert len(set(np.searchsorted(boundaries, src_lengths, side="right"))) == 1
    assert len({s for s, _ in shapes}) > 1 and len({t for _, t in shapes}) > 1
    assert sum(s != t for s, t in shapes) > len(shapes) // 2  # S != T is the rule
    # Another epoch: another order, the same number of batches; square padding makes S == T.
    again = bucket_batches(corpus, 32, boundaries, seed=1)
    assert len(again) == len(batches) and [b.shape for b in again] != shapes
    assert all(s == t for s, t in (b.shape for b in bucket_batches(corpus, 32, boundaries, 0, square=True)))


def test_majority_token_is_the_most_frequent_real_target():
    b = pad_batch([(np.array([3]), np.array([5, 5, 6])), (np.array([3, 4]), np.array([6]))])
    # targets: 5 5 6 END / 6 END: END (2) and 6 tie with 5 at two each; bincount picks the smallest id
    assert majority_token([b]) == END_ID
