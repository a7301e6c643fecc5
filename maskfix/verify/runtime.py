"""Choose the Keras runtime a file was written for, and run verification jobs in a subprocess.

A process can hold only one Keras flavour and one Keras 3 backend, and both are fixed by the
environment before the first import, so every runtime gets its own interpreter.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

BACKENDS = ("tensorflow", "jax", "torch")
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Runtime:
    flavour: str  # "tf_keras" (Keras 2 through TensorFlow) or "keras3"
    backend: str = "tensorflow"

    @property
    def label(self) -> str:
        return "tf_keras" if self.flavour == "tf_keras" else f"keras3/{self.backend}"

    def env(self, base: Optional[dict] = None, threads: Optional[int] = None) -> dict:
        env = dict(os.environ if base is None else base)
        env.pop("TF_USE_LEGACY_KERAS", None)
        if self.flavour == "tf_keras":
            env["TF_USE_LEGACY_KERAS"] = "1"
        else:
            env["KERAS_BACKEND"] = self.backend
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # Reproducible CPU numerics, no accelerator probing.
        env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
        env.setdefault("JAX_PLATFORMS", "cpu")
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
        env.setdefault("PYTHONHASHSEED", "0")
        if threads:
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                         "TF_NUM_INTEROP_THREADS"):
                env[name] = str(threads)
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH")) if p)
        return env


TF_KERAS = Runtime("tf_keras")


def missing_modules(runtime: Runtime) -> List[str]:
    """Packages ``runtime`` needs that this interpreter cannot import (checked without importing)."""
    import importlib.util

    needed = ["tensorflow", "tf_keras"] if runtime.flavour == "tf_keras" else ["keras", runtime.backend]
    return [name for name in needed if importlib.util.find_spec(name) is None]


def install_hint(runtime: Runtime, missing: List[str]) -> str:
    """One line saying what to install for ``missing`` packages of ``runtime``."""
    extra = [m for m in missing if m in ("jax", "torch")]
    hint = "install maskfix[verify]" if len(extra) < len(missing) else ""
    if extra:
        hint += (" and " if hint else "install ") + " and ".join(extra) + " (the Keras backend)"
    return f"{', '.join(missing)} not installed for {runtime.label}: {hint}"


ALL_RUNTIMES = (TF_KERAS,) + tuple(Runtime("keras3", b) for b in BACKENDS)


def _declared_backend(source: str) -> Optional[str]:
    """A backend the file selects itself, e.g. ``os.environ["KERAS_BACKEND"] = "jax"``."""
    m = re.search(r"""KERAS_BACKEND["']\s*\]?\s*(?:=|,)\s*["'](\w+)["']""", source)
    return m.group(1) if m and m.group(1) in BACKENDS else None


def detect_runtime(source: str, backend: Optional[str] = None) -> Runtime:
    """tf.keras / ``from tensorflow import keras`` / tf_keras mean Keras 2; ``import keras`` Keras 3.

    The Keras 3 backend is ``backend`` if given, else ``KERAS_BACKEND`` from the environment, else
    one the file sets itself, else tensorflow. Raises ValueError when the file uses no Keras.
    """
    tree = ast.parse(source)
    legacy = keras3 = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(("tensorflow.keras", "tf_keras")):
                    legacy = True
                elif alias.name == "keras" or alias.name.startswith("keras."):
                    keras3 = True
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tensorflow" and any(a.name == "keras" for a in node.names):
                legacy = True
            elif node.module.startswith(("tensorflow.keras", "tensorflow.python.keras", "tf_keras")):
                legacy = True
            elif node.module == "keras" or node.module.startswith("keras."):
                keras3 = True
        elif isinstance(node, ast.Attribute) and node.attr == "keras":
            if isinstance(node.value, ast.Name) and node.value.id in ("tf", "tensorflow"):
                legacy = True
    if legacy:
        return TF_KERAS
    if not keras3:
        raise ValueError("the file imports neither keras nor tensorflow.keras")
    chosen = backend or os.environ.get("KERAS_BACKEND") or _declared_backend(source) or "tensorflow"
    if chosen not in BACKENDS:
        raise ValueError(f"unsupported KERAS_BACKEND {chosen!r}")
    return Runtime("keras3", chosen)


class Pending:
    """A worker subprocess started by :func:`start_jobs`; ``result()`` waits for it."""

    def __init__(self, runtime: Runtime, proc: subprocess.Popen, tmpdir: tempfile.TemporaryDirectory,
                 out_path: Path, timeout: float):
        self.runtime, self.proc, self._tmp, self._out, self._timeout = runtime, proc, tmpdir, out_path, timeout

    def result(self, progress: Optional[Callable[[str], None]] = None) -> dict:
        """Wait for the worker; ``progress`` gets each progress line it writes meanwhile."""
        try:
            self._wait(progress)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._tmp.cleanup()
            raise RuntimeError(f"{self.runtime.label}: verification worker timed out")
        try:
            if self.proc.returncode != 0 or not self._out.exists():
                stderr = (self._out.parent / "stderr.txt").read_text(errors="replace")
                missing = re.findall(r"ModuleNotFoundError: No module named '([\w.]+)'", stderr)
                if missing:
                    raise RuntimeError(install_hint(self.runtime, [missing[-1].split(".")[0]]))
                lines = [line for line in stderr.strip().splitlines() if line.strip()]
                last = lines[-1].strip() if lines else "no output"
                raise RuntimeError(f"{self.runtime.label}: verification worker failed "
                                   f"(exit {self.proc.returncode}): {last}")
            data = json.loads(self._out.read_text())
            data["label"] = self.runtime.label
            return data
        finally:
            self._tmp.cleanup()

    def _wait(self, progress) -> None:
        if progress is None:
            self.proc.wait(timeout=self._timeout)
            return
        path, seen, deadline = self._out.parent / "progress.txt", 0, time.monotonic() + self._timeout
        while True:
            try:
                self.proc.wait(timeout=0.5)
                done = True
            except subprocess.TimeoutExpired:
                done = False
                if time.monotonic() > deadline:
                    raise
            if path.exists():
                with open(path, "rb") as f:
                    f.seek(seen)
                    data = f.read()
                # Only whole lines: the worker may be halfway through writing one.
                complete = data[: data.rfind(b"\n") + 1]
                seen += len(complete)
                for line in complete.decode("utf-8", "replace").splitlines():
                    progress(line)
            if done:
                return


def start_jobs(runtime: Runtime, jobs: List[dict], threads: Optional[int] = None,
               timeout: float = 600) -> Pending:
    """Start a worker running ``jobs`` (see ``worker.py``) under ``runtime``; returns at once."""
    tmp = tempfile.TemporaryDirectory(prefix="maskfix-verify-")
    job_path, out_path = Path(tmp.name) / "jobs.json", Path(tmp.name) / "result.json"
    jobs = [dict(job, path=str(Path(job["path"]).resolve())) for job in jobs]
    job_path.write_text(json.dumps(jobs))
    # stderr goes to a file: a pipe nobody drains could block a worker while others are awaited.
    with open(Path(tmp.name) / "stderr.txt", "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maskfix.verify.worker", str(job_path), str(out_path)],
            env=dict(runtime.env(threads=threads),
                     MASKFIX_VERIFY_PROGRESS=str(Path(tmp.name) / "progress.txt")),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return Pending(runtime, proc, tmp, out_path, timeout)


def run_jobs(runtime: Runtime, jobs: List[dict], threads: Optional[int] = None,
             timeout: float = 600, progress: Optional[Callable[[str], None]] = None) -> dict:
    return start_jobs(runtime, jobs, threads, timeout).result(progress)


def runtime_from_label(label: str) -> Runtime:
    """``"tf_keras"``, ``"keras3"`` (TensorFlow backend) or ``"keras3/<backend>"``."""
    if label == "tf_keras":
        return TF_KERAS
    flavour, _, backend = label.partition("/")
    if flavour != "keras3" or (backend and backend not in BACKENDS):
        raise ValueError(f"unknown runtime {label!r}; expected tf_keras or keras3/<{'|'.join(BACKENDS)}>")
    return Runtime("keras3", backend or "tensorflow")


def _single_task(path, runtime, task: dict) -> dict:
    rt = runtime if isinstance(runtime, Runtime) else runtime_from_label(runtime)
    job = run_jobs(rt, [{"path": str(path), "tasks": [task]}])["jobs"][0]
    if "error" in job:
        raise RuntimeError(job["error"])
    return job["tasks"][0]


def train_in_runtime(path, runtime, **kwargs) -> dict:
    """``train_briefly`` on the definitions of ``path`` in a subprocess running ``runtime``.

    Returns the metrics dict; raises RuntimeError with the one-line crash reason if training fails.
    """
    task = _single_task(path, runtime, dict(kind="train", **kwargs))
    if "error" in task:
        raise RuntimeError(task["error"])
    return task["metrics"]


def probe_in_runtime(path, runtime, level: str = "layer", layer: Optional[str] = None,
                     init: Optional[dict] = None, modes: Optional[List[str]] = None):
    """Layer or model probes on the definitions of ``path`` in a subprocess; a list of ProbeResult."""
    from maskfix.verify.results import ProbeResult

    if level == "layer":
        task = {"kind": "layer_probes", "layer": layer, "init": init or {}, "modes": modes or []}
    elif level == "model":
        task = {"kind": "model_probes"}
    else:
        raise ValueError("level must be 'layer' or 'model'")
    done = _single_task(path, runtime, task)
    if "error" in done:
        raise RuntimeError(done["error"])
    return [ProbeResult.from_dict(d) for d in done["probes"]]
