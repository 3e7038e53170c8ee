"""Every exception class of the package has the one root ``WTildeError`` and keeps its old base."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

import wtilde_dask
from wtilde_dask import errors
from wtilde_dask.cli import main

PACKAGE = pathlib.Path(wtilde_dask.__file__).parent


def _error_classes_in_source():
    """(module, class name, base names) of every ``class ...Error`` statement in the package's source files."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
                bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
                found.append((module.removesuffix(".__init__"), node.name, bases))
    return found


def test_every_error_class_in_the_source_derives_from_the_root():
    """A class defined elsewhere must name WTildeError or one of the errors of errors.py among its bases."""
    rooted = set(errors.__all__)
    stray = [(m, n, b) for m, n, b in _error_classes_in_source() if m != "wtilde_dask.errors" and not rooted & set(b)]
    assert stray == []


def test_the_errors_of_errors_py_are_not_defined_twice():
    names = [n for m, n, _ in _error_classes_in_source() if m != "wtilde_dask.errors"]
    assert sorted(set(names) & set(errors.__all__)) == []


@pytest.mark.parametrize("name", [n for n in errors.__all__ if n != "WTildeError"])
def test_every_error_has_the_root_and_a_builtin_base(name):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.WTildeError)
    assert issubclass(cls, ValueError) != issubclass(cls, RuntimeError)
    assert issubclass(errors.ComputeError, RuntimeError)


# (module that raises it, name) pairs that existing code and users import from
REEXPORTS = [
    ("wtilde_dask.dataset", "DatasetError"),
    ("wtilde_dask.grid", "GridError"),
    ("wtilde_dask.kernels.lattice", "LatticeError"),
    ("wtilde_dask.simulate", "SimulationError"),
    ("wtilde_dask.store", "StoreError"),
    ("wtilde_dask.store", "StoreLockedError"),
    ("wtilde_dask.ingest", "IngestError"),
    ("wtilde_dask.compute", "ComputeError"),
    ("wtilde_dask.slurm", "ProfileError"),
    ("wtilde_dask.io.export", "ExportError"),
    ("wtilde_dask.cli.lattice", "ExportError"),
    ("wtilde_dask.inversion.lens", "LensError"),
    ("wtilde_dask.inversion.mesh", "MeshError"),
    ("wtilde_dask.inversion.mapping", "MappingError"),
    ("wtilde_dask.inversion.regularization", "RegularizationError"),
    ("wtilde_dask.inversion.solve", "InversionError"),
    ("wtilde_dask.inversion.fitter", "FitterError"),
    ("wtilde_dask.inversion.jax_likelihood", "JaxLikelihoodError"),
]


@pytest.mark.parametrize("module,name", REEXPORTS)
def test_old_import_paths_give_the_same_class(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_one_export_error_is_a_dataset_error():
    assert issubclass(errors.ExportError, errors.DatasetError)


def test_cli_turns_a_package_error_into_exit_2_with_one_line(tmp_path, capsys):
    missing = tmp_path / "no_store"
    assert main(["info", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and err[0].startswith("wtilde info: error:")
