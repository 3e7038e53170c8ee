"""The SIE + external-shear ray tracing (NumPy LensModel and JAX jax_likelihood.ray_trace) against references that
do not use its formula:

* the peer: PyAutoLens ``al.mp.Isothermal`` + ``al.mp.ExternalShear`` deflections on an ``al.Grid2DIrregular`` of
  the same (y, x) points, through ``params_from_autolens`` (random ellipticities, centres, shears, Einstein radii;
  q near 1, q = 1, a shear alone, angles wrapped past -45 degrees), to 1e-10 arcsec;
* the convergence: the divergence of the deflection field by central finite differences equals 2 kappa with the
  analytic SIE convergence in our normalisation, ``kappa = b q / (2 sqrt(q**2 x'**2 + y'**2))`` (x' along the
  major axis at ``position_angle`` counter-clockwise from +x, origin at the centre; b is the semi-major axis of the
  kappa = 1/2 contour), away from the centre;
* rotation: the lens rotated by t (centre and position angle) deflects the rotated grid by the rotated deflections;
* the shear: its deflection is the gradient (central finite differences) of the potential
  ``psi = 1/2 gamma_1 (x**2 - y**2) + gamma_2 x y`` written here, and of PyAutoLens's ``potential_2d_from``.
"""

from __future__ import annotations

import numpy as np
import pytest

import autolens as al
from wtilde_dask.inversion import jax_likelihood as jl
from wtilde_dask.inversion.lens import LensModel, autolens_from_params, params_from_autolens

import jax.numpy as jnp

TOL = 1e-10  # arcsec


def grid(seed: int = 0, n: int = 400, r_min: float = 0.05) -> np.ndarray:
    """(n, 2) random (y, x) arcsec points in [-2, 2]**2 at least r_min from the origin."""
    g = np.random.default_rng(seed).uniform(-2.0, 2.0, (4 * n, 2))
    return g[np.hypot(g[:, 0], g[:, 1]) > r_min][:n]


def autolens_deflections(g, centre, ell_comps, einstein_radius, gamma_1, gamma_2) -> np.ndarray:
    points = al.Grid2DIrregular(g)
    iso = al.mp.Isothermal(centre=centre, ell_comps=ell_comps, einstein_radius=einstein_radius)
    shear = al.mp.ExternalShear(gamma_1=gamma_1, gamma_2=gamma_2)
    return np.asarray(iso.deflections_yx_2d_from(points)) + np.asarray(shear.deflections_yx_2d_from(points))


def numpy_deflections(params, g) -> np.ndarray:
    p = [float(v) for v in params]
    return LensModel(p[0], p[1], p[2], (p[3], p[4]), (p[5], p[6])).deflections(g)


def jax_deflections(params, g) -> np.ndarray:
    return g - np.asarray(jl.ray_trace(jnp.asarray(params), jnp.asarray(g)))


DEFLECTIONS = {"numpy": numpy_deflections, "jax": jax_deflections}


def random_lenses(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield dict(centre=tuple(rng.normal(0.0, 0.3, 2)), ell_comps=tuple(rng.normal(0.0, 0.25, 2)),
                   einstein_radius=float(rng.uniform(0.3, 2.0)), gamma_1=float(rng.normal(0.0, 0.08)),
                   gamma_2=float(rng.normal(0.0, 0.08)))


SPECIAL_LENSES = {
    "q near 1 (1 - q = 2e-5)": dict(centre=(0.1, -0.2), ell_comps=(1e-5, 0.5e-5), einstein_radius=1.1,
                                    gamma_1=0.02, gamma_2=-0.01),
    "q = 1": dict(centre=(-0.3, 0.2), ell_comps=(0.0, 0.0), einstein_radius=0.9, gamma_1=0.0, gamma_2=0.05),
    "shear only": dict(centre=(0.0, 0.0), ell_comps=(0.1, 0.1), einstein_radius=0.0, gamma_1=0.07, gamma_2=-0.04),
    "angle below -45 wrapped": dict(centre=(0.4, 0.3), ell_comps=(-0.2, -0.3), einstein_radius=1.6, gamma_1=-0.05,
                                    gamma_2=0.03),
    "very elliptical (q = 0.11)": dict(centre=(0.0, 0.5), ell_comps=(0.56, -0.5), einstein_radius=1.0,
                                       gamma_1=0.0, gamma_2=0.0),
}
LENSES = {f"random {i}": lens for i, lens in enumerate(random_lenses(6))} | SPECIAL_LENSES


def our_params(lens) -> np.ndarray:
    return params_from_autolens(lens["centre"][0], lens["centre"][1], lens["ell_comps"][0], lens["ell_comps"][1],
                                lens["einstein_radius"], lens["gamma_1"], lens["gamma_2"])


@pytest.mark.peer
@pytest.mark.parametrize("backend", sorted(DEFLECTIONS))
@pytest.mark.parametrize("name", sorted(LENSES))
def test_deflections_equal_autolens(name, backend):
    lens = LENSES[name]
    g = grid(seed=len(name))
    ours = DEFLECTIONS[backend](our_params(lens), g)
    ref = autolens_deflections(g, **lens)
    assert np.max(np.abs(ours - ref)) <= TOL
    assert np.max(np.abs(ref)) > 0.05  # the comparison is not between two zero fields


@pytest.mark.peer
@pytest.mark.parametrize("magnitude", [5e-10, 4e-9, 2e-8, 3e-5])
def test_lens_model_equals_autolens_near_round(magnitude):
    """1 - q from 1e-9 to 6e-5, where the arctan / arctanh ratios are 0/0-prone: LensModel stays within 1e-10."""
    lens = dict(centre=(0.1, -0.1), ell_comps=(0.6 * magnitude, -0.8 * magnitude), einstein_radius=1.3,
                gamma_1=0.01, gamma_2=0.02)
    g = grid(seed=11)
    assert np.max(np.abs(numpy_deflections(our_params(lens), g) - autolens_deflections(g, **lens))) <= TOL


@pytest.mark.peer
@pytest.mark.parametrize("name", sorted(LENSES))
def test_axis_ratio_and_angle_are_autolens(name):
    """Our axis ratio / position angle are PyAutoLens's ``axis_ratio()`` / ``angle()`` of the same ell_comps, and
    ``b = 2 einstein_radius_rescaled`` (its deflection prefactor is ``2 einstein_radius_rescaled q / sqrt(1-q^2)``)."""
    lens = LENSES[name]
    iso = al.mp.Isothermal(centre=lens["centre"], ell_comps=lens["ell_comps"], einstein_radius=lens["einstein_radius"])
    p = our_params(lens)
    assert p[1] == pytest.approx(float(iso.axis_ratio()), abs=1e-14)
    assert p[2] == pytest.approx(float(iso.angle()), abs=1e-12)
    assert p[0] == pytest.approx(2.0 * float(iso.einstein_radius_rescaled()), rel=1e-14)
    assert (p[3], p[4]) == lens["centre"]


@pytest.mark.peer
def test_lens_model_from_autolens_and_back():
    lens = LENSES["random 0"]
    g = grid()
    model = LensModel.from_autolens(lens["centre"], lens["ell_comps"], lens["einstein_radius"], lens["gamma_1"],
                                    lens["gamma_2"])
    assert np.max(np.abs(model.deflections(g) - autolens_deflections(g, **lens))) <= TOL
    back = autolens_from_params(our_params(lens))
    assert float(back["ell_comps_0"]) == pytest.approx(lens["ell_comps"][0], abs=1e-14)
    assert float(back["ell_comps_1"]) == pytest.approx(lens["ell_comps"][1], abs=1e-14)
    assert float(back["einstein_radius"]) == pytest.approx(lens["einstein_radius"], rel=1e-14)


# ---------------------------------------------------------------------------------------------------------------
# references that do not use the deflection formula
# ---------------------------------------------------------------------------------------------------------------
SIE_CASES = [  # (einstein_radius b, q, position_angle deg, centre (y, x))
    (1.2, 0.6, 30.0, (0.1, -0.2)),
    (0.8, 0.35, -70.0, (-0.3, 0.25)),
    (1.0, 0.9, 115.0, (0.0, 0.0)),
    (1.5, 0.999, 10.0, (0.2, 0.1)),
]


def sie_convergence(g, b, q, pa, centre) -> np.ndarray:
    """kappa = b q / (2 sqrt(q**2 x'**2 + y'**2)), (x', y') the lens frame: centred, rotated by pa counter-clockwise."""
    phi = np.deg2rad(pa)
    dy, dx = g[:, 0] - centre[0], g[:, 1] - centre[1]
    xp = np.cos(phi) * dx + np.sin(phi) * dy
    yp = -np.sin(phi) * dx + np.cos(phi) * dy
    return b * q / (2.0 * np.sqrt(q * q * xp * xp + yp * yp))


@pytest.mark.peer
@pytest.mark.parametrize("case", range(len(SIE_CASES)))
def test_convergence_formula_is_autolens(case):
    """The kappa written above is PyAutoLens's ``Isothermal.convergence_2d_from`` of the same lens."""
    b, q, pa, centre = SIE_CASES[case]
    fac = (1 - q) / (1 + q)
    ell = (fac * np.sin(np.deg2rad(2 * pa)), fac * np.cos(np.deg2rad(2 * pa)))
    iso = al.mp.Isothermal(centre=centre, ell_comps=ell, einstein_radius=b * (1 + q) / 2)
    g = grid(seed=case, n=100)
    ref = np.asarray(iso.convergence_2d_from(al.Grid2DIrregular(g)))
    assert np.max(np.abs(sie_convergence(g, b, q, pa, centre) / ref - 1.0)) < 1e-10


def divergence(deflect, g, h=1e-5) -> np.ndarray:
    """d alpha_y / dy + d alpha_x / dx by central differences."""
    ey, ex = np.array([h, 0.0]), np.array([0.0, h])
    return ((deflect(g + ey)[:, 0] - deflect(g - ey)[:, 0]) + (deflect(g + ex)[:, 1] - deflect(g - ex)[:, 1])) / (2 * h)


@pytest.mark.parametrize("backend", sorted(DEFLECTIONS))
@pytest.mark.parametrize("case", range(len(SIE_CASES)))
def test_sie_divergence_is_twice_the_convergence(case, backend):
    b, q, pa, centre = SIE_CASES[case]
    params = np.array([b, q, pa, centre[0], centre[1], 0.0, 0.0])
    g = grid(seed=case, n=300)
    g = g[np.hypot(g[:, 0] - centre[0], g[:, 1] - centre[1]) > 0.2]  # away from the singular centre
    div = divergence(lambda pts: DEFLECTIONS[backend](params, pts), g)
    kappa = sie_convergence(g, b, q, pa, centre)
    assert np.max(np.abs(div - 2.0 * kappa) / (2.0 * kappa)) < 1e-6


@pytest.mark.parametrize("backend", sorted(DEFLECTIONS))
@pytest.mark.parametrize("t", [25.0, 60.0, -130.0])
def test_rotated_lens_deflects_the_rotated_grid_by_the_rotated_field(t, backend):
    b, q, pa, centre = 1.1, 0.55, 20.0, (0.15, -0.25)
    shear = (0.04, -0.03)
    c, s = np.cos(np.deg2rad(t)), np.sin(np.deg2rad(t))

    def rotate(v):  # (y, x) rotated by t counter-clockwise
        return np.stack([s * v[:, 1] + c * v[:, 0], c * v[:, 1] - s * v[:, 0]], axis=1)

    # a shear (gamma_1, gamma_2) is a spin-2 field: rotated by t it becomes rotation by 2t of its components
    c2, s2 = np.cos(np.deg2rad(2 * t)), np.sin(np.deg2rad(2 * t))
    shear_rot = (c2 * shear[0] - s2 * shear[1], s2 * shear[0] + c2 * shear[1])
    cy, cx = rotate(np.array([centre]))[0]
    g = grid(seed=7, n=300)
    alpha = DEFLECTIONS[backend](np.array([b, q, pa, centre[0], centre[1], *shear]), g)
    alpha_rot = DEFLECTIONS[backend](np.array([b, q, pa + t, cy, cx, *shear_rot]), rotate(g))
    assert np.max(np.abs(alpha_rot - rotate(alpha))) < 1e-12
    assert np.max(np.abs(alpha_rot - alpha)) > 1e-2  # the rotation is not trivial


def gradient(potential, g, h=1e-4) -> np.ndarray:
    """(d psi / dy, d psi / dx) by central differences (exact for a quadratic psi up to round-off)."""
    ey, ex = np.array([h, 0.0]), np.array([0.0, h])
    return np.stack([(potential(g + ey) - potential(g - ey)) / (2 * h),
                     (potential(g + ex) - potential(g - ex)) / (2 * h)], axis=1)


@pytest.mark.parametrize("backend", sorted(DEFLECTIONS))
@pytest.mark.parametrize("shear", [(0.05, 0.0), (0.0, -0.07), (-0.04, 0.09)])
def test_shear_deflection_is_the_gradient_of_its_potential(shear, backend):
    g1, g2 = shear
    g = grid(seed=3, n=200)
    alpha = DEFLECTIONS[backend](np.array([0.0, 1.0, 0.0, 0.0, 0.0, g1, g2]), g)

    def psi(pts):
        y, x = pts[:, 0], pts[:, 1]
        return 0.5 * g1 * (x * x - y * y) + g2 * x * y

    assert np.max(np.abs(alpha - gradient(psi, g))) < 1e-9

    def psi_autolens(pts):
        return np.asarray(al.mp.ExternalShear(gamma_1=g1, gamma_2=g2).potential_2d_from(al.Grid2DIrregular(pts)))

    assert np.max(np.abs(alpha - gradient(psi_autolens, g))) < 1e-9
