"""Subprocess entry point: ``python -m maskfix.verify.worker JOBS.json RESULT.json``.

Runs in a process whose environment already selects the Keras runtime (see ``runtime.py``).
``JOBS.json`` holds a list of jobs ``{"path": ..., "tasks": [...]}``; each task is one of
``{"kind": "layer_probes", "layer": NAME|None, "init": {...}, "modes": [...]}``,
``{"kind": "model_probes"}``, ``{"kind": "train", **train_briefly kwargs}``,
``{"kind": "train_ratio", **train_by_ratio kwargs}`` or
``{"kind": "influence", "layer": NAME|None, "init": {...}, "modes": [...]}``.
Progress lines go to the file named by ``$MASKFIX_VERIFY_PROGRESS``, if set.
The result file mirrors the jobs with per-task results or errors.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def _quiet_frameworks() -> None:
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")


def _run_task(loaded, task: dict) -> dict:
    kind = task["kind"]
    module = loaded.module
    if kind == "layer_probes":
        from maskfix.verify.layer_probes import MODES, run_layer_probes, width_from_overrides

        name = task.get("layer") or _only_decoder(module)
        cls = getattr(module, name)
        width = width_from_overrides(cls, task.get("init"))
        results = run_layer_probes(cls, task.get("init"), task.get("modes") or MODES, width)
        return {"kind": kind, "layer": name, "width": width, "probes": [r.to_dict() for r in results]}
    if kind == "model_probes":
        from maskfix.verify.model_probes import build_small_model, run_model_probes

        model = build_small_model(module, task.get("build"))
        return {
            "kind": kind,
            "probes": [r.to_dict() for r in run_model_probes(module, task.get("build"), model=model)],
            "input_names": [getattr(t, "name", str(t)) for t in model.inputs],
            "n_outputs": len(model.outputs),
        }
    if kind == "train":
        from maskfix.verify.training import train_briefly

        kwargs = {k: v for k, v in task.items() if k != "kind"}
        return {"kind": kind, "metrics": train_briefly(module, **kwargs), "args": kwargs}
    if kind == "train_ratio":
        from maskfix.verify.training import train_by_ratio

        kwargs = {k: v for k, v in task.items() if k != "kind"}
        return {"kind": kind, "metrics": train_by_ratio(module, report=_progress_sink(), **kwargs)}
    if kind == "influence":
        from maskfix.verify.influence import influence_matrices
        from maskfix.verify.layer_probes import MODES

        name = task.get("layer") or _only_decoder(module)
        return {"kind": kind, "layer": name,
                **influence_matrices(getattr(module, name), task.get("init"), task.get("modes") or MODES)}
    raise ValueError(f"unknown task kind {kind!r}")


def _only_decoder(module) -> str:
    from maskfix.verify.loader import find_decoder_classes

    candidates = find_decoder_classes(Path(module.__file__).read_text())
    if len(candidates) != 1:
        raise LookupError(f"expected one decoder class, found {candidates}; choose one with --layer")
    return candidates[0]


def _progress_sink():
    """A function appending a line to the progress file the parent polls, or None."""
    import os

    path = os.environ.get("MASKFIX_VERIFY_PROGRESS")
    if not path:
        return None

    def report(line: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line.replace("\n", " ") + "\n")

    return report


def _error(exc: BaseException) -> str:
    from maskfix.verify.results import describe_exception

    return describe_exception(exc, limit=500)


def run_jobs(jobs: list) -> dict:
    _quiet_frameworks()
    from maskfix.verify import kerasenv
    from maskfix.verify.loader import load_definitions

    out = {"runtime": kerasenv.describe(), "jobs": []}
    for job in jobs:
        record = {"path": job["path"], "tasks": []}
        out["jobs"].append(record)
        try:
            loaded = load_definitions(job["path"])
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            record["error"] = f"could not import definitions: {_error(exc)}"
            record["traceback"] = traceback.format_exc()
            continue
        record["executed"], record["skipped"] = loaded.executed, loaded.skipped
        for task in job["tasks"]:
            try:
                record["tasks"].append(_run_task(loaded, task))
            except Exception as exc:  # noqa: BLE001
                record["tasks"].append({"kind": task["kind"], "error": _error(exc),
                                        "traceback": traceback.format_exc()})
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    jobs = json.loads(Path(argv[0]).read_text())
    result = run_jobs(jobs)
    Path(argv[1]).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
