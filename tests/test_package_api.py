"""The public API re-exported from the package root: each name is the object of the module that owns it, and
importing the package alone loads none of the heavy dependencies."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import wtilde_dask

HEAVY = ("jax", "dask", "distributed", "zarr", "xarray", "casacore", "astropy", "wtilde_dask.store",
         "wtilde_dask.compute", "wtilde_dask.inversion")


@pytest.mark.parametrize("name", sorted(wtilde_dask._LAZY))
def test_each_root_name_is_its_modules_object(name):
    owner = importlib.import_module(wtilde_dask._LAZY[name])
    got, expected = getattr(wtilde_dask, name), getattr(owner, name)
    if name == "compute":  # once imported, the submodule of the same name (made callable, it calls the function)
        assert got is expected or (got is owner and callable(got))
    else:
        assert got is expected
    assert name in wtilde_dask.__all__ and name in dir(wtilde_dask)


def test_the_root_compute_is_callable_after_the_submodule_import():
    import wtilde_dask.compute  # noqa: F401 - Python sets the package attribute to the module here

    assert callable(wtilde_dask.compute)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        wtilde_dask.no_such_name  # noqa: B018


def test_importing_the_package_stays_light():
    code = ("import sys, wtilde_dask; heavy = %r; "
            "print(','.join(m for m in heavy if m in sys.modules))" % (HEAVY,))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "", f"import wtilde_dask loaded: {run.stdout.strip()}"
