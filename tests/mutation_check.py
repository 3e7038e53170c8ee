"""Mutation check: does the suite notice when a known formula is broken?

For each named mutation this script copies the ``wtilde_dask`` package into a temporary folder, applies one
textual change to the copy (the change must match exactly as written, or the mutation is reported as stale),
runs a chosen subset of the tests with ``PYTHONPATH`` pointing at the copy (the working tree is never touched),
and prints one row per mutation: caught (the tests that failed) or MISSED.

    python tests/mutation_check.py                      # every mutation, its default tests
    python tests/mutation_check.py sie-normalisation    # some of them
    python tests/mutation_check.py --list               # names, files and changes
    python tests/mutation_check.py --tests tests/test_lens_reference.py shear-sign   # other tests

Exit status 0 when every mutation run was caught, 1 when one was missed or stale.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "wtilde_dask"

LENS_TESTS = ("tests/test_lens_reference.py", "tests/test_inversion.py::test_lens_deflections")
MS_TESTS = ("tests/test_io_ms.py", "tests/test_io_formats.py")
PHASE_TESTS = ("tests/test_kernels_direct.py", "tests/test_lattice.py")


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # inside the package
    old: str
    new: str
    tests: tuple[str, ...]
    count: int = 1  # how many times ``old`` occurs (all are replaced)


MUTATIONS = (
    Mutation("sie-normalisation", "inversion/lens.py", "b * q / e", "b * np.sqrt(q) / e", LENS_TESTS, count=2),
    Mutation("sie-normalisation-jax", "inversion/jax_lens.py", "b * qs / e", "b * jnp.sqrt(qs) / e", LENS_TESTS,
             count=2),
    Mutation("position-angle-sign", "inversion/lens.py", "phi = np.deg2rad(position_angle)",
             "phi = np.deg2rad(-position_angle)", LENS_TESTS),
    Mutation("position-angle-sign-jax", "inversion/jax_lens.py", "phi = jnp.deg2rad(pa)", "phi = jnp.deg2rad(-pa)",
             LENS_TESTS),
    Mutation("shear-sign", "inversion/lens.py",
             "np.stack([gamma_2 * x - gamma_1 * y, gamma_1 * x + gamma_2 * y], axis=1)",
             "np.stack([gamma_2 * x + gamma_1 * y, -gamma_1 * x + gamma_2 * y], axis=1)", LENS_TESTS),
    Mutation("shear-sign-jax", "inversion/jax_lens.py", "(g1 * x + g2 * y)", "(-g1 * x + g2 * y)", LENS_TESTS),
    Mutation("stokes-i-half", "io/ms.py", "        if cells.halve:\n            vis /= 2\n",
             "        if cells.halve:\n            vis /= 1\n", MS_TESTS),
    Mutation("stokes-i-half-cube", "io/ms.py", "vis = cells.vis_sum / 2 if cells.halve else cells.vis_sum",
             "vis = cells.vis_sum if cells.halve else cells.vis_sum", MS_TESTS),
    Mutation("sigma-of-two-hands", "io/ms.py", "sigma = 0.5 * np.sqrt(per_hand[0] ** 2 + per_hand[1] ** 2)",
             "sigma = 0.5 * (per_hand[0] + per_hand[1])", MS_TESTS),
    Mutation("phase-sign-direct", "kernels/direct.py",
             "return grid[:, 1:2] * uv[None, :, 0] + grid[:, 0:1] * uv[None, :, 1]",
             "return -(grid[:, 1:2] * uv[None, :, 0] + grid[:, 0:1] * uv[None, :, 1])", PHASE_TESTS),
    Mutation("phase-sign-lattice", "kernels/lattice.py", "forward=False", "forward=True", PHASE_TESTS, count=2),
)


def apply(mutation: Mutation, package_copy: pathlib.Path) -> str | None:
    """Apply the change in the copy; None when done, else why not (the text is not there as expected)."""
    path = package_copy / mutation.path
    text = path.read_text()
    n = text.count(mutation.old)
    if n != mutation.count:
        return f"stale: {mutation.path} holds {mutation.old!r} {n} times, expected {mutation.count}"
    path.write_text(text.replace(mutation.old, mutation.new))
    return None


def run_tests(package_parent: pathlib.Path, tests, timeout: float, maxfail: int) -> tuple[int, list[str], str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(package_parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("CI", None)  # a mutated copy may make a test skip; that is counted below, not failed as CI would
    env.setdefault("MPLBACKEND", "Agg")
    # run from the copy's folder: `python -m` puts the working directory first on sys.path
    check = subprocess.run([sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"], env=env,
                           capture_output=True, text=True, cwd=package_parent)
    if not check.stdout.strip().startswith(str(package_parent)):
        raise RuntimeError(f"the copy is not what Python imports: {check.stdout.strip() or check.stderr.strip()}")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
                           f"--rootdir={ROOT}", f"--maxfail={maxfail}", *(str(ROOT / t) for t in tests)], env=env,
                          capture_output=True, text=True, cwd=package_parent, timeout=timeout)
    seconds = time.perf_counter() - t0
    failed = [re.sub(r"^.*?(?=tests/)", "", f) for f in
              re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", proc.stdout, flags=re.M)]
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-200:]
    return proc.returncode, failed, summary, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="mutations to run (default: all)")
    ap.add_argument("--tests", nargs="+", default=None, help="test paths / node ids instead of each mutation's own")
    ap.add_argument("--maxfail", type=int, default=3, help="stop a run after this many failures (default 3)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per run (default 900)")
    ap.add_argument("--list", action="store_true", help="print the mutations and exit")
    args = ap.parse_args(argv)
    by_name = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:24s} {PACKAGE}/{m.path}: {m.old!r} -> {m.new!r}  [{' '.join(m.tests)}]")
        return 0
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        ap.error(f"unknown mutation(s) {', '.join(unknown)}; --list names them")
    chosen = [by_name[n] for n in args.names] if args.names else list(MUTATIONS)

    # the unmutated copy must pass the same tests, or a "caught" would mean nothing
    rows = []
    with tempfile.TemporaryDirectory(prefix="wtilde-mutation-") as tmp:
        tmp = pathlib.Path(tmp)
        baseline_tests = sorted({t for m in chosen for t in (args.tests or m.tests)})
        clean = tmp / "clean"
        shutil.copytree(ROOT / PACKAGE, clean / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
        rc, failed, summary, seconds = run_tests(clean, baseline_tests, args.timeout, args.maxfail)
        print(f"unmutated copy: {summary} ({seconds:.0f} s)", flush=True)
        if rc != 0:
            print(f"the unmutated package fails these tests ({', '.join(failed)}): fix that first")
            return 1
        for m in chosen:
            work = tmp / m.name
            shutil.copytree(ROOT / PACKAGE, work / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
            stale = apply(m, work / PACKAGE)
            if stale:
                rows.append((m.name, "STALE", stale, 0.0))
                print(f"{m.name}: {stale}", flush=True)
                continue
            tests = args.tests or m.tests
            rc, failed, summary, seconds = run_tests(work, tests, args.timeout, args.maxfail)
            verdict = "caught" if rc != 0 and failed else ("MISSED" if rc == 0 else "ERROR")
            detail = ", ".join(failed) if failed else summary
            rows.append((m.name, verdict, detail, seconds))
            print(f"{m.name}: {verdict} ({seconds:.0f} s) {detail}", flush=True)
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"| mutation | change | result | failing tests (first {args.maxfail}) |")
    print("|---|---|---|---|")
    for name, verdict, detail, _ in rows:
        m = by_name[name]
        old, new = (" ".join(t.split()) for t in (m.old, m.new))
        print(f"| {name} | `{PACKAGE}/{m.path}`: `{old}` -> `{new}` | {verdict} | {detail} |")
    return 0 if all(v == "caught" for _, v, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
