"""Probe results: a name, a verdict and a sentence saying why."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Iterable, Optional


@dataclass
class ProbeResult:
    name: str
    passed: bool
    reason: str
    mode: Optional[str] = None  # "implicit" / "explicit" for layer probes
    level: str = "layer"  # "layer" or "model"

    @property
    def label(self) -> str:
        return f"{self.name}[{self.mode}]" if self.mode else self.name

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ProbeResult":
        return cls(**data)


def describe_exception(exc: BaseException, limit: int = 200) -> str:
    """One line for a crash: Keras wraps errors, so prefer the line that names the shapes."""
    # Keras appends "• arg=Tensor(shape=...)" summaries; they name shapes but explain nothing.
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Keras colours its messages
    # TensorFlow prefixes op errors with the device placement and suffixes the op name.
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:\w+\]( name:.*)?", "", text)
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("•")]
    for key in ("ncompatible", "must match", "broadcast", "size of tensor", "shape"):
        for line in lines:
            if key in line:
                return f"{type(exc).__name__}: {line[:limit]}"
    return f"{type(exc).__name__}: {lines[0][:limit] if lines else ''}"


def assert_passed(result: ProbeResult) -> None:
    """Raise AssertionError carrying the probe's reason unless it passed."""
    if not result.passed:
        raise AssertionError(f"{result.label} failed: {result.reason}")


def assert_failed(result: ProbeResult) -> None:
    """Raise AssertionError unless the probe failed (used to show a probe can catch the bug)."""
    if result.passed:
        raise AssertionError(f"{result.label} was expected to fail but passed: {result.reason}")


def assert_all_passed(results: Iterable[ProbeResult]) -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        raise AssertionError("; ".join(f"{r.label}: {r.reason}" for r in failed))


def format_table(results: Iterable[ProbeResult], reason_width: int = 90) -> str:
    rows = [(r.level, r.label, "PASS" if r.passed else "FAIL", r.reason) for r in results]
    headers = ("level", "probe", "result", "reason")
    widths = [max([len(headers[i])] + [len(row[i]) for row in rows]) for i in range(3)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers[:3], widths)) + "  " + headers[3],
        "  ".join("-" * w for w in widths) + "  " + "-" * len(headers[3]),
    ]
    for row in rows:
        reason = row[3] if len(row[3]) <= reason_width else row[3][: reason_width - 3] + "..."
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + reason)
    return "\n".join(lines)
