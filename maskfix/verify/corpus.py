"""A synthetic parallel corpus whose target/source length ratios span about 0.5 to 2, batched by length.

Pure numpy, no Keras: the corpus, the ratio buckets of the validation set, and length-bucketed
batches padded to their own longest source and target (so batches differ in S and T, and S != T
is the rule rather than the exception).

Ids follow the bundled examples: 0 pads, 1 starts the decoder input, 2 ends the target, words
start at 3. Each source word belongs to one of three classes, fixed by the vocabulary size alone
(the same for every seed, so training and validation share one "language"): dropped words produce
nothing, plain words one target word, split words two. The target is the source translated word
by word in order. Sentences choose their words' classes with a per-sentence preference, so
ratios spread from short targets (many dropped words) to long ones (many split words).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

PAD_ID, START_ID, END_ID, FIRST_WORD_ID = 0, 1, 2, 3
DROPPED, PLAIN, SPLIT = 0, 1, 2

# Validation strata by target/source word-count ratio: (name, low, high), low <= ratio < high.
RATIO_BUCKETS: Tuple[Tuple[str, float, float], ...] = (
    ("T/S < 0.8", 0.0, 0.8),
    ("0.8 <= T/S <= 1.25", 0.8, 1.25 + 1e-9),
    ("T/S > 1.25", 1.25 + 1e-9, math.inf),
)

Pair = Tuple[np.ndarray, np.ndarray]  # source word ids, target word ids (no start/end tokens)


@dataclass(frozen=True)
class Lexicon:
    """Word classes and translations for a source vocabulary of ``src_vocab_size`` ids."""

    src_vocab_size: int
    classes: Tuple[int, ...]  # per source word (index = id - FIRST_WORD_ID)
    outputs: Tuple[Tuple[int, ...], ...]  # target ids per source word
    tgt_vocab_size: int

    def translate(self, words: Sequence[int]) -> np.ndarray:
        out = [t for w in words for t in self.outputs[int(w) - FIRST_WORD_ID]]
        return np.asarray(out, dtype="int64")

    def words_of(self, cls: int) -> np.ndarray:
        return np.asarray([FIRST_WORD_ID + i for i, c in enumerate(self.classes) if c == cls], dtype="int64")


def make_lexicon(src_vocab_size: int = 16) -> Lexicon:
    """A quarter of the words dropped, a quarter split in two, the rest translated one to one."""
    n_words = src_vocab_size - FIRST_WORD_ID
    if n_words < 4:
        raise ValueError("src_vocab_size must leave at least 4 word ids (>= 7)")
    rng = np.random.default_rng(12345)  # fixed: the language does not depend on the sample seed
    order = rng.permutation(n_words)
    n_drop = n_split = max(1, n_words // 4)
    classes = [PLAIN] * n_words
    for i in order[:n_drop]:
        classes[i] = DROPPED
    for i in order[n_drop:n_drop + n_split]:
        classes[i] = SPLIT
    n_targets = sum(classes)  # one id per plain word, two per split word
    ids = iter(FIRST_WORD_ID + rng.permutation(n_targets))
    outputs = tuple(tuple(int(next(ids)) for _ in range(c)) for c in classes)
    return Lexicon(src_vocab_size, tuple(classes), outputs, FIRST_WORD_ID + n_targets)


def _class_weights(ratio: float) -> Tuple[float, float, float]:
    """Probabilities of (dropped, plain, split) words whose expected output per word is ``ratio``."""
    if ratio < 1:
        return 1 - ratio, ratio, 0.0
    return 0.0, 2 - ratio, ratio - 1


def make_ratio_corpus(seed: int, n: int, lexicon: Optional[Lexicon] = None, min_words: int = 3,
                      max_words: int = 8) -> List[Pair]:
    """``n`` pairs whose ratio aims at a log-uniform draw from [0.5, 2].

    Realised ratios scatter around the aim; sentences below 0.5 are drawn again, so every ratio
    lies in [0.5, 2].
    """
    lexicon = lexicon or make_lexicon()
    rng = np.random.default_rng(seed)
    by_class = [lexicon.words_of(c) for c in (DROPPED, PLAIN, SPLIT)]
    pairs = []
    for _ in range(n):
        length = int(rng.integers(min_words, max_words + 1))
        aim = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        cls = rng.choice(3, size=length, p=_class_weights(aim))
        while 2 * cls.sum() < length:
            cls = rng.choice(3, size=length, p=_class_weights(aim))
        words = np.asarray([rng.choice(by_class[c]) for c in cls], dtype="int64")
        pairs.append((words, lexicon.translate(words)))
    return pairs


def ratio(pair: Pair) -> float:
    """Target words per source word."""
    return len(pair[1]) / len(pair[0])


def ratio_bucket(pair: Pair) -> int:
    r = ratio(pair)
    return next(i for i, (_, low, high) in enumerate(RATIO_BUCKETS) if low <= r < high)


def stratified_split(pairs: Sequence[Pair], per_bucket: int, seed: int = 0
                     ) -> Tuple[List[Pair], Dict[str, List[Pair]]]:
    """``per_bucket`` pairs of every ratio bucket for validation (seeded draw); the rest to train.

    Raises ValueError when a bucket has fewer than ``2 * per_bucket`` pairs, so that training
    keeps at least as many of each ratio as validation measures.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    members: List[List[int]] = [[] for _ in RATIO_BUCKETS]
    for i in order:
        members[ratio_bucket(pairs[i])].append(int(i))
    held = set()
    validation = {}
    for (name, _, _), idx in zip(RATIO_BUCKETS, members):
        if len(idx) < 2 * per_bucket:
            raise ValueError(f"only {len(idx)} pairs with {name}; need {2 * per_bucket}")
        validation[name] = [pairs[i] for i in idx[:per_bucket]]
        held.update(idx[:per_bucket])
    train = [p for i, p in enumerate(pairs) if i not in held]
    return train, validation


@dataclass
class Batch:
    """Arrays padded to this batch's own longest source (S) and target (T, with start/end)."""

    encoder_inputs: np.ndarray  # [B, S]
    decoder_inputs: np.ndarray  # [B, T]: START + target
    decoder_targets: np.ndarray  # [B, T]: target + END
    weights: np.ndarray  # [B, T]: 1.0 on real target tokens

    @property
    def shape(self) -> Tuple[int, int]:
        """(S, T)."""
        return self.encoder_inputs.shape[1], self.decoder_inputs.shape[1]


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def pad_batch(pairs: Sequence[Pair], square: bool = False, round_to: int = 1) -> Batch:
    """Pad to the longest source and target in ``pairs`` (both to the larger one if ``square``),
    rounded up to a multiple of ``round_to``."""
    s_len = _round_up(max(len(s) for s, _ in pairs), round_to)
    t_len = _round_up(max(len(t) for _, t in pairs) + 1, round_to)
    if square:
        s_len = t_len = max(s_len, t_len)
    enc = np.full((len(pairs), s_len), PAD_ID, dtype="int64")
    dec = np.full((len(pairs), t_len), PAD_ID, dtype="int64")
    out = np.full((len(pairs), t_len), PAD_ID, dtype="int64")
    for row, (s, t) in enumerate(pairs):
        enc[row, : len(s)] = s
        dec[row, : len(t) + 1] = np.concatenate([[START_ID], t])
        out[row, : len(t) + 1] = np.concatenate([t, [END_ID]])
    return Batch(enc, dec, out, (out != PAD_ID).astype("float32"))


def length_buckets(max_words: int, width: int = 2) -> List[int]:
    """Source-length bucket boundaries in the sense of ``tf.data`` ``bucket_by_sequence_length``."""
    return list(range(1 + width, max_words + 1, width))


def bucket_batches(pairs: Sequence[Pair], batch_size: int, boundaries: Sequence[int],
                   seed: Optional[int] = None, square: bool = False, round_to: int = 1,
                   drop_short: bool = False) -> List[Batch]:
    """Batches of pairs whose source lengths fall in the same bucket, each padded to its own maximum.

    Pairs go to bucket ``i`` when ``boundaries[i-1] <= len(source) < boundaries[i]``. With a
    seed, pairs are shuffled within their bucket and the batches are shuffled; the number of
    batches depends only on the bucket sizes, so it is the same every epoch. ``round_to`` > 1
    rounds the padded lengths up and ``drop_short`` drops each bucket's short last batch: fewer
    distinct shapes for a compiler that works per shape (the dropped pairs change every epoch).
    """
    rng = np.random.default_rng(seed) if seed is not None else None
    groups: List[List[int]] = [[] for _ in range(len(boundaries) + 1)]
    for i, (s, _) in enumerate(pairs):
        groups[int(np.searchsorted(boundaries, len(s), side="right"))].append(i)
    chunks = []
    for idx in groups:
        if rng is not None:
            idx = list(rng.permutation(idx))
        chunks += [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
        if drop_short and len(chunks) > 1 and len(chunks[-1]) < batch_size:
            chunks.pop()
    if rng is not None:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return [pad_batch([pairs[i] for i in chunk], square, round_to) for chunk in chunks]


def iterate_pairs(pairs: Sequence[Pair], seed: int) -> Iterator[Pair]:
    """``pairs`` in a seeded random order (the input order of a ``tf.data`` pipeline)."""
    for i in np.random.default_rng(seed).permutation(len(pairs)):
        yield pairs[int(i)]


def majority_token(batches: Sequence[Batch]) -> int:
    """The most frequent real target token: predicting it always is the baseline to beat."""
    tokens = np.concatenate([b.decoder_targets[b.weights > 0] for b in batches])
    return int(np.bincount(tokens).argmax())
