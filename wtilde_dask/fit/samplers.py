"""The two searches of a lens-model fit: Nautilus (posterior and evidence) and NUTS (posterior only).

**Nautilus** (``nautilus.Sampler``, vectorized): the prior is the model's unit-cube transform, the likelihood a
callable that sends each batch of ``n_batch`` points to the Dask workers (:class:`~wtilde_dask.fit.evaluate.
DaskLikelihood`). Nautilus writes its whole state (points, log likelihoods, bounds, shell statistics and the
PCG64 state of its random generator) to an HDF5 file, rewritten in place (not kill-safe), and rewrites it whole
after every new bound. So Nautilus reads a copy in ``work/`` when it resumes, writes it once per slice
(``Sampler.write``, the same complete state) and runs in slices (``run(n_like_max=..., timeout=...)``:
at most ``slice_batches`` batches and ``slice_seconds`` seconds); after each slice the working file is copied
into the fit's ``checkpoint/`` atomically. On resume the committed checkpoint is copied back to the working file
and ``Sampler(..., resume=True)`` reads it: since the random state is in the file and a point's log likelihood
does not depend on the batch split, a resumed run draws the same points as an uninterrupted one and ends with
the same evidence, bit for bit. Nautilus' own work between batches (training its neural-network bounds, sampling
them) runs on the same Dask workers, idle meanwhile (``pool=(None, DaskSamplerPool)``), split into a number of
random streams fixed at the fit's start.

The evidence error is the importance-sampling estimate ``1 / sqrt(n_eff)`` (relative error of Z, n_eff the
effective sample size of the weighted posterior).

**NUTS** (blackjax's NUTS kernel; a Stan-like warm-up: dual-averaged step size, diagonal mass matrix from the
warm-up draws, run with the sampling kernel so that one function is compiled): runs in the orchestrator on ``jax.grad`` of the log
posterior. It samples ``z`` in R^n with ``u = sigmoid(z)`` in the unit cube and ``x = prior_transform(u)``:
there the posterior density is ``L(x(u)) prod u (1 - u)`` (the prior is uniform in u), smooth and unbounded.
``L`` is :func:`~wtilde_dask.inversion.jax_likelihood.log_evidence` at ``likelihood_inputs(x)`` with the
rectangular mesh's fixed regularization. Checkpoint (``nuts.npz``): the adapted step size and inverse mass
matrix, the chains' positions, the PRNG key and the draws so far, after every ``checkpoint_draws`` (50) draws (a kill during warm-up
repeats the warm-up). ``n_chains`` chains start near the prior median and step together (vmap), warm-up included.
NUTS gives no evidence: its ``log_evidence`` is None.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from wtilde_dask.fit.evaluate import REJECTED_LOG_LIKELIHOOD

log = logging.getLogger(__name__)

SAMPLERS = ("nautilus", "nuts")


@dataclass
class SearchOutcome:
    """What a search returns: posterior draws (n, n_free) physical, weights (n,) summing to 1, log likelihoods
    (n,), log evidence and error (None for NUTS), the likelihood evaluations in all and whether it finished."""

    samples: np.ndarray
    weights: np.ndarray
    log_likelihood: np.ndarray
    log_evidence: float | None
    log_evidence_error: float | None
    n_evaluations: int
    finished: bool = True


def sampler_settings(sampler: dict, n_workers: int) -> dict:
    """The settings a run records and resumes with: the model's sampler settings (every default filled in by
    the model), a drawn seed where the model leaves it None (so that a resumed run continues the same stream),
    and for Nautilus ``chunk_size``, the points per Dask task, ``ceil(n_batch / n_workers)``, and ``pool_size``, the
    random streams its bound sampling is split into on the workers (:class:`~wtilde_dask.fit.evaluate.DaskSamplerPool`)."""
    out = dict(sampler)
    name = out.get("name")
    if name not in SAMPLERS:
        raise ValueError(f"sampler.name: unknown {name!r}, expected one of {', '.join(SAMPLERS)}")
    if out.get("seed") is None:
        out["seed"] = int(np.random.SeedSequence().entropy % (2**31))
    if name == "nautilus":
        out["chunk_size"] = int(math.ceil(int(out["n_batch"]) / max(1, int(n_workers))))
        out["pool_size"] = max(1, int(n_workers))
    return out


# ---------------------------------------------------------------------------------------------------
# Nautilus
# ---------------------------------------------------------------------------------------------------
class NautilusSearch:
    """Nautilus in slices with an atomically committed checkpoint (module doc).

    ``model``: the FitModel; ``likelihood``: ``(params (N, 7), coefficients (N,)) -> (N,)``; ``record``: the
    :class:`~wtilde_dask.store.fit.FitRecord`; ``settings``: :func:`sampler_settings`; ``report(**progress)``
    is called after every batch (n_evaluations, best point) and every slice (also log_evidence); ``pool``: where
    Nautilus trains its networks and samples its bounds (:class:`~wtilde_dask.fit.evaluate.DaskSamplerPool`;
    None: in this process, as a fit recorded without ``pool_size`` always does).
    """

    FILE = "nautilus.h5"

    def __init__(self, model, likelihood, record, settings: dict, *, report=None, slice_batches: int = 5,
                 slice_seconds: float = 60.0, pool=None):
        self.model = model
        self.pool = pool
        self.likelihood = likelihood
        self.record = record
        self.settings = settings
        self.report = report or (lambda **kw: None)
        self.slice_batches = max(1, int(slice_batches))
        self.slice_seconds = float(slice_seconds)
        self.sampler = None
        self.best_log_l = -np.inf
        self.best_x = None
        self._t0 = time.perf_counter()
        self._n0 = 0

    def _log_likelihood(self, x):
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        params, coefficients = self.model.likelihood_inputs(x)
        log_l = self.likelihood(np.asarray(params, dtype=np.float64), np.asarray(coefficients, dtype=np.float64))
        i = int(np.argmax(log_l))
        if log_l[i] > self.best_log_l:
            self.best_log_l, self.best_x = float(log_l[i]), x[i].copy()
        n = int(self.sampler.n_like) + len(x) if self.sampler is not None else len(x)
        self.report(**self._batch_progress(n))
        return log_l

    def _batch_progress(self, n: int) -> dict:
        dt = time.perf_counter() - self._t0
        return {"n_evaluations": n, "evaluations_per_second": (n - self._n0) / dt if dt > 0 else None,
                "max_log_likelihood": None if self.best_x is None else self.best_log_l,
                "best": None if self.best_x is None else dict(zip(self.model.free_names, map(float, self.best_x)))}

    def _recover_best(self) -> None:
        """The best point so far from a resumed sampler's stored points."""
        s = self.sampler
        log_l = [np.asarray(v) for v in s.log_l] + [np.asarray(s.log_l_t)]
        points = [np.asarray(v) for v in s.points] + [np.asarray(s.points_t)]
        log_l = np.concatenate([v for v in log_l if v.size] or [np.zeros(0)])
        if log_l.size and np.isfinite(log_l).any():
            points = np.concatenate([p for p in points if p.size])
            i = int(np.argmax(log_l))
            self.best_log_l = float(log_l[i])
            self.best_x = np.asarray(self.model.prior_transform(points[i:i + 1]), dtype=np.float64)[0]

    def log_evidence_error(self) -> float | None:
        n_eff = float(self.sampler.n_eff) if self.sampler is not None else 0.0
        return 1.0 / math.sqrt(n_eff) if n_eff > 0 else None

    def run(self) -> SearchOutcome:
        from nautilus import Sampler

        st = self.settings
        work = self.record.restore_checkpoint(self.FILE) or self.record.working_path(self.FILE)

        def prior(u):
            return np.asarray(self.model.prior_transform(np.atleast_2d(u)), dtype=np.float64)

        optional = {k: st[k] for k in ("n_update", "n_like_new_bound", "n_points_min") if st.get(k) is not None}
        self.sampler = Sampler(prior, self._log_likelihood, n_dim=self.model.n_free, n_live=int(st["n_live"]),
                               n_batch=int(st["n_batch"]), n_networks=int(st["n_networks"]),
                               enlarge_per_dim=float(st.get("enlarge_per_dim", 1.1)),
                               split_threshold=float(st.get("split_threshold", 100)), vectorized=True,
                               pass_dict=False, seed=int(st["seed"]), filepath=str(work), resume=True,
                               pool=(None, self.pool), **optional)
        s = self.sampler
        s.filepath = None  # read on resume above; written once per slice below, not rewritten after every bound
        self._n0, self._t0 = int(s.n_like), time.perf_counter()
        if s.n_like:
            self._recover_best()
            log.info("nautilus: resumed at %d evaluations", s.n_like)
        cap = st.get("n_like_max")
        finished = False
        n_slices = int(self.record.progress().get("n_slices") or 0)
        while True:
            target = int(s.n_like) + self.slice_batches * int(st["n_batch"])
            if cap:
                target = min(target, int(cap))
            finished = s.run(f_live=float(st["f_live"]), n_shell=int(st.get("n_shell", 1)), n_eff=int(st["n_eff"]),
                             n_like_max=target,
                             timeout=self.slice_seconds, discard_exploration=bool(st["discard_exploration"]))
            if s.n_like:
                s.write(str(work), overwrite=True)  # the whole state, as Nautilus' own checkpoint
                self.record.commit_checkpoint(work, self.FILE)
            n_slices += 1
            log_z = float(s.log_z) if s.n_like and np.isfinite(s.log_z) else None
            self.report(**self._batch_progress(int(s.n_like)), log_evidence=log_z,
                        log_evidence_error=self.log_evidence_error(), n_slices=n_slices)
            log.info("nautilus: slice %d: %d evaluations, log Z = %s, n_eff = %.0f%s", n_slices, s.n_like,
                     "n/a" if log_z is None else f"{log_z:.3f}", float(s.n_eff) if s.n_like else 0.0,
                     " (done)" if finished else "")
            if finished or (cap and s.n_like >= int(cap)):
                break
        if not finished:
            log.warning("nautilus: stopped at n_like_max = %s evaluations before its stopping criterion", cap)
        points, log_w, log_l = s.posterior()
        w = np.exp(log_w - np.max(log_w))
        return SearchOutcome(np.asarray(points, dtype=np.float64), w / w.sum(), np.asarray(log_l, dtype=np.float64),
                             float(s.log_z), self.log_evidence_error(), int(s.n_like), finished)


# ---------------------------------------------------------------------------------------------------
# NUTS
# ---------------------------------------------------------------------------------------------------
def nuts_log_likelihood_fn(model, likelihood):
    """``f(x) -> log L`` for one point ``x`` (n_free,), jnp-traceable: a rectangular mesh's log evidence at
    ``model.likelihood_inputs(x)`` (``likelihood``: a :class:`JaxLikelihood` built in this process)."""
    import jax.numpy as jnp

    from wtilde_dask.inversion import jax_likelihood as jl

    log_evidence = jl.log_evidence
    lattice_meshes = getattr(jl, "LATTICE_MESHES", ("rectangular",))
    if likelihood.config.mesh not in lattice_meshes:
        raise ValueError(f"sampler.name 'nuts': needs a rectangular source.mesh ({', '.join(lattice_meshes)}: its "
                         f"neighbours do not change with the lens), got {likelihood.config.mesh!r}")
    arrays, config, fixed = likelihood.arrays, likelihood.config, likelihood.topology(None)

    def log_l(x):
        params, coefficient = model.likelihood_inputs(x[None, :])
        value = log_evidence(params[0], arrays, config, coefficient[0], fixed)
        return jnp.where(jnp.isfinite(value), value, -jnp.inf)

    return log_l


class NutsSearch:
    """NUTS (blackjax) on the log posterior in logit unit-cube coordinates (module doc)."""

    FILE = "nuts.npz"

    def __init__(self, model, jax_likelihood, record, settings: dict, *, report=None):
        self.model = model
        self.jax_likelihood = jax_likelihood
        self.record = record
        self.settings = settings
        self.report = report or (lambda **kw: None)

    def _functions(self):
        import jax
        import jax.numpy as jnp

        log_l = nuts_log_likelihood_fn(self.model, self.jax_likelihood)
        model = self.model

        def to_x(z):
            u = jax.nn.sigmoid(z)
            return model.prior_transform(u[None, :])[0]

        def logdensity(z):
            # density in z: L(x(u)) du/dz, du/dz = u (1 - u) = sigmoid(z) sigmoid(-z)
            log_jac = jnp.sum(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z))
            return log_l(to_x(z)) + log_jac

        return logdensity, jax.jit(jax.vmap(to_x)), jax.jit(jax.vmap(lambda z: log_l(to_x(z))))

    def _warmup(self, step, states, key, n_chains):
        """Stan-like warm-up with the sampling kernel itself (one compiled function for both): dual averaging
        of the step size throughout; the first 15% of the steps with a unit mass matrix, the next 70% collect
        positions whose (regularised) variance becomes the diagonal inverse mass matrix, the step size
        averaging restarts for the last 15%. Returns (states, key, step_size, inverse_mass_matrix, evaluations)."""
        import jax
        import jax.numpy as jnp
        from blackjax.adaptation.step_size import dual_averaging_adaptation

        st = self.settings
        n_steps = int(st["num_warmup"])
        da_init, da_update, da_final = dual_averaging_adaptation(float(st["target_acceptance_rate"]))
        da = da_init(float(st["step_size"]))
        inv_mass = jnp.ones(self.model.n_free, dtype=jnp.float64)
        n1 = max(1, int(0.15 * n_steps))
        n2 = max(1, n_steps - 2 * n1)
        collected, n_eval = [], 0
        for i in range(n_steps):
            key, k = jax.random.split(key)
            states, info = step(jax.random.split(k, n_chains), states, jnp.exp(da.log_step_size).astype(jnp.float64),
                                inv_mass)
            n_eval += int(np.sum(np.asarray(info.num_integration_steps)))
            da = da_update(da, jnp.mean(info.acceptance_rate))
            if n1 <= i < n1 + n2:
                collected.append(np.asarray(states.position))
            if i == n1 + n2 - 1 and collected:
                z = np.concatenate(collected)
                n = len(z)
                var = np.var(z, axis=0) if n > 1 else np.ones(self.model.n_free)
                inv_mass = jnp.asarray(n / (n + 5.0) * var + 1e-3 * 5.0 / (n + 5.0), dtype=jnp.float64)
                da = da_init(float(da_final(da)))
        return states, key, float(da_final(da)), inv_mass, n_eval

    def run(self) -> SearchOutcome:
        import blackjax
        import jax
        import jax.numpy as jnp

        st = self.settings
        n_chains, n_samples = int(st.get("n_chains", 1)), int(st["num_samples"])
        chunk = max(1, int(st.get("checkpoint_draws", 50)))
        logdensity, to_x, log_l_many = self._functions()
        kernel = blackjax.nuts.build_kernel()
        max_doublings = int(st["max_num_doublings"])

        def one_step(key, state, step_size, inv_mass):
            return kernel(key, state, logdensity, step_size, inv_mass, max_num_doublings=max_doublings)

        step = jax.jit(jax.vmap(one_step, in_axes=(0, 0, None, None)))
        init = jax.jit(jax.vmap(lambda z: blackjax.nuts.init(z, logdensity)))
        work = self.record.working_path(self.FILE)
        restored = self.record.restore_checkpoint(self.FILE)
        n_free = self.model.n_free
        if restored is not None:
            with np.load(restored) as ck:
                positions = jnp.asarray(ck["positions"])
                step_size = float(ck["step_size"])
                inv_mass = jnp.asarray(ck["inverse_mass_matrix"])
                key = jnp.asarray(ck["key"], dtype=jnp.uint32)
                draws = np.asarray(ck["draws"])
                n_eval = int(ck["n_evaluations"])
            states = init(positions)
            log.info("nuts: resumed after warm-up with %d draws per chain", draws.shape[1])
        else:
            key = jax.random.PRNGKey(int(st["seed"]))
            key, init_key = jax.random.split(key)
            # chains start near the prior median (z = 0), a tenth of a logit unit apart
            positions = 0.1 * jax.random.normal(init_key, (n_chains, n_free)) * (n_chains > 1)
            states, key, step_size, inv_mass, n_eval = self._warmup(step, init(positions), key, n_chains)
            draws = np.zeros((n_chains, 0, n_free))
            log.info("nuts: warm-up done (%d steps, step size %.3g, %d gradient evaluations)", int(st["num_warmup"]),
                     step_size, n_eval)
        t0, n0 = time.perf_counter(), n_eval

        def save():
            np.savez(work, positions=np.asarray(states.position), step_size=step_size,
                     inverse_mass_matrix=np.asarray(inv_mass), key=np.asarray(key), draws=draws, n_evaluations=n_eval)
            self.record.commit_checkpoint(work, self.FILE)

        if restored is None:
            save()
        while draws.shape[1] < n_samples:
            m = min(chunk, n_samples - draws.shape[1])
            block = np.empty((n_chains, m, n_free))
            for i in range(m):
                key, k = jax.random.split(key)
                states, info = step(jax.random.split(k, n_chains), states, jnp.asarray(step_size, jnp.float64), inv_mass)
                block[:, i] = np.asarray(states.position)
                n_eval += int(np.sum(np.asarray(info.num_integration_steps)))
            draws = np.concatenate([draws, block], axis=1)
            save()
            dt = time.perf_counter() - t0
            self.report(n_evaluations=n_eval, evaluations_per_second=(n_eval - n0) / dt if dt > 0 else None,
                        n_slices=int(draws.shape[1]))
            log.info("nuts: %d / %d draws per chain (%d chains), %d gradient evaluations", draws.shape[1], n_samples,
                     n_chains, n_eval)
        z = jnp.asarray(draws.reshape(-1, n_free))
        x = np.asarray(to_x(z), dtype=np.float64)
        log_l = np.asarray(log_l_many(z), dtype=np.float64)
        log_l = np.where(np.isfinite(log_l), log_l, REJECTED_LOG_LIKELIHOOD)
        return SearchOutcome(x, np.full(len(x), 1.0 / len(x)), log_l, None, None, n_eval, True)
