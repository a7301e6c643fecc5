"""The pre-commit hooks in ``.pre-commit-hooks.yaml``, driven through the real ``pre-commit``.

pre-commit installs hooks from a repository's committed state, so these tests
use this repository's HEAD; they need PyPI (or a mirror) to install LibCST
into the hook environment.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pre_commit")

# One xdist worker builds this module's shared fixture once (pyproject: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("precommit")

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "book_tf"
KEEP_GIT_VARS = {"GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_NO_VERIFY", "GIT_ASKPASS"}

if shutil.which("git") is None or not (ROOT / ".git").exists():
    pytest.skip("needs git and a git checkout of maskfix", allow_module_level=True)


def _head() -> str:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    shown = subprocess.run(["git", "cat-file", "-e", "HEAD:.pre-commit-hooks.yaml"], cwd=ROOT)
    assert shown.returncode == 0, ".pre-commit-hooks.yaml must be committed: pre-commit installs from HEAD"
    return sha.stdout.strip()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Environment for every pre-commit call: one PRE_COMMIT_HOME, no inherited git state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in KEEP_GIT_VARS}
    env.update(PRE_COMMIT_HOME=str(tmp_path_factory.mktemp("pre-commit-home")), PRE_COMMIT_COLOR="never")
    return env


def git(repo, *args, env, check=True):
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=check)


def new_repo(path: Path, env, files=()) -> Path:
    """A git repository with a local identity and ``files`` ({name: fixture file}) staged."""
    git(path, "init", "-q", env=env)
    git(path, "config", "user.name", "maskfix tests", env=env)
    git(path, "config", "user.email", "tests@maskfix.invalid", env=env)
    git(path, "config", "commit.gpgsign", "false", env=env)
    for name, fixture in dict(files).items():
        shutil.copyfile(FIXTURE / fixture, path / name)
        git(path, "add", name, env=env)
    return path


def pre_commit(*args, cwd, env, **kwargs):
    cmd = [sys.executable, "-m", "pre_commit", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kwargs)


TRIES = {
    "check": ("maskfix", {"model.py": "before.py", "fixed_model.py": "after.py"}),
    "rewrite": ("maskfix-rewrite", {"model.py": "before.py"}),
}


@pytest.fixture(scope="module")
def tried(tmp_path_factory, env):
    """``pre-commit try-repo`` for each case in TRIES, in its own repository.

    try-repo builds its hook environment in a throwaway store of its own (it
    ignores PRE_COMMIT_HOME), so the runs are started together.
    """
    rev = _head()
    running = {}
    for name, (hook, files) in TRIES.items():
        repo = new_repo(tmp_path_factory.mktemp(name), env, files)
        cmd = [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), hook, "--ref", rev, "--files", *files]
        running[name] = repo, subprocess.Popen(
            cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    results = {}
    for name, (repo, proc) in running.items():
        out, _ = proc.communicate(timeout=600)
        results[name] = proc.returncode, out, repo
    return results


def test_manifest_is_valid():
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_hook_blocks_the_buggy_file_only(tried):
    code, out, repo = tried["check"]
    assert code == 1, out
    assert "hook id: maskfix\n" in out and "Failed" in out
    flagged = [line for line in out.splitlines() if " MF00" in line]
    assert len(flagged) == 1, out
    assert flagged[0].startswith("model.py:93:13: MF001 [*] cross-attention over `encoder_outputs`")
    assert (repo / "model.py").read_bytes() == (FIXTURE / "before.py").read_bytes()  # read-only


def test_rewrite_hook_fixes_the_file_and_fails_the_run(tried):
    code, out, repo = tried["rewrite"]
    assert code == 1, out
    assert "files were modified by this hook" in out
    assert "Fixed 1 problem in 1 file." in out
    assert (repo / "model.py").read_bytes() == (FIXTURE / "after.py").read_bytes()


def readme_snippets() -> list:
    """The YAML blocks of the README's pre-commit section, as a user copies them."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## pre-commit\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 2, blocks
    return blocks


def test_readme_snippets_are_valid_configs(tmp_path):
    for i, block in enumerate(readme_snippets()):
        path = tmp_path / f"config{i}.yaml"
        path.write_text(block)
        proc = subprocess.run([sys.executable, "-m", "pre_commit", "validate-config", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_local_snippet_works_as_written(tmp_path, env):
    """The ``repo: local`` snippet runs the maskfix installed beside this Python, unchanged."""
    local = readme_snippets()[1]
    assert "<" not in local  # no placeholder to fill in
    repo = new_repo(tmp_path, env, {"model.py": "before.py", "fixed_model.py": "after.py"})
    (repo / ".pre-commit-config.yaml").write_text(local)
    env = dict(env, PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    proc = pre_commit("run", "--files", "model.py", "fixed_model.py", cwd=repo, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "maskfix" in out and "Failed" in out
    assert [line for line in out.splitlines() if " MF00" in line] == [
        line for line in out.splitlines() if line.startswith("model.py:93:13: MF001 [*]")]
    assert (repo / "model.py").read_bytes() == (FIXTURE / "before.py").read_bytes()
    # The rewrite variant the comment offers.
    (repo / ".pre-commit-config.yaml").write_text(local.replace("entry: maskfix check", "entry: maskfix rewrite"))
    proc = pre_commit("run", "--files", "model.py", cwd=repo, env=env)
    assert proc.returncode == 1 and "files were modified by this hook" in proc.stdout
    assert (repo / "model.py").read_bytes() == (FIXTURE / "after.py").read_bytes()


def test_installed_hook_blocks_git_commit(tmp_path, env):
    """The README's pinned snippet, with its two placeholders filled in, installed as a git hook."""
    repo = new_repo(tmp_path, env)
    snippet = readme_snippets()[0]
    assert snippet.count("<URL or path of the maskfix repository>") == 1 and snippet.count("<full commit id>") == 1
    config = snippet.replace("<URL or path of the maskfix repository>", str(ROOT)).replace("<full commit id>", _head())
    (repo / ".pre-commit-config.yaml").write_text(config)
    git(repo, "add", ".pre-commit-config.yaml", env=env)
    installed = pre_commit("install", cwd=repo, env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    shutil.copyfile(FIXTURE / "before.py", repo / "model.py")
    git(repo, "add", "model.py", env=env)
    blocked = git(repo, "commit", "-m", "add model", env=env, check=False)
    assert blocked.returncode != 0
    assert "model.py:93:13: MF001" in blocked.stdout + blocked.stderr
    assert git(repo, "rev-parse", "--verify", "-q", "HEAD", env=env, check=False).returncode != 0

    shutil.copyfile(FIXTURE / "after.py", repo / "model.py")
    git(repo, "add", "model.py", env=env)
    done = git(repo, "commit", "-m", "add fixed model", env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout + done.stderr
