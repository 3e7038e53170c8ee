"""``python -m wtilde_dask.bench.ms_read``: reading a Measurement Set in chunks, measured in one run.

Rows of the table (best of ``--repeat`` runs, wall and CPU seconds, visibilities per second, ratio to the plain
read):

* ``plain casacore getcol`` -- python-casacore ``getcol`` of UVW, DATA, FLAG, FLAG_ROW, SIGMA in blocks of rows,
  nothing else: the floor any reader of those columns pays;
* ``dask-ms xds_from_ms`` -- the same columns through dask-ms (``xds_from_ms(..., group_cols=[DATA_DESC_ID],
  chunks={"row": N})``, computed with dask's synchronous scheduler), when dask-ms is importable;
* ``MeasurementSetSource order=rows`` / ``order=recipe`` -- our reader, everything included (Stokes I, uv in
  wavelengths, flags, noise), one chunk after the other.

The Measurement Set is generated with :mod:`wtilde_dask.simulate.ms_writer` (``--rows`` per spectral window,
``--channels``, ``--spw``, XX/YY, 5% flags) under ``--dir`` (default a temporary folder), or given with ``--ms``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

from wtilde_dask.constants import DEFAULT_CHUNK_SIZE


def make_ms(path, rows: int, channels: int, spw: int, seed: int = 0):
    from wtilde_dask.simulate.ms_writer import MeasurementSetWriter

    rng = np.random.default_rng(seed)
    freqs = [np.linspace(230e9 + 2e9 * s, 231e9 + 2e9 * s, channels) for s in range(spw)]
    with MeasurementSetWriter(path, chan_freqs=freqs, corr_types=["XX", "YY"], overwrite=True) as w:
        for s in range(spw):
            for r in range(0, rows, 20_000):
                n = min(20_000, rows - r)
                data = (rng.normal(size=(n, channels, 2)) + 1j * rng.normal(size=(n, channels, 2))).astype(np.complex64)
                w.write_rows(s, uvw=rng.uniform(-1e3, 1e3, (n, 3)), data=data, sigma=np.full((n, 2), 2.0),
                             flag=rng.random((n, channels, 2)) < 0.05)
    return pathlib.Path(path)


def plain_read(path, rows_per_block: int) -> int:
    from casacore import tables

    n_vis = 0
    with tables.table(str(path), ack=False, lockoptions="autonoread") as ms:
        ddid = ms.getcol("DATA_DESC_ID")
        for d in np.unique(ddid):  # rows of one window are contiguous in the generated set
            rows = np.flatnonzero(ddid == d)
            for start in range(int(rows[0]), int(rows[-1]) + 1, rows_per_block):
                n = min(rows_per_block, int(rows[-1]) + 1 - start)
                for column in ("UVW", "FLAG", "FLAG_ROW", "SIGMA"):
                    ms.getcol(column, start, n)
                n_vis += ms.getcol("DATA", start, n).shape[1] * n
    return n_vis


def daskms_read(path, rows_per_block: int) -> int:
    import dask
    from daskms import xds_from_ms

    n_vis = 0
    datasets = xds_from_ms(str(path), columns=["UVW", "DATA", "FLAG", "FLAG_ROW", "SIGMA"],
                           group_cols=["DATA_DESC_ID"], chunks={"row": rows_per_block})
    for ds in datasets:
        dask.compute(ds.UVW.data.sum(), ds.DATA.data.sum(), ds.FLAG.data.sum(), ds.FLAG_ROW.data.sum(),
                     ds.SIGMA.data.sum(), scheduler="synchronous")
        n_vis += ds.sizes["row"] * ds.sizes["chan"]
    return n_vis


def reader_read(path, chunk_size: int, order: str) -> int:
    from wtilde_dask.io.ms import MeasurementSetSource

    source = MeasurementSetSource(path, chunk_size=chunk_size, order=order)
    return sum(c.n_visibilities + c.n_flagged + c.n_bad_weight for c in source)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m wtilde_dask.bench.ms_read", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ms", type=pathlib.Path, default=None, help="an existing Measurement Set (else one is generated)")
    p.add_argument("--dir", type=pathlib.Path, default=None, help="where to generate it (default: a temporary folder)")
    p.add_argument("--rows", type=int, default=100_000, help="rows per spectral window")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--spw", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="visibilities per chunk (rows x channels)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = args.ms or make_ms(pathlib.Path(tmp) / "bench.ms", args.rows, args.channels, args.spw)
        from wtilde_dask.io.ms import MeasurementSetSource

        n_chan = int(MeasurementSetSource(path, check_usable=False).windows[0]["channels"].size)
        rows_per_block = max(1, args.chunk_size // n_chan)
        methods = {
            "plain casacore getcol": lambda: plain_read(path, rows_per_block),
            "dask-ms xds_from_ms": lambda: daskms_read(path, rows_per_block),
            "MeasurementSetSource order=rows": lambda: reader_read(path, args.chunk_size, "rows"),
            "MeasurementSetSource order=recipe": lambda: reader_read(path, args.chunk_size, "recipe"),
        }
        try:
            import daskms  # noqa: F401
        except ImportError:
            print("dask-ms: not installed (pip install dask-ms to measure it)")
            methods.pop("dask-ms xds_from_ms")
        best = {name: (np.inf, np.inf, 0) for name in methods}
        for _ in range(args.repeat):  # interleaved, so a busy machine hurts every method alike
            for name, fn in methods.items():
                t0, c0 = time.perf_counter(), time.process_time()
                n = fn()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu), n)
        print(f"Measurement Set {path}: chunk {args.chunk_size} visibilities ({rows_per_block} rows x {n_chan} "
              f"channels), best of {args.repeat}")
        print(f"{'method':36s} {'visibilities':>13s} {'wall s':>8s} {'cpu s':>8s} {'vis/s':>10s} {'plain/this':>10s}")
        base = best["plain casacore getcol"][0]
        for name, (wall, cpu, n) in best.items():
            print(f"{name:36s} {n:13d} {wall:8.3f} {cpu:8.3f} {n / wall:10.3g} {base / wall:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
