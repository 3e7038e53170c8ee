"""Our lens model against PyAutoLens 2026.10 (the peer), the same model giving the same number:

* at the truth and at 10 prior draws, our ``JaxLikelihood`` log evidence (lattice store, mesh
  ``rectangular_uniform``, lens through ``params_from_autolens``) equals PyAutoLens's ``figure_of_merit``
  (``AnalysisInterferometer(use_jax=True)`` with its own sparse operator, ``RectangularUniform`` mesh, constant
  regularization, linear solver, no border relocation, over-sampling 1) to 1e-6 relative; our ray tracing
  equals its tracer's; and our ``rectangular`` mesh (a different placement) differs measurably -- the named
  difference of model;
* ``python -m wtilde_dask.bench fit`` at a tiny size runs both searches (PyAutoLens's ``af.Nautilus`` and our
  ``run_fit``) and prints every row with finite numbers, and the two posterior medians agree within their errors.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wtilde_dask.bench import fit as bench_fit


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from wtilde_dask.compute import compute
    from wtilde_dask.grid import ImageGrid

    radius = 0.5
    grid = ImageGrid.circular((22, 22), (0.05, 0.05), radius)
    truth = bench_fit.truth_for(radius)
    dataset = bench_fit.simulate_lens(grid, truth, 1000, seed=5)
    store = compute(dataset, grid, tmp_path_factory.mktemp("fit-peer") / "peer.zarr", method="lattice",
                    n_workers=1, threads_per_worker=1, progress=False, log=lambda *a, **k: None)
    return store, truth


def test_same_model_same_number(small_store):
    from wtilde_dask.fit.model import FitModel

    store, truth = small_store
    free = ["centre_0", "ell_comps_0", "ell_comps_1", "einstein_radius", "gamma_1", "gamma_2"]
    model = FitModel.from_dict(bench_fit.model_dict(truth, free, mesh_shape=(10, 10)))
    points = np.vstack([bench_fit.truth_point(model, truth)[None], bench_fit.prior_draws(model, 10, seed=11)])
    peer_dataset = bench_fit.peer_dataset(store, own_operator=True)  # its own NUFFT precision operator
    rows = bench_fit.same_number(store, model, points, dataset=peer_dataset)
    assert len(rows) == 11
    for row in rows:
        assert np.isfinite(row["peer"]) and row["peer"] < 0
        assert row["rel_ours"] <= 1e-6, row  # the same model: the same number
        assert row["rel_peer_mesh"] <= 1e-6, row  # our F, D and solve on its own mapping
        assert row["tracing"] <= 1e-10, row  # arcsec: params_from_autolens + our SIE + shear = its tracer
    # our own rectangular mesh is another placement of the nodes: a difference of model, measured here
    assert max(row["rel_rectangular"] for row in rows) > 1e-5


def test_bench_fit_tiny(capsys):
    """Both searches at a tiny size, the same model, priors, seed and Nautilus settings: every printed row,
    finite numbers, both stopped by the same evaluation budget, medians within their errors (the same-number
    section is the test above)."""
    rc = bench_fit.main(["--pixels", "200", "--visibilities", "500", "--mesh-shape", "8", "8",
                         "--free", "einstein_radius,ell_comps_0", "--n-live", "30", "--n-batch", "30",
                         "--n-eff", "50", "--n-like-max", "150", "--same-number", "0", "--workers", "1",
                         "--seed", "3"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.splitlines()
    for head in ("fit benchmark:", "free:", "Nautilus:", "machine:", "PyAutoLens dataset", "PyAutoLens ",
                 "ours ", "truth ", "ours - PyAutoLens", "ratio PyAutoLens / ours:"):
        assert any(line.startswith(head) for line in lines), (head, out)
    result = json.loads(next(line for line in lines if line.startswith("FIT_BENCH ")).split(" ", 1)[1])
    for key in ("peer_wall_s", "ours_wall_s", "peer_s_per_eval", "ours_s_per_eval", "peer_log_z", "ours_log_z",
                "peer_log_z_err", "ours_log_z_err", "wall_ratio", "s_per_eval_ratio", "max_median_sigma"):
        assert math.isfinite(result[key]) and (result[key] >= 0 or key.endswith("log_z")), (key, result)
    assert 30 <= result["peer_evaluations"] <= 150 + 30 and 30 <= result["ours_evaluations"] <= 150 + 30
    # the table rows: wall, evaluations, s/eval, log Z, error, then median +- sigma per parameter
    table = {}
    for line in lines:
        words = line.replace("+-", " ").split()
        if len(words) > 1 and words[0] in ("PyAutoLens", "ours") and words[1].replace(".", "").isdigit():
            table[words[0]] = [float(v.replace(",", "")) for v in words[1:]]
    peer, ours = table["PyAutoLens"], table["ours"]
    assert len(peer) == len(ours) == 5 + 2 * 2 and all(map(math.isfinite, peer + ours))
    for j in range(2):
        m1, s1, m2, s2 = peer[5 + 2 * j], peer[6 + 2 * j], ours[5 + 2 * j], ours[6 + 2 * j]
        assert abs(m1 - m2) <= math.hypot(s1, s2), (j, peer, ours)
    assert result["max_median_sigma"] <= 1.0
    # the log evidences agree within their errors too
    assert abs(result["peer_log_z"] - result["ours_log_z"]) <= 3 * math.hypot(result["peer_log_z_err"],
                                                                              result["ours_log_z_err"]) + 1e-6
