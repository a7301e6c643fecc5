"""Brief, deterministic training of an example module's seq2seq model.

The module must define ``build_model(src_vocab_size, tgt_vocab_size, embed_dim=..., ...)`` like
the bundled examples. :func:`train_by_ratio` trains it on length-bucketed batches of the
varied-ratio corpus of ``corpus.py`` and validates per length-ratio bucket; the older
:func:`train_briefly` trains on arrays of one fixed length from the module's own
``make_corpus(seed, n, src_len, tgt_len, src_vocab_size)``. Both run in the current process, on
whatever Keras runtime it has loaded, and give the same figures for the same seed.
"""
from __future__ import annotations

import numpy as np

from maskfix.verify.kerasenv import load_keras


def _majority_accuracy(targets: np.ndarray, weights: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent real target token: the chance baseline."""
    real = targets[weights > 0]
    if real.size == 0:
        return 0.0
    return float(np.bincount(real).max() / real.size)


def train_briefly(
    module,
    seed: int = 0,
    epochs: int = 3,
    src_len: int = 8,
    tgt_len: int = 10,
    n_train: int = 768,
    n_heldout: int = 128,
    src_vocab_size: int = 16,
    embed_dim: int = 32,
    latent_dim: int = 64,
    num_heads: int = 2,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
) -> dict:
    """Train ``module.build_model`` for a few epochs on ``module.make_corpus`` data.

    Returns ``loss_first`` / ``loss_last`` (mean training loss of the first and last epoch),
    ``heldout_token_accuracy`` (argmax accuracy on real target tokens of a held-out corpus drawn
    with another seed) and ``chance`` (majority-token accuracy on the same tokens).
    """
    keras = load_keras()
    keras.utils.set_random_seed(seed)
    enc, dec, tgt = module.make_corpus(seed, n_train, src_len, tgt_len, src_vocab_size)
    h_enc, h_dec, h_tgt = module.make_corpus(seed + 10_000, n_heldout, src_len, tgt_len, src_vocab_size)
    tgt_vocab = getattr(module, "target_vocab_size", lambda v: v)(src_vocab_size)
    model = module.build_model(
        src_vocab_size,
        tgt_vocab,
        embed_dim=embed_dim,
        latent_dim=latent_dim,
        num_heads=num_heads,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
    )
    weights = (tgt != 0).astype("float32")
    history = model.fit(
        [enc, dec],
        tgt,
        sample_weight=weights,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
    )
    probs = np.asarray(model.predict([h_enc, h_dec], batch_size=n_heldout, verbose=0))
    h_weights = (h_tgt != 0).astype("float32")
    correct = (probs.argmax(-1) == h_tgt) & (h_weights > 0)
    losses = [float(v) for v in history.history["loss"]]
    return {
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "heldout_token_accuracy": float(correct.sum() / h_weights.sum()),
        "chance": _majority_accuracy(h_tgt, h_weights),
        "epochs": epochs,
        "src_len": src_len,
        "tgt_len": tgt_len,
        "n_train": n_train,
    }


# -- length-bucketed training, validated by length ratio -------------------------------------------

_MODEL_SIZES = ("embed_dim", "latent_dim", "dense_dim", "num_heads", "dropout")


def _build(module, keras, src_vocab: int, tgt_vocab: int, sizes: dict):
    """``module.build_model`` with the sizes it accepts (the examples' signature)."""
    import inspect

    build = getattr(module, "build_model", None)
    if build is None:
        raise LookupError("no build_model(src_vocab_size, tgt_vocab_size, ...) function in the file")
    params = inspect.signature(build).parameters
    return build(src_vocab, tgt_vocab, **{k: v for k, v in sizes.items() if k in params})


def _uses_tf_data() -> bool:
    from maskfix.verify import kerasenv

    return kerasenv.legacy_requested() or load_keras().backend.backend() == "tensorflow"


def tf_bucketed_dataset(pairs, batch_size: int, boundaries, seed: int, square: bool = False,
                        first_epoch: int = 0):
    """A ``tf.data`` pipeline: pairs in a seeded order per epoch, grouped by source length with
    ``bucket_by_sequence_length``, each batch padded to its own longest source and target."""
    import tensorflow as tf

    from maskfix.verify.corpus import END_ID, START_ID, iterate_pairs

    epoch = [first_epoch]

    def generate():
        order, epoch[0] = seed + epoch[0], epoch[0] + 1  # a new order every epoch, reproducibly
        for src, tgt in iterate_pairs(pairs, order):
            yield src, np.concatenate([[START_ID], tgt]), np.concatenate([tgt, [END_ID]])

    spec = tf.TensorSpec([None], tf.int64)
    ds = tf.data.Dataset.from_generator(generate, output_signature=(spec, spec, spec))
    ds = ds.bucket_by_sequence_length(
        lambda src, dec, out: tf.shape(src)[0], list(boundaries), [batch_size] * (len(boundaries) + 1))

    def to_model(src, dec, out):
        if square:  # pad both sides to the larger length: S == T in every batch
            n = tf.maximum(tf.shape(src)[1], tf.shape(dec)[1])
            src = tf.pad(src, [[0, 0], [0, n - tf.shape(src)[1]]])
            dec = tf.pad(dec, [[0, 0], [0, n - tf.shape(dec)[1]]])
            out = tf.pad(out, [[0, 0], [0, n - tf.shape(out)[1]]])
        return (src, dec), out, tf.cast(tf.not_equal(out, 0), tf.float32)

    return ds.map(to_model)


def py_bucketed_dataset(pairs, batch_size: int, boundaries, seed: int, square: bool = False,
                        round_to: int = 1):
    """The same batching as a ``keras.utils.PyDataset`` (any Keras 3 backend): numpy batches
    from :func:`maskfix.verify.corpus.bucket_batches`, reshuffled every epoch."""
    from maskfix.verify.corpus import bucket_batches

    keras = load_keras()

    class BucketedPairs(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0
            self.batches = bucket_batches(pairs, batch_size, boundaries, seed, square, round_to, round_to > 1)

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            b = self.batches[index]
            return (b.encoder_inputs, b.decoder_inputs), b.decoder_targets, b.weights

        def on_epoch_end(self):
            self.epoch += 1
            self.batches = bucket_batches(pairs, batch_size, boundaries, seed + self.epoch, square, round_to,
                                          round_to > 1)

    return BucketedPairs()


def shape_step() -> int:
    """Padded lengths are rounded up to this: JAX compiles the training step once per shape,
    which costs seconds each, so there it gets a few shapes rather than one per batch."""
    from maskfix.verify import kerasenv

    return 8 if kerasenv.is_keras3() and load_keras().backend.backend() == "jax" else 1


def _epoch_shapes(pairs, batch_size, boundaries, seed, square, epoch, round_to=1) -> list:
    """(S, T) of every batch of ``epoch``, in the order training sees them."""
    from maskfix.verify.corpus import bucket_batches

    if _uses_tf_data():
        ds = tf_bucketed_dataset(pairs, batch_size, boundaries, seed, square, first_epoch=epoch)
        return [(int(x[0].shape[1]), int(x[1].shape[1])) for x, _, _ in ds]
    return [b.shape for b in bucket_batches(pairs, batch_size, boundaries, seed + epoch, square, round_to,
                                            round_to > 1)]


def _progress_callback(keras, report, label: str, epochs: int, n_batches):
    import time

    class Progress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch, self.batch, self.last = 0, -1, 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.batch = epoch, -1

        def on_train_batch_begin(self, batch, logs=None):
            self.batch = batch

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if report is not None and now - self.last >= 1.0:
                self.last = now
                loss = (logs or {}).get("loss")
                of = f"/{n_batches}" if n_batches else ""
                report(f"{label}epoch {self.epoch + 1}/{epochs}, batch {batch + 1}{of}"
                       + (f", loss {float(loss):.3f}" if loss is not None else ""))

    return Progress()


def evaluate_by_ratio(model, validation: dict, batch_size: int, boundaries, majority: int,
                      square: bool = False, round_to: int = 1) -> list:
    """Loss, token accuracy and the majority-token baseline per ratio bucket (real tokens only).

    Each bucket is evaluated in length-bucketed batches like training; a bucket whose batches
    the model cannot run gets the crash instead of figures.
    """
    from maskfix.verify import kerasenv
    from maskfix.verify.corpus import bucket_batches
    from maskfix.verify.results import describe_exception

    dtype = "int64" if kerasenv.legacy_requested() else "int32"
    rows = []
    for name, pairs in validation.items():
        batches = bucket_batches(pairs, batch_size, boundaries, None, square, round_to)
        row = {"bucket": name, "pairs": len(pairs), "batches": [b.shape for b in batches]}
        nll = correct = base = count = 0.0
        try:
            for b in batches:
                inputs = [kerasenv.to_tensor(b.encoder_inputs, dtype), kerasenv.to_tensor(b.decoder_inputs, dtype)]
                probs = kerasenv.to_numpy(model(inputs, training=False))
                real = b.weights > 0
                truth = b.decoder_targets
                p_true = np.take_along_axis(probs, truth[..., None], axis=-1)[..., 0]
                nll += float(-np.log(np.clip(p_true[real], 1e-7, 1.0)).sum())
                correct += float((probs.argmax(-1) == truth)[real].sum())
                base += float((truth[real] == majority).sum())
                count += float(real.sum())
        except Exception as exc:  # noqa: BLE001 - a crash is the result for this bucket
            row["error"] = describe_exception(exc)
        else:
            row.update(tokens=int(count), loss=nll / count, accuracy=correct / count, baseline=base / count)
        rows.append(row)
    return rows


def train_by_ratio(
    module,
    seed: int = 0,
    epochs: int = 4,
    n_pairs: int = 1600,
    per_bucket: int = 64,
    src_vocab_size: int = 16,
    min_words: int = 3,
    max_words: int = 8,
    batch_size: int = 32,
    embed_dim: int = 32,
    latent_dim: int = 64,
    num_heads: int = 2,
    learning_rate: float = 3e-3,
    square: bool = False,
    label: str = "",
    report=None,
) -> dict:
    """Train ``module.build_model`` on length-bucketed batches of the varied-ratio corpus.

    ``n_pairs`` pairs are drawn (seeded), ``per_bucket`` of each ratio bucket are held out for
    validation and the rest train for ``epochs`` epochs; batches are padded to their own longest
    source and target (``square``: both to the larger, so S == T). ``report`` receives progress
    lines. Returns the training losses, the (S, T) of the first epoch's batches, where training
    crashed if it did (``crash``: epoch, batch, its (S, T), the error), and per-bucket validation
    rows from :func:`evaluate_by_ratio` (absent after a crash).
    """
    import time

    from maskfix.verify import kerasenv
    from maskfix.verify.corpus import (bucket_batches, length_buckets, make_lexicon, make_ratio_corpus,
                                       majority_token, stratified_split)
    from maskfix.verify.results import describe_exception

    start = time.monotonic()
    keras = load_keras()
    keras.utils.set_random_seed(seed)
    if _uses_tf_data():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    lexicon = make_lexicon(src_vocab_size)
    pairs = make_ratio_corpus(seed, n_pairs, lexicon, min_words, max_words)
    train, validation = stratified_split(pairs, per_bucket, seed)
    boundaries = length_buckets(max_words)
    sizes = dict(embed_dim=embed_dim, latent_dim=latent_dim, dense_dim=latent_dim, num_heads=num_heads,
                 dropout=0.0)
    model = _build(module, keras, src_vocab_size, lexicon.tgt_vocab_size, sizes)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    step = shape_step()
    if _uses_tf_data():
        data = tf_bucketed_dataset(train, batch_size, boundaries, seed, square)
        n_batches = None
    else:
        data = py_bucketed_dataset(train, batch_size, boundaries, seed, square, step)
        n_batches = len(data)
    shapes = _epoch_shapes(train, batch_size, boundaries, seed, square, 0, step)
    progress = _progress_callback(keras, report, label, epochs, n_batches or len(shapes))
    result = {
        "runtime": kerasenv.describe(),
        "seed": seed, "epochs": epochs, "train_pairs": len(train), "per_bucket": per_bucket,
        "batch_size": batch_size, "square": square, "boundaries": boundaries, "round_to": step,
        "epoch0_shapes": shapes, "epoch0_unequal": sum(s != t for s, t in shapes),
        "sizes": {k: v for k, v in sizes.items() if k in ("embed_dim", "latent_dim", "num_heads")},
    }
    try:
        history = model.fit(data, epochs=epochs, verbose=0, callbacks=[progress], shuffle=False)
    except Exception as exc:  # noqa: BLE001 - a crash is a result
        epoch, batch = progress.epoch, max(progress.batch, 0)
        crash_shapes = shapes if epoch == 0 else _epoch_shapes(train, batch_size, boundaries, seed, square,
                                                               epoch, step)
        result["crash"] = {"epoch": epoch, "batch": batch,
                           "shape": crash_shapes[batch] if batch < len(crash_shapes) else None,
                           "error": describe_exception(exc, limit=300)}
    else:
        losses = [float(v) for v in history.history["loss"]]
        result.update(loss_first=losses[0], loss_last=losses[-1])
        train_batches = bucket_batches(train, batch_size, boundaries, None, square)
        result["majority_token"] = majority_token(train_batches)
        result["buckets"] = evaluate_by_ratio(model, validation, batch_size, boundaries,
                                              result["majority_token"], square, step)
    result["seconds"] = time.monotonic() - start
    return result
