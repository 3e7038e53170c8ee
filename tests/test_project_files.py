"""The project's files agree: one version, the licence named in pyproject, the citation, a clean lint."""

from __future__ import annotations

import importlib.metadata
import pathlib
import subprocess
import sys
import tomllib

import yaml

import wtilde_dask

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_written_once():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "wtilde_dask.__version__"}
    assert importlib.metadata.version("wtilde_dask") == wtilde_dask.__version__


def test_licence_file_is_the_one_pyproject_names():
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_citation_names_this_version_and_licence():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == wtilde_dask.__version__ and cff["license"] == "MIT"
    assert cff["title"] and cff["authors"]


def test_changelog_has_this_version():
    assert f"## [{wtilde_dask.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_ruff_finds_nothing_in_the_package():
    ruff = str(pathlib.Path(sys.executable).with_name("ruff"))
    run = subprocess.run([ruff, "check", "wtilde_dask"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
