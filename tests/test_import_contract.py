"""The import layers of the package (``[tool.importlinter]`` in pyproject.toml), checked by ``lint-imports``.

The contracts: a module imports only from its own layer or below (the command on top; errors, constants and config
at the bottom), no two sibling modules import each other at any depth (no import circle), the kernels import no
Dask / Zarr / file readers / store, and the store imports none of the runs that fill it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import wtilde_dask

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(pathlib.Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: pathlib.Path, pythonpath: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([LINT_IMPORTS, "--no-cache", "--no-logo"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_import_contracts():
    run = _lint(ROOT, ROOT)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in run.stdout


def test_a_circle_breaks_the_contract(tmp_path):
    """A copy of the package where grid (a value module) imports the store, which imports grid: a circle."""
    copy = tmp_path / "wtilde_dask"
    shutil.copytree(pathlib.Path(wtilde_dask.__file__).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    grid = copy / "grid.py"
    grid.write_text(grid.read_text() + "\n\ndef _store():\n    from wtilde_dask.store import WTildeStore\n\n"
                                        "    return WTildeStore\n")
    run = _lint(tmp_path, tmp_path)
    assert run.returncode != 0
    out = run.stdout
    assert "No import circle between sibling modules, at any depth BROKEN" in out
    assert "Layers: the command on top, errors and constants at the bottom BROKEN" in out
    assert "wtilde_dask.grid -> wtilde_dask.store" in out
