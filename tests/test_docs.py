"""The documentation site builds in strict mode (every warning an error: broken internal links and anchors,
docstrings the API reference cannot parse, missing snippet files), and says nothing of how it was made."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
MKDOCS = str(pathlib.Path(sys.executable).with_name("mkdocs"))


def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run([MKDOCS, "build", "--strict", "--site-dir", str(site)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    for page in ("getting-started", "data", "store-format", "cluster", "inversion", "fitting", "mathematics",
                 "benchmarks", "api", "changelog"):
        assert (site / page / "index.html").is_file(), page
    api = (site / "api" / "index.html").read_text()
    for name in ("WTildeStore", "open_visibilities", "JaxLikelihood", "WTildeError", "cluster_client"):
        assert name in api, name  # rendered from the docstrings
    notebook = (site / "notebooks" / "01_quickstart_sma" / "index.html").read_text()
    assert "load_dataset" in notebook or "sma" in notebook  # the notebook rendered (not executed)
    assert "## [0.1.0]" not in (site / "changelog" / "index.html").read_text()  # the snippet was rendered
    assert "0.1.0" in (site / "changelog" / "index.html").read_text()


def test_docs_and_package_cite_no_internal_design_notes():
    pattern = re.compile(r"DESIGN(\.md)? ?(§|section)")
    files = [*ROOT.joinpath("wtilde_dask").rglob("*.py"), *ROOT.joinpath("docs").glob("*.md"), ROOT / "README.md"]
    hits = [str(f.relative_to(ROOT)) for f in files if pattern.search(f.read_text())]
    assert hits == []
