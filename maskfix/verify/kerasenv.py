"""The Keras flavour loaded in this process, and the few tensor functions the probes need.

Which Keras is used is decided by the environment before import (see ``runtime.py``):
``TF_USE_LEGACY_KERAS=1`` means Keras 2 (``tf_keras``), otherwise Keras 3 on ``KERAS_BACKEND``.
"""
from __future__ import annotations

import os

import numpy as np


def legacy_requested() -> bool:
    return os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")


def load_keras():
    """The Keras module the examples under test resolve to in this process."""
    if legacy_requested():
        # Goes through TensorFlow so that the same module object as `from tensorflow import keras`
        # is returned (tf_keras when the legacy switch is set).
        from tensorflow import keras

        return keras
    import keras

    return keras


def describe() -> str:
    keras = load_keras()
    if legacy_requested():
        import tensorflow as tf
        import tf_keras

        return f"tf_keras {tf_keras.__version__} (TF_USE_LEGACY_KERAS=1, tensorflow {tf.__version__})"
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


def is_keras3() -> bool:
    return not legacy_requested()


def to_tensor(value, dtype=None):
    value = np.asarray(value, dtype=dtype)
    if legacy_requested():
        import tensorflow as tf

        return tf.convert_to_tensor(value)
    from keras import ops

    return ops.convert_to_tensor(value)


def to_numpy(value) -> np.ndarray:
    if legacy_requested():
        return np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    from keras import ops

    return np.asarray(ops.convert_to_numpy(value))


def attach_mask(tensor, mask):
    """Attach a padding mask to a tensor the way a masking layer would, so Keras sees it."""
    if legacy_requested():
        tensor._keras_mask = mask
        return tensor
    try:
        from keras.src.backend.common.masking import set_keras_mask
    except ImportError:  # older Keras 3: plain attribute
        tensor._keras_mask = mask
    else:
        # Some backends' arrays (JAX) refuse new attributes; Keras keeps a side table for them.
        set_keras_mask(tensor, mask)
    return tensor
