"""The natural-neighbour (Sibson) source mesh ``voronoi``: its weights equal the Voronoi area stolen by the
inserted point (half-plane clipping written here) and PyAutoArray's DelaunayNN weights; rows sum to 1 and
reproduce linear functions; the JAX likelihood equals the NumPy fitter and the brute force from the
visibilities; vmap equals single calls; jax.grad equals central differences; `wtilde invert --mesh voronoi`
runs both backends; along the Einstein radius its log evidence has no jumps where Delaunay's has them.
Real lattice stores computed on a real LocalCluster; small sizes (M = 448, S = 60, K = 2000)."""

from __future__ import annotations

import numpy as np
import pytest

from datasets import (assert_fit_equals_numpy_and_brute_force, assert_vmap_equals_single_calls, cached_likelihood,
                      invert_argv, lattice_stores)

from wtilde_dask.grid import ImageGrid
from wtilde_dask.inversion import LensModel
from wtilde_dask.inversion import jax_likelihood as jl
from wtilde_dask.inversion import jax_meshes
from wtilde_dask.inversion.natural_neighbour import NEAREST, VoronoiMesh, sibson_topology, sibson_weights

RTOL = 1e-8
LENS = LensModel(einstein_radius=0.8, axis_ratio=0.75, position_angle=35.0, centre=(0.05, -0.03), shear=(0.03, -0.02))
GRID = ImageGrid.circular((26, 26), (0.1, 0.1), 1.2)
N_VERTICES = 60
COEFFICIENT = 0.5


# ---------------------------------------------------------------------------------------------- independent Sibson
def _clip(poly, normal, offset):
    """Sutherland-Hodgman: the part of the polygon (list of (2,) points) with ``normal . x <= offset``."""
    out = []
    for i in range(len(poly)):
        p, q = poly[i], poly[(i + 1) % len(poly)]
        fp, fq = normal @ p - offset, normal @ q - offset
        if fp <= 0:
            out.append(p)
        if fp * fq < 0:
            out.append(p + fp / (fp - fq) * (q - p))
    return out


def _closer_to(poly, u, v):
    """The part of the polygon closer to u than to v: ``2 (v - u) . x <= |v|^2 - |u|^2``."""
    return _clip(poly, 2.0 * (v - u), v @ v - u @ u)


def _area(poly) -> float:
    if len(poly) < 3:
        return 0.0
    p = np.array(poly)
    return 0.5 * abs(float(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - p[:, 1] * np.roll(p[:, 0], -1))))


def sibson_by_clipping(vertices, point, box=100.0):
    """(S,) Sibson weights by definition: the area of (new cell of the point) n (old cell of vertex j) over the
    area of the new cell, the cells cut out of a large box by the bisector half-planes."""
    cell = [np.array(c, dtype=float) for c in ((-box, -box), (box, -box), (box, box), (-box, box))]
    for v in vertices:
        cell = _closer_to(cell, point, v)
    w = np.zeros(len(vertices))
    for j in range(len(vertices)):
        piece = cell
        for k in range(len(vertices)):
            if k != j and len(piece) >= 3:
                piece = _closer_to(piece, vertices[j], vertices[k])
        w[j] = _area(piece)
    return w / _area(cell)


def dense(topology, weights, n_vertices):
    out = np.zeros((len(weights), n_vertices))
    cols = np.asarray(topology.neighbours)
    for i in range(len(weights)):
        for c, w in zip(cols[i], np.asarray(weights)[i]):
            if c >= 0:
                out[i, c] += w
    return out


def test_weights_equal_area_stolen_by_clipping():
    rng = np.random.default_rng(1)
    # random vertices, and a jittered lattice (near-cocircular quadruples) with points on its interior edges
    lattice = np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0), indexing="ij"), -1).reshape(-1, 2) * 0.2 - 0.5
    cases = [(rng.uniform(-1, 1, (40, 2)), rng.uniform(-0.7, 0.7, (25, 2))),
             (lattice + rng.normal(scale=1e-3, size=lattice.shape), np.array([[0.0, -0.2], [-0.1, 0.0], [0.15, 0.1]]))]
    for vertices, points in cases:
        topo = sibson_topology(vertices, points)
        assert np.all(topo.kind == 0)
        got = dense(topo, sibson_weights(vertices, points, topo), len(vertices))
        ref = np.array([sibson_by_clipping(vertices, p) for p in points])
        assert np.max(np.abs(got - ref)) <= 1e-10


def test_weights_equal_pyautoarray_delaunay_nn():
    from autoarray.inversion.mesh.interpolator.sibson import scipy_delaunay_nn

    source_grid = LENS.ray_trace(GRID.grid_arcsec)
    mesh = VoronoiMesh.from_source_grid(source_grid, N_VERTICES)
    ours = mesh.mapping_matrix(source_grid).toarray()
    # the peer works in (x, y); Sibson weights are unchanged by the swap (a reflection keeps areas)
    out = scipy_delaunay_nn(mesh.centres[:, ::-1].copy(), source_grid[:, ::-1].copy())
    points, mappings, sizes, weights = out[0], out[2], out[3], out[4]
    index = {tuple(p): i for i, p in enumerate(mesh.centres[:, ::-1])}
    theirs = np.zeros_like(ours)
    ok = ~np.isnan(weights).any(axis=1)
    for i in np.flatnonzero(ok):
        for c, w in zip(mappings[i, :sizes[i]], weights[i, :sizes[i]]):
            theirs[i, index[tuple(points[c])]] += w
    assert ok.mean() > 0.9
    diff = np.where(ok, np.max(np.abs(ours - theirs), axis=1), 0.0)
    assert np.median(diff[ok]) <= 1e-14 and diff.max() <= 1e-7
    # where the two differ most (the peer's Watson sum cancels near-degenerate circles), ours is the definition
    worst = int(np.argmax(diff))
    assert np.max(np.abs(ours[worst] - sibson_by_clipping(mesh.centres, source_grid[worst]))) <= 1e-12


def test_rows_sum_to_one_reproduce_linear_functions_and_outside_points():
    source_grid = LENS.ray_trace(GRID.grid_arcsec)
    mesh = VoronoiMesh.from_source_grid(source_grid, N_VERTICES)
    T = mesh.mapping_matrix(source_grid).toarray()
    topo = mesh.topology(source_grid)
    assert np.max(np.abs(T.sum(axis=1) - 1)) <= 1e-12
    assert np.all(T >= -1e-12)
    inside = mesh.triangulation.find_simplex(source_grid) >= 0
    assert inside.sum() > 0.5 * len(inside) and (~inside).sum() > 0  # both kinds present
    # linear precision: f(y, x) = 2 + 3 y - 5 x at the vertices interpolates exactly inside the hull
    f = lambda p: 2 + 3 * p[:, 0] - 5 * p[:, 1]  # noqa: E731
    assert np.max(np.abs(T[inside] @ f(mesh.centres) - f(source_grid[inside]))) <= 1e-12
    # outside the hull: weight 1 on the nearest vertex (PyAutoArray's DelaunayNN)
    nearest = np.argmin(np.sum((source_grid[~inside, None] - mesh.centres[None]) ** 2, axis=2), axis=1)
    assert np.all(topo.kind[~inside] == NEAREST)
    assert np.array_equal(T[~inside], np.eye(mesh.n_pixels)[nearest])


def test_weights_continuous_through_a_triangle_flip():
    """Four cocircular vertices: moving one across the circle flips the triangulation's diagonal; the
    barycentric weights jump there, the Sibson weights do not."""
    base = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [2.5, 2.5], [-2.5, 2.5], [-2.5, -2.5], [2.5, -2.5]])
    point = np.array([[0.3, 0.1]])
    rows, regs, edges = [], [], []
    for eps in (-1e-9, 1e-9):
        v = base.copy()
        v[0, 0] += eps  # vertex 0 inside / outside the circle of vertices 1, 2, 3
        topo = sibson_topology(v, point)
        rows.append(dense(topo, sibson_weights(v, point, topo), len(v))[0])
        mesh = VoronoiMesh(v)
        regs.append(mesh.regularization_matrix(1.0))
        edges.append({tuple(e) for e in mesh.edges})
    assert ((0, 2) in edges[0]) != ((0, 2) in edges[1])  # the diagonal flipped between (0, 2) and (1, 3)
    assert np.max(np.abs(rows[0] - rows[1])) <= 1e-8
    assert rows[0][[0, 1, 2, 3]].min() > 0.01  # all four are natural neighbours on both sides
    assert np.max(np.abs(regs[0] - regs[1])) <= 1e-8  # the flipped edge weighs ~0 on both sides


def test_neighbour_weights_are_voronoi_facet_over_distance():
    from scipy.spatial import Voronoi

    rng = np.random.default_rng(2)
    vertices = rng.uniform(-1, 1, (40, 2))
    mesh = VoronoiMesh(vertices)
    weight = dict(zip(map(tuple, mesh.edges), mesh.edge_weights))
    vor = Voronoi(vertices)
    n_checked = 0
    for (i, j), ridge in zip(vor.ridge_points, vor.ridge_vertices):
        if -1 in ridge:  # an unbounded facet (hull edge)
            continue
        facet = np.linalg.norm(vor.vertices[ridge[0]] - vor.vertices[ridge[1]])
        expected = facet / np.linalg.norm(vertices[i] - vertices[j])
        assert abs(weight[(min(i, j), max(i, j))] - expected) <= 1e-10
        n_checked += 1
    assert n_checked > 50
    # H = c^2 sum_e w_e (u_i - u_j)(u_i - u_j)^T + 1e-8 I
    H = np.zeros((40, 40))
    for (i, j), w in weight.items():
        H[i, i] += w
        H[j, j] += w
        H[i, j] -= w
        H[j, i] -= w
    assert np.max(np.abs(mesh.regularization_matrix(0.7) - (0.49 * H + 1e-8 * np.eye(40)))) <= 1e-12
    # on a square lattice: 1 between lattice neighbours, 0 on the diagonals
    lattice = np.stack(np.meshgrid(np.arange(5.0), np.arange(5.0), indexing="ij"), -1).reshape(-1, 2)
    lattice_mesh = VoronoiMesh(lattice + rng.normal(scale=1e-9, size=lattice.shape))
    lengths = np.linalg.norm(lattice[lattice_mesh.edges[:, 0]] - lattice[lattice_mesh.edges[:, 1]], axis=1)
    ends = lattice[lattice_mesh.edges].reshape(-1, 4)
    interior = ((ends > 0) & (ends < 4)).all(axis=1)  # both ends off the lattice's rim
    w = lattice_mesh.edge_weights
    assert (np.isclose(lengths, 1.0) & interior).sum() == 12
    assert np.allclose(w[np.isclose(lengths, 1.0) & interior], 1.0, atol=1e-6)
    assert np.allclose(w[(lengths > 1.1) & interior], 0.0, atol=1e-6)
    assert w.max() <= 100.0  # the rim's flat triangles: bounded


# ---------------------------------------------------------------------------------------------- the likelihood
@pytest.fixture(scope="module")
def stores(tmp_path_factory, client):
    """{"equal": lattice store, equal real/imag noise (no Hankel part); "unequal": with the Hankel part}."""
    return lattice_stores(tmp_path_factory.mktemp("voronoi"), GRID, client, "voronoi")


def likelihood(stores, data) -> jl.JaxLikelihood:
    return cached_likelihood(stores[data], mesh="voronoi", n_pixels=N_VERTICES, coefficient=COEFFICIENT, batch_size=32)


@pytest.mark.parametrize("data", ["equal", "unequal"])
def test_jax_equals_numpy_fitter_and_brute_force(stores, data):
    store = stores[data]
    source_grid = LENS.ray_trace(store.grid().grid_arcsec)
    mesh = VoronoiMesh.from_source_grid(source_grid, N_VERTICES)
    T = mesh.mapping_matrix(source_grid)
    H = mesh.regularization_matrix(COEFFICIENT)
    assert_fit_equals_numpy_and_brute_force(store, likelihood(stores, data), jl.params_from_lens(LENS), T, H, RTOL)


def test_vmap_equals_single_calls(stores):
    lk = likelihood(stores, "unequal")

    def cavity_shapes(batch):
        return {jax_meshes.voronoi_topology(p, lk.arrays.grid_arcsec, N_VERTICES).pair_corner.shape for p in batch}

    assert_vmap_equals_single_calls(lk, jl.params_from_lens(LENS), 4, describe=cavity_shapes)


def test_grad_equals_central_differences(stores):
    """jax.grad is the derivative of the evidence with the host tables held at those of ``params``; the
    differences use the same tables (a point crossing a circumcircle within +-h changes them: the weights
    stay continuous there, but their second derivatives jump). The evidence has large third
    derivatives (points 0.01" from a vertex): the central difference's error fell as h^2 from 1e-1 at h = 1e-4
    to 1e-7 at h = 1e-7 (relative, Einstein radius), so the h^2 term is cancelled by Richardson extrapolation
    from h and h / 2."""
    lk = likelihood(stores, "unequal")
    params = jl.params_from_lens(LENS)
    topology = lk.topology(params)
    value, grad = lk.value_and_grad(params)
    grad = np.asarray(grad)
    assert float(value) == pytest.approx(float(lk.log_evidence(params)), rel=1e-11)
    assert np.all(np.isfinite(grad)) and np.all(grad != 0)
    # steps moving the traced points by ~4e-6 arcsec (position angle in degrees: 1 rad = 57.3 deg); below
    # ~1e-6 the evaluation's round-off (~1e-9 in the evidence) dominates the differences
    scale = np.array([1.0, 1.0, np.degrees(1.0), 1.0, 1.0, 1.0, 1.0]) * 4e-6

    def central(i, h):
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        return (float(lk.log_evidence(up, topology)) - float(lk.log_evidence(down, topology))) / (2 * h)

    for i, name in enumerate(jl.PARAM_NAMES):
        fd = (4 * central(i, scale[i] / 2) - central(i, scale[i])) / 3  # Richardson: the h^2 term cancels
        assert abs(grad[i] - fd) <= 1e-5 * abs(fd), (name, grad[i], fd)


def test_cli_invert_mesh_voronoi_both_backends(stores, tmp_path):
    from wtilde_dask.cli import main

    store = stores["unequal"]
    common = invert_argv(store, "voronoi", N_VERTICES, COEFFICIENT)
    values = {}
    for backend in ("numpy", "jax"):
        assert main(common + ["--backend", backend, "--png", str(tmp_path / f"{backend}.png")]) == 0
        values[backend] = dict(store.refresh_attrs()["inversion"])
        assert values[backend]["mesh"] == "voronoi" and values[backend]["n_source_pixels"] == N_VERTICES
    assert values["jax"]["log_evidence"] == pytest.approx(values["numpy"]["log_evidence"], rel=RTOL)


def test_no_jumps_along_the_einstein_radius_where_delaunay_jumps(tmp_path):
    """The continuity bench at a smaller size: 100 steps of the Einstein radius on a 36 x 36 lattice, the
    bench's step (5e-4 arcsec; at coarser steps the evidence's curvature alone makes second differences
    exceed the first ones)."""
    from wtilde_dask.bench.continuity import continuity_table, make_store

    store = make_store(tmp_path / "continuity.zarr", (36, 36), 0.1, 1000)
    table = continuity_table(store, ["delaunay", "voronoi"], 100, (0.95, 1.0), n_pixels=150, mesh_shape=(12, 12))
    assert table["voronoi"]["jump_fraction"] <= 0.02, table["voronoi"]["jump_fraction"]
    assert table["delaunay"]["jump_fraction"] > 0.2


def test_cavity_tables_equal_the_circumcircle_definition():
    """The host tables against their definition, by brute force over every triangle: a Sibson point's cavity is
    the set of Delaunay triangles whose circumcircle holds it strictly inside (its own triangle among them), an
    edge is on the cavity boundary when the triangle across it is not in the cavity (or it is a hull edge), the
    natural neighbours are the cavity's distinct corners in increasing order and each corner's slot points at
    its vertex there."""
    from scipy.spatial import Delaunay

    from wtilde_dask.inversion.natural_neighbour import SIBSON

    rng = np.random.default_rng(8)
    vertices = rng.uniform(-1.0, 1.0, size=(80, 2))
    points = rng.uniform(-1.1, 1.1, size=(400, 2))
    topo = sibson_topology(vertices, points)
    tri = Delaunay(vertices)
    corners = vertices[tri.simplices]  # (T, 3, 2)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    d = 2.0 * ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
    ba2, ca2 = np.sum((b - a) ** 2, axis=1), np.sum((c - a) ** 2, axis=1)
    centre = a + np.stack([(c - a)[:, 1] * ba2 - (b - a)[:, 1] * ca2, (b - a)[:, 0] * ca2 - (c - a)[:, 0] * ba2], 1) / d[:, None]
    radius2 = np.sum((a - centre) ** 2, axis=1)
    n_sibson = 0
    for m in np.flatnonzero(topo.kind == SIBSON):
        n_sibson += 1
        p = points[m]
        expected = {tuple(sorted(t)) for t in tri.simplices[np.sum((centre - p) ** 2, axis=1) < radius2]}
        expected.add(tuple(sorted(tri.simplices[tri.find_simplex(p)])))
        rows = topo.cavity[m][topo.cavity[m, :, 0] >= 0]
        assert {tuple(sorted(t)) for t in rows} == expected
        edges = {}
        for t in expected:
            for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])):
                edges[e] = edges.get(e, 0) + 1
        nb = topo.neighbours[m][topo.neighbours[m] >= 0]
        assert list(nb) == sorted({v for t in expected for v in t})
        for r, t in enumerate(rows):
            for k in range(3):
                edge = tuple(sorted((t[(k + 1) % 3], t[(k + 2) % 3])))
                assert topo.boundary[m, r, k] == (edges[edge] == 1)  # shared by two cavity triangles: interior
                assert nb[topo.slot[m, r, k]] == t[k]
    assert n_sibson > 200
