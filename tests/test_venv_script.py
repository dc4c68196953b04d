"""scripts/venv.sh, which the README's two commands source: pip runs once,
and again only when it must (a changed pyproject.toml, or the environment
holding another clone's Dirigent).  A stand-in python in the environment
answers the script's questions and logs each pip run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: a fresh environment has no dirigent (the import fails) until pip ran once
FAKE_PYTHON = """#!/bin/sh
case "$*" in
  *"-m pip install"*) echo pip >> "$PIP_LOG"; exit 0 ;;
  *"import os, dirigent"*) [ -f "$PIP_LOG" ] || exit 1; echo "$DIRIGENT_AT"; exit 0 ;;
esac
exec python3 "$@"
"""


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "clone"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "venv.sh", tree / "scripts" / "venv.sh")
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    python = tree / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tree


def _source(tree: Path, dirigent_at: Path) -> int:
    """Source the script as demo.sh does (``set -euo pipefail``); returns how
    often pip ran so far."""
    log = tree / "pip.log"
    env = {"PATH": "/usr/bin:/bin", "PIP_LOG": str(log), "DIRIGENT_AT": str(dirigent_at)}
    subprocess.run(
        ["bash", "-c", 'set -euo pipefail; . scripts/venv.sh "[test]"; echo sourced >&2'],
        cwd=tree,
        env=env,
        check=True,
        timeout=60,
    )
    return len(log.read_text().split()) if log.exists() else 0


def test_pip_runs_once_then_only_when_the_tree_or_its_pyproject_changes(tmp_path):
    tree = _tree(tmp_path)
    here = tree.resolve()
    assert _source(tree, here) == 1, "the first run installs"
    assert _source(tree, here) == 1, "nothing changed: no second install (default .venv)"
    # another clone's editable install in the same environment: install this tree again
    assert _source(tree, tmp_path / "other-clone") == 2
    with (tree / "pyproject.toml").open("a") as fh:
        fh.write("\n# changed\n")
    assert _source(tree, here) == 3, "a changed pyproject.toml installs again"
    assert _source(tree, here) == 3
