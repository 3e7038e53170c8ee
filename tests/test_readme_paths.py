"""README paths through the real command line: a Measurement Set with --field / --spw / --channels / --column (run,
resume, verify, store.dataset() against the independent python-casacore recipe); verify --repair of a lattice
store's kernels; the mask flags (--mask-file .npy / FITS, --mask-inner-radius with --mask-centre), --overwrite and
--[no-]copy-visibilities; `wtilde bench store` at a tiny size; deployments/slurm/estimate_cost.py and
deployments/local/wtilde-local.sh. Small sizes, one LocalCluster for the run (its scheduler address is passed as
--scheduler), real stores in tmp_path."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from test_io_ms import make_ms, recipe
from wtilde_dask.cli import main
from wtilde_dask.grid import ImageGrid
from wtilde_dask.kernels.reference import dirty_image_reference, w_tilde_reference
from wtilde_dask.store import WTildeStore

ROOT = pathlib.Path(__file__).parent.parent
RUN_ARGS = ["--pixel-scale", "0.3", "--block-size", "48", "--no-progress"]
GRID_ARGS = ["--shape", "12", "12", *RUN_ARGS]


@pytest.fixture(scope="module")
def scheduler(session_client):
    return session_client.scheduler.address


@pytest.fixture(scope="module")
def ms_path(tmp_path_factory):
    """Two windows (8 and 5 channels), two fields, DATA and CORRECTED_DATA, 15% flags (tests/test_io_ms.py)."""
    return make_ms(tmp_path_factory.mktemp("ms") / "obs.ms", data_columns=("DATA", "CORRECTED_DATA"), seed=4)


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def assert_store_equals_recipe(store, uv, vis, noise) -> None:
    """``store.dataset()`` (the source reopened with the recorded selection) equals the recipe's arrays exactly;
    the store's W-tilde and dirty image equal the slow formulas on them (1e-12 relative)."""
    ds = store.dataset()
    np.testing.assert_array_equal(ds.uv_wavelengths, uv)
    np.testing.assert_array_equal(ds.visibilities, vis)
    np.testing.assert_array_equal(ds.noise_map, noise)
    g = store.grid().grid_radians
    wr = 1 / noise.real**2
    assert rel(store.to_dask().compute(), w_tilde_reference(g, uv, wr, wr)) <= 1e-12
    assert rel(store.read_array("dirty_image"), dirty_image_reference(g, uv, vis, wr, wr)) <= 1e-12


# ---------------------------------------------------------------------------------------------- MS selection
def test_compute_ms_selection_resume_verify_and_dataset(tmp_path, ms_path, scheduler, capsys):
    out = tmp_path / "w.zarr"
    argv = ["compute", str(ms_path), "--field", "TARGET", "--spw", "1", "--channels", "1~3", "--column",
            "CORRECTED_DATA", "--out", str(out), "--mask-radius", "1.6", "--method", "direct", "--scheduler",
            scheduler, *GRID_ARGS]
    assert main(argv) == 0
    store = WTildeStore.open(out)
    uv, vis, noise, _, _ = recipe(ms_path, field_ids=[1], spws=[1], channels={1: [1, 2, 3]}, column="CORRECTED_DATA")
    assert_store_equals_recipe(store, uv, vis, noise)  # the Measurement Set reopened with the selection
    # a second run resumes: nothing to do
    capsys.readouterr()
    assert main(argv) == 0
    assert f"{store.plan.n_blocks} already done (skipped), 0 to compute" in capsys.readouterr().out
    # verify reopens the source with the same selection and re-derives blocks from it
    assert main(["verify", str(out), "--sample", "2"]) == 0
    assert "verify: OK" in capsys.readouterr().out
    # another selection on the same store path is refused
    other = list(argv)
    other[other.index("--spw") + 1] = "0"
    assert main(other) == 2
    assert "--overwrite" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- verify --repair
def test_verify_repair_restores_a_lattice_stores_kernels(tmp_path, scheduler, capsys):
    from wtilde_dask.dataset import Interferometer

    rng = np.random.default_rng(8)
    K = 400
    uv = rng.uniform(-2e5, 2e5, (K, 2))
    sr, si = rng.uniform(0.5, 2, K), rng.uniform(0.5, 2, K)  # unequal noise: a Hankel kernel too
    ds = Interferometer.from_arrays(rng.normal(size=K) + 1j * rng.normal(size=K), sr + 1j * si, uv)
    npz = ds.to_npz(tmp_path / "d.npz")
    out = tmp_path / "w.zarr"
    assert main(["compute", str(npz), "--out", str(out), "--mask-radius", "1.5", "--method", "lattice",
                 "--scheduler", scheduler, *GRID_ARGS]) == 0
    store = WTildeStore.open(out)
    kernels = {name: store.read_array(name) for name in ("kernel", "kernel_hankel")}
    for name in kernels:  # every chunk file of both arrays overwritten with bytes no codec reads
        for chunk in (out / name / "c").rglob("*"):
            if chunk.is_file():
                chunk.write_bytes(b"\x00not a chunk")
    capsys.readouterr()
    assert main(["verify", str(out)]) == 1
    assert "kernel" in capsys.readouterr().out
    assert main(["verify", str(out), "--repair", "--scheduler", scheduler, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "verify: OK" in printed, printed
    store = WTildeStore.open(out)
    for name, before in kernels.items():
        np.testing.assert_array_equal(store.read_array(name), before)
    assert main(["verify", str(out)]) == 0


# ---------------------------------------------------------------------------------------------- mask flags
def test_mask_file_npy_and_fits_annulus_centre_overwrite_and_copy_flags(tmp_path, sma_dataset, scheduler, capsys):
    npz = sma_dataset.to_npz(tmp_path / "sma.npz")
    mask = np.ones((12, 12), dtype=bool)
    mask[3:9, 2:7] = False
    mask[5, 9] = False
    np.save(tmp_path / "mask.npy", mask)
    fits.PrimaryHDU(mask.astype(np.int16)).writeto(tmp_path / "mask.fits")  # `compute` reads HDU 0 (no --hdu flag)
    grids = {}
    for name, extra in {
        "npy": ["--mask-file", str(tmp_path / "mask.npy")],
        "fits": ["--mask-file", str(tmp_path / "mask.fits")],
        "annulus": ["--shape", "12", "12", "--mask-radius", "1.5", "--mask-inner-radius", "0.6", "--mask-centre",
                    "0.3", "-0.6"],
    }.items():
        out = tmp_path / f"{name}.zarr"
        assert main(["compute", str(npz), "--out", str(out), "--method", "direct", "--scheduler", scheduler,
                     *RUN_ARGS, *extra]) == 0, name
        grids[name] = WTildeStore.open(out).grid()
    np.testing.assert_array_equal(grids["npy"].mask, mask)
    np.testing.assert_array_equal(grids["fits"].mask, mask)
    ref = ImageGrid.annular((12, 12), (0.3, 0.3), 0.6, 1.5, centre=(0.3, -0.6))
    np.testing.assert_array_equal(grids["annulus"].mask, ref.mask)
    d = np.hypot(grids["annulus"].grid_arcsec[:, 0] - 0.3, grids["annulus"].grid_arcsec[:, 1] + 0.6)
    assert d.min() >= 0.6 and d.max() <= 1.5
    # W-tilde of the annulus store against the slow formula
    st = WTildeStore.open(tmp_path / "annulus.zarr")
    g = st.grid().grid_radians
    ref_w = w_tilde_reference(g, sma_dataset.uv_wavelengths, sma_dataset.weights_real, sma_dataset.weights_imag)
    assert rel(st.to_dask().compute(), ref_w) <= 1e-12
    # a different grid at the same path is refused; --overwrite starts over
    out = tmp_path / "npy.zarr"
    base = ["compute", str(npz), "--out", str(out), "--method", "direct", "--scheduler", scheduler, *GRID_ARGS]
    # (the npy store was made from --mask-file; the same path with a circle is a different grid)
    capsys.readouterr()
    assert main([*base, "--mask-radius", "1.2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*base, "--mask-radius", "1.2", "--overwrite"]) == 0
    np.testing.assert_array_equal(WTildeStore.open(out).grid().mask, ImageGrid.circular((12, 12), 0.3, 1.2).mask)
    # --no-copy-visibilities on an .npz (copied by default): the store records the file instead
    out2 = tmp_path / "nocopy.zarr"
    assert main(["compute", str(npz), "--out", str(out2), "--mask-radius", "1.2", "--no-copy-visibilities",
                 "--scheduler", scheduler, *GRID_ARGS]) == 0
    copied, recorded = WTildeStore.open(out), WTildeStore.open(out2)
    assert copied.has_array("inputs/visibilities") and not recorded.has_array("inputs/visibilities")
    np.testing.assert_array_equal(recorded.dataset().visibilities, sma_dataset.visibilities)
    np.testing.assert_array_equal(copied.dataset().visibilities, sma_dataset.visibilities)


# ---------------------------------------------------------------------------------------------- tools
def test_bench_store_tiny(tmp_path, capsys):
    """`python -m wtilde_dask.bench store` at M ~ 300: runs, keeps its store when asked, and the store is right."""
    from wtilde_dask.bench import run_benchmark

    assert run_benchmark("store", ["--pixels", "300", "--block-size", "128", "--workers", "1", "--dir",
                                   str(tmp_path), "--keep"]) == 0
    out = capsys.readouterr().out
    stores = [p for p in tmp_path.iterdir() if p.suffix == ".zarr"]
    assert len(stores) == 1, (out, list(tmp_path.iterdir()))
    store = WTildeStore.open(stores[0])
    assert store.is_complete() and 250 <= store.n_pixels <= 350, out
    assert str(store.n_pixels) in out
    ds, g = store.dataset(), store.grid().grid_radians
    rows = np.arange(0, store.n_pixels, 37)
    ref = w_tilde_reference(g, ds.uv_wavelengths, ds.weights_real, ds.weights_imag, rows=rows)
    assert rel(store.to_dask()[rows].compute(), ref) <= 1e-10


def test_estimate_cost_from_a_partial_store(tmp_path, sma_dataset, scheduler):
    """deployments/slurm/estimate_cost.py: its figures equal blocks x mean block time from `wtilde status --json`."""
    npz = sma_dataset.to_npz(tmp_path / "sma.npz")
    out = tmp_path / "w.zarr"
    assert main(["compute", str(npz), "--out", str(out), "--method", "direct", "--scheduler", scheduler,
                 "--shape", "12", "12", "--pixel-scale", "0.3", "--mask-radius", "1.8", "--block-size", "16",
                 "--no-progress"]) == 0
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    status = json.loads(subprocess.run(["wtilde", "status", "--json", str(out)], capture_output=True, text=True,
                                       env=env, check=True).stdout)
    proc = subprocess.run([sys.executable, str(ROOT / "deployments" / "slurm" / "estimate_cost.py"), str(out),
                           "--jobs", "2", "--processes", "4", "--threads", "3", "--block-seconds", "10",
                           "--pixels", "1000"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    n = int(status["n_blocks"])
    assert f"{status['done']}/{n} blocks done, 0 to go" in proc.stdout
    # from scratch: n blocks x 10 s / (2 x 4) workers / 3600 h; core-hours n x 10 s x 3 threads / 3600
    line = next(s for s in proc.stdout.splitlines() if "from scratch" in s)
    wall, core = re.search(r"wall time ~ (\S+) h .* ([\d.e+-]+) core-hours", line).groups()
    assert float(wall) == pytest.approx(n * 10 / 8 / 3600, rel=1e-2)
    assert float(core) == pytest.approx(n * 10 * 3 / 3600, rel=1e-3)
    nb = -(-1000 // int(status["block_size"]))
    assert f"{nb * (nb + 1) // 2} blocks" in proc.stdout


def test_wtilde_local_script_runs_to_completion(tmp_path, sma_dataset):
    """deployments/local/wtilde-local.sh: runs `wtilde compute` until the store is complete (one worker)."""
    npz = sma_dataset.to_npz(tmp_path / "sma.npz")
    out = tmp_path / "w.zarr"
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(ROOT / "deployments" / "local" / "wtilde-local.sh"), str(npz), "--out",
                           str(out), "--shape", "10", "10", "--pixel-scale", "0.3", "--mask-radius", "1.4",
                           "--block-size", "32", "--workers", "1", "--no-progress"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = WTildeStore.open(out)
    assert store.is_complete()
    g = store.grid().grid_radians
    ref = w_tilde_reference(g, sma_dataset.uv_wavelengths, sma_dataset.weights_real, sma_dataset.weights_imag)
    assert rel(store.to_dask().compute(), ref) <= 1e-12
    # no --out: exit 2 with the reason
    bad = subprocess.run(["bash", str(ROOT / "deployments" / "local" / "wtilde-local.sh"), str(npz)],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "no --out" in bad.stderr


# ---------------------------------------------------------------------------------------------- UVFITS from the CLI
def test_uvfits_store_and_export_fits_from_the_cli(tmp_path, scheduler, capsys):
    """`wtilde compute DATA.uvfits --spw --channels` and `wtilde export-fits DATA.uvfits` against the UVFITS recipe
    written out in tests/test_io_formats.py (Stokes I of XX/YY, flags and bad weights dropped, IF-major order)."""
    from test_io_formats import _expected_uvfits, _uvfits_case, write_uvfits

    from wtilde_dask.dataset import load_dataset

    rng = np.random.default_rng(12)
    uu, vv, data, weight = _uvfits_case(rng, ng=40)
    uu, vv = uu * 0.2, vv * 0.2  # |uv| <= ~1e5 wavelengths: the 0.3" pixels sample the fringes
    ref_freq, width, if_freqs = 230.0e9, 15.6e6, [0.0, 2.0e9]
    path = write_uvfits(tmp_path / "obs.uvfits", uu, vv, data, weight, [-5, -6, -7, -8], ref_freq=ref_freq,
                        ch_width=width, if_freqs=if_freqs)
    freqs = [[ref_freq + if_freqs[i] + c * width for c in range(5)] for i in range(2)]
    uv, vis, noise, _, _ = _expected_uvfits(uu, vv, data, weight, freqs, (0, 1), [1], range(1, 4))
    out = tmp_path / "w.zarr"
    assert main(["compute", str(path), "--spw", "1", "--channels", "1~3", "--out", str(out), "--mask-radius", "1.5",
                 "--method", "direct", "--scheduler", scheduler, *GRID_ARGS]) == 0
    store = WTildeStore.open(out)
    assert_store_equals_recipe(store, uv, vis, noise)  # the UVFITS file reopened with the selection
    # export-fits on the whole file: both IFs, every channel
    assert main(["export-fits", str(path), str(tmp_path / "fits"), "-q"]) == 0
    uv_all, vis_all, noise_all, _, _ = _expected_uvfits(uu, vv, data, weight, freqs, (0, 1), [0, 1], range(5))
    exported = load_dataset(tmp_path / "fits")
    np.testing.assert_array_equal(exported.uv_wavelengths, uv_all)
    np.testing.assert_array_equal(exported.visibilities, vis_all)
    np.testing.assert_array_equal(exported.noise_map, noise_all)
