"""Fixtures for the runtime verification tests.

Every Keras runtime runs in its own subprocess (flavour and backend are fixed at import), and the
four runtimes are started together once per session so the suite stays short.
"""
from __future__ import annotations

import pytest

from maskfix.verify.runtime import ALL_RUNTIMES, start_jobs

from verify_support import JOB_NAMES, TRAINED_LABELS, extra_jobs, fixed_example, flavour_of, jobs_for


class RuntimeResults:
    """Results per runtime label, collected from workers started all at once."""

    def __init__(self, tmp_path_factory, labels):
        self._pending = {}
        fixed = {}  # one fixed module per flavour, shared by its runtimes
        for rt in ALL_RUNTIMES:
            if rt.label not in labels:
                continue
            flavour = flavour_of(rt.label)
            if flavour not in fixed:
                fixed[flavour] = fixed_example(flavour, tmp_path_factory.mktemp(f"fixed_{flavour}"))
            tmp = tmp_path_factory.mktemp(rt.label.replace("/", "_"))
            # One thread each: four workers share the machine.
            jobs = jobs_for(flavour, fixed[flavour], tmp, extra_jobs(rt.label, fixed[flavour], tmp),
                            train=rt.label in TRAINED_LABELS)
            self._pending[rt.label] = start_jobs(rt, jobs, threads=1)
        self._done = {}

    def get(self, label: str) -> dict:
        if label not in self._done:
            self._done[label] = self._pending.pop(label).result()
        return self._done[label]

    def task(self, label: str, which: str, kind: str, index: int = 0) -> dict:
        """The index-th task of a kind for the "original", "fixed", "mutant", "extra" or "repeat" job."""
        job = self.get(label)["jobs"][JOB_NAMES.index(which)]
        assert "error" not in job, job.get("error")
        tasks = [t for t in job["tasks"] if t["kind"] == kind]
        return tasks[index]


@pytest.fixture(scope="session")
def runtime_results(request, tmp_path_factory) -> RuntimeResults:
    # Start only the runtimes the selected tests ask for (e.g. under -k jax).
    labels = {
        item.callspec.params["label"]
        for item in request.session.items
        if "runtime_results" in getattr(item, "fixturenames", ()) and hasattr(item, "callspec")
        and "label" in item.callspec.params
    }
    return RuntimeResults(tmp_path_factory, labels)
