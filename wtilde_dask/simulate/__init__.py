"""Synthetic ALMA-scale interferometer datasets, written in chunks as a PyAutoLens dataset folder.

The (u, v) coverage is Earth-rotation synthesis of a random array of ``n_antennas`` (default 43, the
ALMA 12-m array) with baselines up to ``max_baseline_m`` metres, observed at ``n_channels`` frequencies
for ``duration_h`` hours around transit at the ALMA site latitude. For antenna baseline
``B = (Bx, By, Bz)`` (equatorial metres), hour angle ``H``, declination ``dec`` and wavelength ``lam``:

    u = ( sin H Bx + cos H By) / lam
    v = (-sin dec cos H Bx + sin dec sin H By + cos dec Bz) / lam

Visibilities are of a pixelised sky image (an elliptical Gaussian or Sersic blob on a lattice with the
package's conventions, centred at the phase centre) with the sign convention of docs/mathematics.md

    V_k = sum_i I_i exp(-i phi_ik),  phi_ik = 2 pi (x_i u_k + y_i v_k)

computed with a type-2 NUFFT (ducc0, tolerance 2.5e-13), plus Gaussian noise with sigma ``sigma`` on the
real part and ``sigma_imag`` (default: the same) on the imaginary part. The noise map holds those sigmas.

Rows are ordered (time, channel, baseline); the first K of them are kept. Everything is generated and
written ``chunk_size`` visibilities at a time (FITS ``StreamingHDU``), so K = 1e8 never sits in memory.
Output folder: ``data.fits``, ``noise_map.fits``, ``uv_wavelengths.fits`` (each (K, 2) float64 big-endian,
what :func:`wtilde_dask.dataset.load_dataset` reads), ``source_image.fits`` (the true image) and
``simulation.json`` (every parameter, for reproducibility: the same parameters and seed give the same files).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import time

import numpy as np

from wtilde_dask.constants import ARCSEC_TO_RADIANS, DEFAULT_CHUNK_SIZE, SPEED_OF_LIGHT
from wtilde_dask.kernels.lattice import nufft_points
from wtilde_dask.errors import SimulationError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

__all__ = [
    "SimulationError",
    "SimulationConfig",
    "antenna_positions",
    "baselines_equatorial",
    "uv_rows",
    "source_image",
    "visibilities_from_image",
    "model_visibilities",
    "uvw_metres",
    "simulate",
    "simulate_ms",
]

ALMA_LATITUDE_DEG = -23.0229
NUFFT_EPS = 2.5e-13
SOURCES = ("gaussian", "sersic")


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """All parameters of a simulated observation (defaults: ALMA band 6, 43 antennas, ~3 km baselines)."""

    n_visibilities: int = 100_000
    n_antennas: int = 43
    max_baseline_m: float = 3000.0
    min_antenna_spacing_m: float = 15.0
    n_channels: int = 4
    frequency_ghz: float = 230.0
    bandwidth_ghz: float = 7.5
    latitude_deg: float = ALMA_LATITUDE_DEG
    declination_deg: float = -30.0
    duration_h: float = 6.0
    source: str = "gaussian"
    flux: float = 1.0  # total flux of the image (sum of pixels), visibility units (Jy)
    source_centre: tuple = (0.1, -0.15)  # (y, x) arcsec
    effective_radius: float = 0.4  # arcsec: Gaussian sigma or Sersic half-light radius (major axis)
    axis_ratio: float = 0.7
    position_angle_deg: float = 30.0  # counter-clockwise from +x
    sersic_index: float = 1.5
    image_shape: tuple = (128, 128)
    image_pixel_scale: float = 0.05  # arcsec
    sigma: float = 0.05  # noise sigma of the real part
    sigma_imag: float | None = None  # noise sigma of the imaginary part (None: = sigma)
    seed: int = 1
    chunk_size: int = DEFAULT_CHUNK_SIZE
    n_spw: int = 1  # spectral windows (Measurement Set output only), each of n_channels channels
    flag_fraction: float = 0.0  # fraction of (row, channel, correlation) flagged at random (Measurement Set only)
    point_source: tuple | None = None  # (l, m) arcsec, l East = x, m North = y: a point of `flux` instead of the image

    def __post_init__(self):
        def need(name, ok):
            if not ok:
                raise SimulationError(f"{name} = {getattr(self, name)!r} is not allowed (see SimulationConfig)")

        for name in ("n_visibilities", "n_channels", "chunk_size", "n_spw"):
            need(name, int(getattr(self, name)) == getattr(self, name) and getattr(self, name) >= 1)
        need("n_antennas", int(self.n_antennas) == self.n_antennas and self.n_antennas >= 2)
        for name in ("max_baseline_m", "frequency_ghz", "duration_h", "effective_radius", "image_pixel_scale",
                     "sigma", "flux"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and math.isfinite(v) and v > 0)
        need("bandwidth_ghz", math.isfinite(self.bandwidth_ghz) and 0 <= self.bandwidth_ghz < self.frequency_ghz)
        need("sigma_imag", self.sigma_imag is None or (math.isfinite(self.sigma_imag) and self.sigma_imag > 0))
        need("axis_ratio", 0 < self.axis_ratio <= 1)
        need("source", self.source in SOURCES)
        need("sersic_index", 0.2 <= self.sersic_index <= 8)
        need("latitude_deg", -90 < self.latitude_deg < 90)
        need("declination_deg", -90 < self.declination_deg < 90)
        need("image_shape", len(self.image_shape) == 2 and all(int(s) == s and s >= 1 for s in self.image_shape))
        need("min_antenna_spacing_m", 0 <= self.min_antenna_spacing_m < self.max_baseline_m / 4)
        need("flag_fraction", 0 <= self.flag_fraction < 1)
        need("point_source", self.point_source is None or (
            len(self.point_source) == 2 and all(math.isfinite(float(t)) for t in self.point_source)))
        if self.n_visibilities > 10**9:
            raise SimulationError(f"n_visibilities = {self.n_visibilities} is above the supported 1e9")

    @property
    def n_baselines(self) -> int:
        return self.n_antennas * (self.n_antennas - 1) // 2

    @property
    def n_times(self) -> int:
        """Time steps needed so that n_times * n_spw * n_channels * n_baselines >= n_visibilities."""
        return -(-self.n_visibilities // (self.n_spw * self.n_channels * self.n_baselines))

    @property
    def frequencies_hz(self) -> np.ndarray:
        """(n_channels,) channel centres spread evenly over the bandwidth (one window)."""
        if self.n_channels == 1:
            return np.array([self.frequency_ghz * 1e9])
        return (self.frequency_ghz + np.linspace(-0.5, 0.5, self.n_channels) * self.bandwidth_ghz) * 1e9

    @property
    def spw_frequencies_hz(self) -> np.ndarray:
        """(n_spw, n_channels) channel centres: n_spw * n_channels channels spread evenly over the bandwidth,
        window s holding channels s * n_channels ... (s + 1) * n_channels - 1 (one window: frequencies_hz)."""
        if self.n_spw == 1:
            return self.frequencies_hz[None, :]
        n = self.n_spw * self.n_channels
        f = (self.frequency_ghz + np.linspace(-0.5, 0.5, n) * self.bandwidth_ghz) * 1e9
        return f.reshape(self.n_spw, self.n_channels)

    @property
    def hour_angles_rad(self) -> np.ndarray:
        """(n_times,) hour angles spread evenly over the track, centred on transit."""
        half = 0.5 * self.duration_h * (2 * np.pi / 24.0)
        n = self.n_times
        return np.zeros(1) if n == 1 else np.linspace(-half, half, n)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["source_centre"] = list(self.source_centre)
        d["image_shape"] = list(self.image_shape)
        return d


def antenna_positions(n_antennas: int, max_baseline_m: float, rng, min_spacing_m: float = 15.0) -> np.ndarray:
    """(N, 3) local East, North, Up antenna positions (metres): uniform in a disc of diameter max_baseline_m,
    at least ``min_spacing_m`` apart (rejection sampling), with a centrally concentrated core (half the
    antennas within a quarter of the radius, like compact ALMA configurations)."""
    radius = 0.5 * max_baseline_m
    pos = []
    tries = 0
    while len(pos) < n_antennas:
        tries += 1
        if tries > 1000 * n_antennas:
            raise SimulationError(
                f"n_antennas = {n_antennas} do not fit {min_spacing_m} m apart within max_baseline_m = {max_baseline_m}"
            )
        core = len(pos) < n_antennas // 2
        r = radius * (0.25 if core else 1.0) * math.sqrt(rng.uniform())
        t = rng.uniform(0, 2 * np.pi)
        p = np.array([r * math.cos(t), r * math.sin(t), 0.0])
        if all(np.hypot(*(p - q)[:2]) >= min_spacing_m for q in pos):
            pos.append(p)
    return np.array(pos)


def baselines_equatorial(enu: np.ndarray, latitude_deg: float) -> np.ndarray:
    """(N(N-1)/2, 3) baselines (X, Y, Z) in metres (X towards H=0, dec=0; Z to the pole) for pairs i < j."""
    lat = math.radians(latitude_deg)
    e, n, up = enu[:, 0], enu[:, 1], enu[:, 2]
    xyz = np.stack([-math.sin(lat) * n + math.cos(lat) * up, e, math.cos(lat) * n + math.sin(lat) * up], axis=1)
    i, j = np.triu_indices(len(enu), k=1)
    return xyz[j] - xyz[i]


def uv_rows(config: SimulationConfig, baselines: np.ndarray, k0: int, k1: int) -> np.ndarray:
    """(k1-k0, 2) (u, v) in wavelengths of rows k0..k1-1; row k = (t * n_channels + ch) * n_baselines + b."""
    k = np.arange(k0, k1, dtype=np.int64)
    nb, nch = len(baselines), config.n_channels
    b = k % nb
    ch = (k // nb) % nch
    t = k // (nb * nch)
    h = config.hour_angles_rad[t]
    lam = SPEED_OF_LIGHT / config.frequencies_hz[ch]
    dec = math.radians(config.declination_deg)
    bx, by, bz = baselines[b, 0], baselines[b, 1], baselines[b, 2]
    sh, chh = np.sin(h), np.cos(h)
    u = (sh * bx + chh * by) / lam
    v = (-math.sin(dec) * chh * bx + math.sin(dec) * sh * by + math.cos(dec) * bz) / lam
    return np.stack([u, v], axis=1)


def uvw_metres(config: SimulationConfig, baselines: np.ndarray, times: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(n, 3) UVW in metres of (time index, baseline index) pairs ``(times[i], rows[i])`` (the formulas of the
    module docstring without the division by the wavelength; w = cos dec cos H Bx - cos dec sin H By + sin dec Bz)."""
    h = config.hour_angles_rad[times]
    dec = math.radians(config.declination_deg)
    bx, by, bz = baselines[rows, 0], baselines[rows, 1], baselines[rows, 2]
    sh, chh = np.sin(h), np.cos(h)
    u = sh * bx + chh * by
    v = -math.sin(dec) * chh * bx + math.sin(dec) * sh * by + math.cos(dec) * bz
    w = math.cos(dec) * chh * bx - math.cos(dec) * sh * by + math.sin(dec) * bz
    return np.stack([u, v, w], axis=1)


def model_visibilities(config: SimulationConfig, image, uv_wavelengths) -> np.ndarray:
    """(K,) model visibilities: a point of ``flux`` at ``point_source`` (l, m) arcsec,
    ``V = flux exp(-2 pi i (u l + v m))``, or the lattice ``image`` by NUFFT (:func:`visibilities_from_image`)."""
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    if config.point_source is not None:
        l_rad, m_rad = (float(t) * ARCSEC_TO_RADIANS for t in config.point_source)
        return config.flux * np.exp(-2j * np.pi * (uv[:, 0] * l_rad + uv[:, 1] * m_rad))
    return visibilities_from_image(image, config.image_pixel_scale, uv)


def source_image(config: SimulationConfig) -> np.ndarray:
    """(ny, nx) true sky image (sum = flux) on the lattice ``image_shape`` x ``image_pixel_scale`` arcsec,
    pixel (r, c) at y = ((ny-1)/2 - r) s, x = (c - (nx-1)/2) s (package / PyAutoArray convention)."""
    ny, nx = (int(s) for s in config.image_shape)
    s = config.image_pixel_scale
    y = ((ny - 1) / 2.0 - np.arange(ny))[:, None] * s - config.source_centre[0]
    x = (np.arange(nx) - (nx - 1) / 2.0)[None, :] * s - config.source_centre[1]
    pa = math.radians(config.position_angle_deg)
    xr = x * math.cos(pa) + y * math.sin(pa)
    yr = -x * math.sin(pa) + y * math.cos(pa)
    rr = np.sqrt(xr**2 + (yr / config.axis_ratio) ** 2)
    if config.source == "gaussian":
        img = np.exp(-0.5 * (rr / config.effective_radius) ** 2)
    else:
        n = config.sersic_index
        b_n = 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n**2)
        img = np.exp(-b_n * ((rr / config.effective_radius) ** (1 / n) - 1))
    total = img.sum()
    if not total > 0:
        raise SimulationError(f"source_centre = {config.source_centre!r}: the source falls outside the image")
    return img * (config.flux / total)


def visibilities_from_image(image, pixel_scales_arcsec, uv_wavelengths, *, eps=NUFFT_EPS, nthreads=0) -> np.ndarray:
    """(K,) complex ``V_k = sum_{r,c} I[r, c] exp(-i phi_k(r, c))`` for a lattice image (type-2 NUFFT).

    image (ny, nx) on the package lattice (pixel (r, c) at y = ((ny-1)/2 - r) sy, x = (c - (nx-1)/2) sx
    arcsec), pixel_scales_arcsec (sy, sx) or a number, uv_wavelengths (K, 2). ``phi = 2 pi (x u + y v)``.
    """
    import ducc0

    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise SimulationError(f"image has shape {img.shape}, expected (ny, nx)")
    ps = (pixel_scales_arcsec, pixel_scales_arcsec) if np.isscalar(pixel_scales_arcsec) else pixel_scales_arcsec
    sy, sx = (float(p) * ARCSEC_TO_RADIANS for p in ps)
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    ny, nx = img.shape
    # ducc0 centred modes: array index r <-> mode m_r = r - ny//2, so y = yoff - m_r sy, x = xoff + m_c sx
    yoff = ((ny - 1) / 2.0 - ny // 2) * sy
    xoff = (nx // 2 - (nx - 1) / 2.0) * sx
    coord = nufft_points(uv, (sy, sx))
    out = ducc0.nufft.u2nu(
        grid=img.astype(np.complex128), coord=coord, forward=True, epsilon=max(eps, 2.5e-13), nthreads=int(nthreads)
    )
    if yoff or xoff:
        out *= np.exp(-2j * np.pi * (xoff * uv[:, 0] + yoff * uv[:, 1]))
    return out


def _fits_stream(path: pathlib.Path, n_rows: int, comment: str):
    from astropy.io import fits

    hdr = fits.Header()
    hdr["SIMPLE"] = True
    hdr["BITPIX"] = -64
    hdr["NAXIS"] = 2
    hdr["NAXIS1"] = 2
    hdr["NAXIS2"] = n_rows
    hdr["COMMENT"] = comment
    return fits.StreamingHDU(str(path), hdr)


def simulate(out, config: SimulationConfig | None = None, *, overwrite: bool = False, log=None, **params) -> pathlib.Path:
    """Simulate a dataset into the folder ``out`` (see module docstring); returns the folder path.

    ``config`` or keyword parameters of :class:`SimulationConfig` (e.g. ``n_visibilities=10**6``).
    Memory use is O(chunk_size), independent of n_visibilities.
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    if config is None:
        config = SimulationConfig(**params)
    elif params:
        config = dataclasses.replace(config, **params)
    for name, default in (("n_spw", 1), ("flag_fraction", 0.0)):
        if getattr(config, name) != default:
            raise SimulationError(f"{name} = {getattr(config, name)!r}: a dataset folder has one window and no flags; "
                                  "use simulate_ms (wtilde simulate --format ms)")
    out = pathlib.Path(out)
    names = ("data.fits", "noise_map.fits", "uv_wavelengths.fits", "source_image.fits", "simulation.json")
    if out.exists() and not out.is_dir():
        raise SimulationError(f"{out}: output exists and is not a folder")
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise SimulationError(f"{out}: already holds {', '.join(existing)} (pass overwrite=True / --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    for n in existing:
        (out / n).unlink()

    t_start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    enu = antenna_positions(config.n_antennas, config.max_baseline_m, rng, config.min_antenna_spacing_m)
    baselines = baselines_equatorial(enu, config.latitude_deg)
    image = source_image(config)
    sigma_re = config.sigma
    sigma_im = config.sigma if config.sigma_imag is None else config.sigma_imag
    K = config.n_visibilities
    log(
        f"simulate: K = {K:,} visibilities = {config.n_times} times x {config.n_channels} channels x "
        f"{config.n_baselines} baselines (first K rows), max baseline "
        f"{np.hypot(baselines[:, 0], np.hypot(baselines[:, 1], baselines[:, 2])).max():.0f} m -> {out}"
    )
    streams = {
        "data": _fits_stream(out / "data.fits.part", K, "visibilities (K, 2): real, imag"),
        "noise": _fits_stream(out / "noise_map.fits.part", K, "noise sigma (K, 2): real, imag"),
        "uv": _fits_stream(out / "uv_wavelengths.fits.part", K, "uv_wavelengths (K, 2): u, v in wavelengths"),
    }
    max_uv = 0.0
    t_nufft = 0.0
    try:
        for ci, k0 in enumerate(range(0, K, config.chunk_size)):
            k1 = min(K, k0 + config.chunk_size)
            uv = uv_rows(config, baselines, k0, k1)
            max_uv = max(max_uv, float(np.abs(uv).max()))
            t0 = time.perf_counter()
            vis = model_visibilities(config, image, uv)
            t_nufft += time.perf_counter() - t0
            noise_rng = np.random.default_rng([config.seed, 1 + ci, config.chunk_size])
            data = np.empty((k1 - k0, 2))
            data[:, 0] = vis.real + sigma_re * noise_rng.standard_normal(k1 - k0)
            data[:, 1] = vis.imag + sigma_im * noise_rng.standard_normal(k1 - k0)
            noise = np.empty((k1 - k0, 2))
            noise[:, 0] = sigma_re
            noise[:, 1] = sigma_im
            streams["data"].write(data)
            streams["noise"].write(noise)
            streams["uv"].write(uv)
            if K > config.chunk_size:
                log(f"  {k1:,}/{K:,} visibilities written ({time.perf_counter() - t_start:.1f} s)")
    finally:
        for s in streams.values():
            s.close()
    for part in ("data.fits", "noise_map.fits", "uv_wavelengths.fits"):
        (out / f"{part}.part").replace(out / part)

    from astropy.io import fits

    fits.PrimaryHDU(image).writeto(out / "source_image.fits", overwrite=True)
    seconds = time.perf_counter() - t_start
    meta = {
        "generator": "wtilde_dask.simulate",
        "config": config.to_dict(),
        "n_baselines": config.n_baselines,
        "n_times": config.n_times,
        "max_abs_uv_wavelengths": max_uv,
        "antenna_enu_m": enu.tolist(),
        "seconds": seconds,
        "nufft_seconds": t_nufft,
        "sign_convention": "V_k = sum_i I_i exp(-i 2 pi (x_i u_k + y_i v_k))",
    }
    (out / "simulation.json").write_text(json.dumps(meta, indent=1))
    log(f"simulate: done in {seconds:.1f} s (visibility NUFFT {t_nufft:.1f} s); max |u|,|v| = {max_uv:.3g} wavelengths")
    return out


def simulate_ms(out, config: SimulationConfig | None = None, *, overwrite: bool = False, log=None,
                **params) -> pathlib.Path:
    """Simulate an ALMA-like Measurement Set ``out`` (a ``.ms`` directory); returns its path.

    ``n_spw`` spectral windows of ``n_channels`` channels each (``spw_frequencies_hz``), correlations XX and YY,
    rows (time, baseline) for every window; at least ``n_visibilities`` Stokes I visibilities
    (rows x channels x windows; the last time step is cut to fit). Each correlation is the model visibility (an
    unpolarised source: XX = YY = I) plus Gaussian noise of ``sqrt(2) sigma`` per part, so that Stokes I
    ``(XX + YY) / 2`` has noise ``sigma``; SIGMA = sqrt(2) sigma and WEIGHT = 1 / SIGMA^2 per correlation. A
    fraction ``flag_fraction`` of (row, channel, correlation) cells is flagged at random, and a quarter of that
    fraction of the rows have FLAG_ROW. Written with :class:`wtilde_dask.simulate.ms_writer.MeasurementSetWriter` in
    blocks of about ``chunk_size`` visibilities (memory O(chunk_size)), under ``OUT.partial`` renamed at the end;
    ``OUT/simulation.json`` records every parameter. The UVW are in metres (u = (sin H Bx + cos H By), ...), so a
    reader's ``uv_wavelengths = UVW[:, :2] x f / c`` gives back the formulas of the module docstring.
    """
    log = log or logger.info  # messages go to logging unless a callable is given
    from wtilde_dask.simulate.ms_writer import MeasurementSetWriter

    if config is None:
        config = SimulationConfig(**params)
    elif params:
        config = dataclasses.replace(config, **params)
    out = pathlib.Path(out)
    if out.exists() and not overwrite:
        raise SimulationError(f"{out}: already exists (pass overwrite=True / --overwrite)")
    t_start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    enu = antenna_positions(config.n_antennas, config.max_baseline_m, rng, config.min_antenna_spacing_m)
    baselines = baselines_equatorial(enu, config.latitude_deg)
    ant1, ant2 = np.triu_indices(config.n_antennas, k=1)
    image = None if config.point_source is not None else source_image(config)
    freqs = config.spw_frequencies_hz
    n_spw, n_chan, nb = config.n_spw, config.n_channels, config.n_baselines
    rows_per_spw = -(-config.n_visibilities // (n_spw * n_chan))
    block = max(1, config.chunk_size // n_chan)
    sigma_corr = math.sqrt(2.0) * config.sigma
    sigma_corr_im = math.sqrt(2.0) * (config.sigma if config.sigma_imag is None else config.sigma_imag)
    if config.sigma_imag is not None and config.sigma_imag != config.sigma:
        raise SimulationError("sigma_imag differs from sigma: a Measurement Set has one SIGMA per correlation")
    log(f"simulate: Measurement Set, {n_spw} spw x {n_chan} channels x {rows_per_spw:,} rows "
        f"({config.n_times} times x {nb} baselines) = {n_spw * n_chan * rows_per_spw:,} Stokes I visibilities, "
        f"XX/YY, {config.flag_fraction:.1%} flagged -> {out}")
    t0_mjd_s = 5.0e9  # seconds (MJD ~ 57870), arbitrary
    dt = (config.duration_h * 3600.0) / max(1, config.n_times - 1)
    n_flagged = 0
    writer = MeasurementSetWriter(
        out, chan_freqs=list(freqs), corr_types=["XX", "YY"], field_names=["SIMULATED"],
        antenna_names=[f"DA{i:02d}" for i in range(config.n_antennas)], antenna_positions=enu, overwrite=overwrite,
    )
    try:
        for bi, r0 in enumerate(range(0, rows_per_spw, block)):
            r1 = min(rows_per_spw, r0 + block)
            k = np.arange(r0, r1, dtype=np.int64)
            t_idx, b_idx = k // nb, k % nb
            uvw = uvw_metres(config, baselines, t_idx, b_idx)
            for spw in range(n_spw):
                f = freqs[spw]
                uv = np.empty((r1 - r0, n_chan, 2))
                uv[..., 0] = (uvw[:, 0:1] * f[None, :]) / SPEED_OF_LIGHT
                uv[..., 1] = (uvw[:, 1:2] * f[None, :]) / SPEED_OF_LIGHT
                model = model_visibilities(config, image, uv.reshape(-1, 2)).reshape(r1 - r0, n_chan)
                noise_rng = np.random.default_rng([config.seed, 2 + spw, bi, block])
                shape = (r1 - r0, n_chan, 2)
                data = (model[..., None] + sigma_corr * noise_rng.standard_normal(shape)
                        + 1j * sigma_corr_im * noise_rng.standard_normal(shape))
                flag = noise_rng.uniform(size=shape) < config.flag_fraction
                flag_row = noise_rng.uniform(size=r1 - r0) < config.flag_fraction / 4
                n_flagged += int((flag.any(axis=2) | flag_row[:, None]).sum())
                writer.write_rows(
                    spw, uvw=uvw, data=data, antenna1=ant1[b_idx], antenna2=ant2[b_idx],
                    time=t0_mjd_s + t_idx * dt, flag=flag, flag_row=flag_row,
                    sigma=np.full((r1 - r0, 2), sigma_corr), interval=dt,
                )
            if rows_per_spw > block:
                log(f"  {r1 * n_chan * n_spw:,}/{rows_per_spw * n_chan * n_spw:,} visibilities written "
                    f"({time.perf_counter() - t_start:.1f} s)")
        path = writer.close()
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - t_start
    meta = {
        "generator": "wtilde_dask.simulate.simulate_ms",
        "config": config.to_dict(),
        "n_baselines": nb,
        "n_times": config.n_times,
        "rows_per_spw": rows_per_spw,
        "n_stokes_i_visibilities": rows_per_spw * n_chan * n_spw,
        "n_stokes_i_flagged": n_flagged,
        "spw_frequencies_hz": freqs.tolist(),
        "antenna_enu_m": enu.tolist(),
        "seconds": seconds,
        "sign_convention": "V = sum I exp(-2 pi i (u l + v m)), l East = x, m North = y; uv = UVW[:, :2] f / c",
    }
    (path / "simulation.json").write_text(json.dumps(meta, indent=1))
    log(f"simulate: done in {seconds:.1f} s; {n_flagged:,} Stokes I visibilities flagged")
    return path
