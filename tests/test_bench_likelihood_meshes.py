"""The likelihood benchmark on the image-plane meshes (``--mesh voronoi``) against PyAutoLens 2026.10.26.1's
``DelaunayNN`` at a tiny size: the rows and machine-readable keys are printed, our JAX log evidence equals our
NumPy one (an independent implementation: SciPy triangulation, NumPy Sibson weights, sparse T), and ours on the
peer's own T and H equals the peer's log evidence. No timing asserts."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.peer


def _keys(line: str) -> dict:
    return dict(item.split("=", 1) for item in line.split())


def test_bench_likelihood_voronoi_against_the_peer(capsys):
    import autolens  # noqa: F401  (a required test dependency: an import error fails the test)

    from wtilde_dask.bench.likelihood import main

    assert main(["--visibilities", "3000", "--shape", "40", "40", "--pixel-scale", "0.1", "--mask-radius", "1.5",
                 "--mesh", "voronoi", "--mesh-pixels", "100", "--batch", "2", "--repeats", "1", "--workers", "1",
                 "--no-one-thread"]) == 0
    out = capsys.readouterr().out
    for row in ("ours JAX jit, single", "ours JAX batch (lax.map), per item of 2", "ours JAX vmap, per item of 2",
                "ours JAX value_and_grad (7 params)", "ours NumPy (lens -> T, H -> evidence)", "FFT floor (",
                "peer DelaunayNN jit, ConstantSplit, linear solver", "peer DelaunayNN jit, ConstantSplit, default solver",
                "peer DelaunayNN NumPy (not jittable), Constant, linear"):
        assert any(ln.startswith(row) for ln in out.splitlines()), (row, out)
    assert "S = 100 (voronoi vertices" in out
    # our JAX evaluation equals our NumPy VoronoiMesh evaluation on the same lens
    rel = float(re.search(r"NumPy [0-9.e+-]+, relative difference ([0-9.e+-]+);", out).group(1))
    assert rel < 1e-8, out
    # ours on the peer's own Constant T and H gives the peer's log evidence
    check = float(re.search(r"the peer's [0-9.e+-]+ \(relative difference ([0-9.e+-]+)\)", out).group(1))
    assert check < 1e-8, out
    ratios, times = (_keys(ln) for ln in out.strip().splitlines()[-2:])
    for key in ("eval_vs_floor", "grad_over_eval", "floor_s"):
        assert float(ratios[key]) > 0, ratios
    for key in ("jax_s", "jax_map_s_per_item", "jax_vmap_s_per_item", "grad_s", "numpy_s", "peer_jit_s",
                "speedup_vs_peer_jit"):
        assert float(times[key]) > 0, times
    assert times["mesh"] == "voronoi" and times["S"] == "100"
    # the peer's Overlay grid: the count closest to 100 of all Overlay shapes (11 x 11 gives 101 here)
    assert times["peer_S"] == "101"


def test_overlay_mesh_grid_is_the_closest_count():
    import autolens as al

    from wtilde_dask.bench.peer_mesh import overlay_mesh_grid
    from wtilde_dask.grid import ImageGrid

    grid = ImageGrid.circular((60, 60), (0.1, 0.1), 2.5)
    mask = al.Mask2D(mask=grid.mask, pixel_scales=grid.pixel_scales)
    counts = {n: al.image_mesh.Overlay(shape=(n, n), respect_small_datasets=False)
              .image_plane_mesh_grid_from(mask=mask).shape[0] for n in range(2, 61)}
    for target in (50, 200, 400):
        got, shape = overlay_mesh_grid(al, mask, target)
        assert abs(got.shape[0] - target) == min(abs(c - target) for c in counts.values()), (target, shape)
        assert got.shape[0] == counts[shape[0]]
