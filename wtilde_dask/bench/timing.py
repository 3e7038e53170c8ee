"""Timing of the benchmarks: every runner called once to warm up (jit compiles, worker imports), then
``repeats`` interleaved rounds (each runner once per round, so a load change hits all of them alike)."""

from __future__ import annotations

import time


def timed(fn):
    """``(seconds, result)`` of one call ``fn()`` (wall clock, ``time.perf_counter``)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def warm_up(runners: dict, log=print, label: str = "warm-up") -> dict:
    """Call each of ``runners`` ({name: fn}) once; print its seconds; return {name: result}."""
    values = {}
    for name, fn in runners.items():
        seconds, values[name] = timed(fn)
        log(f"{label} {name}: {seconds:.3f} s")
    return values


def interleaved_rounds(runners: dict, repeats: int, per: dict | None = None, after_round=None,
                       settle: float = 0.0, steady: bool = False) -> dict:
    """{name: [seconds per call / per[name]]} over ``repeats`` rounds; ``after_round()`` runs after each round.
    ``settle``: seconds of idle (not timed) before each timed call, so that the thread pools the previous call
    left spinning (OpenBLAS's idle threads spin for about 0.1 s after a call) are parked again: every runner
    starts from the same quiet machine. ``steady``: each timed call right after one untimed call of the same
    runner (what a search's back-to-back calls cost: caches and the runner's own threads warm)."""
    times: dict = {}
    for _ in range(int(repeats)):
        for name, fn in runners.items():
            if settle > 0:
                time.sleep(settle)
            if steady:
                fn()
            times.setdefault(name, []).append(timed(fn)[0] / (per or {}).get(name, 1))
        if after_round is not None:
            after_round()
    return times
