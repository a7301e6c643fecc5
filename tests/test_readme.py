"""The README's two newcomer commands: a light install with a preview, and the test command CI runs."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_quick_start_has_exactly_two_commands():
    assert quick_start() == [
        "pip install -e . && maskfix rewrite --diff examples/",
        "pip install -e '.[test]' && python -m pytest -q -n auto",
    ]
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "fresh virtual environment" in text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]


def test_first_install_is_light():
    """``pip install -e .`` brings LibCST (and tomli before Python 3.11), nothing else."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[ <>=;\[!~]", d, maxsplit=1)[0].lower() for d in deps}
    assert names == {"libcst", "tomli"}


def test_preview_command_runs_without_the_extras():
    """The preview shows a diff for each example, writes nothing and imports no deep-learning package."""
    command = quick_start()[0].split(" && ", 1)[1]
    before = {p: p.read_bytes() for p in (ROOT / "examples").iterdir()}
    code = (
        "import sys\nfrom maskfix.cli import main\n"
        f"rc = main({shlex.split(command)[1:]!r})\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'tf_keras', 'torch', 'jax')]\n"
        "print('RC', rc, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == "RC 1 []", proc.stdout + proc.stderr
    assert ("\n" + proc.stdout).count("\n--- a/examples/") == len(before)
    assert {p: p.read_bytes() for p in before} == before


def test_ci_runs_the_readme_test_command():
    """.ci/run installs the same extra and runs the same pytest command as the README says."""
    install, test = quick_start()[1].split(" && ")
    ci = (ROOT / ".ci" / "run").read_text()
    ci_lines = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert install == "pip install -e '.[test]'"
    assert "python -m pip install -q -e '.[test]'" in ci_lines
    assert any(line.startswith(test + " ") or line == test for line in ci_lines), ci_lines
