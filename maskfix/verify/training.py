"""Brief, deterministic training of an example module's seq2seq model.

The module must define ``build_model(src_vocab_size, tgt_vocab_size, embed_dim=..., ...)`` and
``make_corpus(seed, n, src_len, tgt_len, src_vocab_size)`` like the bundled examples. Runs in the
current process, on whatever Keras runtime it has loaded.
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
