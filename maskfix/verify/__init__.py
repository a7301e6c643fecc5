"""Runtime verification of Transformer decoder masks: black-box probes and brief training.

Keras is imported lazily inside the functions, so this package imports without it. Probes run
in a subprocess whose environment selects the Keras runtime (see ``runtime.py``).
"""
from maskfix.verify.results import (
    ProbeResult,
    assert_all_passed,
    assert_failed,
    assert_passed,
)

__all__ = [
    "ProbeResult",
    "assert_passed",
    "assert_failed",
    "assert_all_passed",
    "run_verify",
    "add_arguments",
    "main",
    "probe_in_runtime",
    "train_in_runtime",
]


def probe_in_runtime(path, runtime, level="layer", layer=None, init=None, modes=None):
    """See :func:`maskfix.verify.runtime.probe_in_runtime`."""
    from maskfix.verify.runtime import probe_in_runtime as _probe

    return _probe(path, runtime, level, layer, init, modes)


def train_in_runtime(path, runtime, **kwargs) -> dict:
    """See :func:`maskfix.verify.runtime.train_in_runtime`."""
    from maskfix.verify.runtime import train_in_runtime as _train

    return _train(path, runtime, **kwargs)


def run_verify(path, layer=None, **kwargs) -> int:
    """See :func:`maskfix.verify.command.run_verify`."""
    from maskfix.verify.command import run_verify as _run_verify

    return _run_verify(path, layer, **kwargs)


def add_arguments(parser) -> None:
    from maskfix.verify.command import add_arguments as _add_arguments

    _add_arguments(parser)


def main(args) -> int:
    from maskfix.verify.command import main as _main

    return _main(args)
