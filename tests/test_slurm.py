"""wtilde on a real SLURM (dask-jobqueue worker jobs, TLS, lifetimes, the self-resubmitting orchestrator job).

Needs a SLURM whose jobs run on this machine: tests/run_all.sh starts a single-node one with
tests/slurm/start_slurm.sh (root on Debian/Ubuntu). All traffic stays on 127.0.0.1 (profile
`testnode`: interface lo). Each test uses its own job names so that squeue shows only its jobs.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from waiting import n_done, wait_until
import yaml


def _slurm_answers() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


SLURM_OK = _slurm_answers()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(not SLURM_OK, reason="no working SLURM here (sinfo does not answer); "
                                            "as root on Debian, tests/run_all.sh starts one"),
]

ROOT = pathlib.Path(__file__).parent.parent
PROFILES = ROOT / "deployments" / "slurm" / "jobqueue.yaml"
SBATCH_SCRIPT = ROOT / "deployments" / "slurm" / "wtilde-compute.sbatch"
BIN = pathlib.Path(sys.executable).parent
WTILDE = str(BIN / "wtilde")
RTOL = 1e-12
# small problems, 448 pixels: SMA (K = 190) in blocks of 48 (55 blocks); synthetic data in blocks of 32 or 24
SMA_ARGS = ["sma", "--shape", "30", "30", "--pixel-scale", "0.1", "--mask-radius", "1.2", "--block-size", "48",
            "--method", "direct", "--no-progress"]
SYN_GRID = ["--shape", "24", "24", "--pixel-scale", "0.1", "--mask-radius", "1.2", "--method", "direct",
            "--no-progress", "--no-dirty-image"]


def env():
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e["WTILDE_VENV"] = sys.prefix
    e["PYTHONUNBUFFERED"] = "1"
    # a worker job that ended is forgotten after 3 s instead of 15 s: replacements come sooner
    e["DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT"] = "3s"
    return e


@pytest.fixture
def profile(tmp_path):
    """The `testnode` profile of deployments/slurm/jobqueue.yaml with this test's own job name and dirs."""
    settings = yaml.safe_load(PROFILES.read_text())["jobqueue"]["testnode"]
    job_name = f"wtw-{secrets.token_hex(3)}"
    settings.update({"name": job_name, "log-directory": str(tmp_path / "logs"),
                     "shared-temp-directory": str(tmp_path / "shared")})
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"jobqueue": {"testnode": settings}}))
    return {"arg": f"{path}:testnode", "job_name": job_name, "shared": tmp_path / "shared"}


def synthetic_dataset(n_vis, seed=17):
    from wtilde_dask.dataset import Interferometer

    rng = np.random.default_rng(seed)
    uv = rng.uniform(-4e4, 4e4, size=(n_vis, 2))
    noise = rng.uniform(0.5, 2.0, n_vis) + 1j * rng.uniform(0.5, 2.0, n_vis)
    vis = rng.normal(size=n_vis) + 1j * rng.normal(size=n_vis)
    return Interferometer.from_arrays(vis, noise, uv, name=f"synthetic-slurm-{n_vis}")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A synthetic dataset (K = 20000) heavy enough that a run lasts while jobs are cancelled."""
    ds = synthetic_dataset(20000)
    return ds, ds.to_npz(tmp_path_factory.mktemp("syn") / "syn.npz")


def slow_w_tilde_rows(dataset, grid_radians, rows) -> np.ndarray:
    """``W[rows, :]`` by the defining sum, written out here (no block kernel, no matrix product):
    ``W_ij = sum_k wr_k cos(phi_ik) cos(phi_jk) + wi_k sin(phi_ik) sin(phi_jk)``, ``phi_ik = 2 pi (x_i u_k + y_i v_k)``
    with the grid's (y, x) in radians; one Python loop over the rows, the sum over k vectorised."""
    u, v = dataset.uv_wavelengths[:, 0], dataset.uv_wavelengths[:, 1]
    wr, wi = dataset.weights_real, dataset.weights_imag
    y, x = grid_radians[:, 0], grid_radians[:, 1]
    phi = 2.0 * np.pi * (x[:, None] * u[None, :] + y[:, None] * v[None, :])  # (M, K)
    cos, sin = np.cos(phi), np.sin(phi)
    out = np.empty((len(rows), len(y)))
    for n, i in enumerate(rows):
        out[n] = np.sum(wr * cos[i] * cos + wi * sin[i] * sin, axis=1)
    return out


def assert_store_correct(dataset, path):
    from wtilde_dask.compute import verify_store
    from wtilde_dask.store import WTildeStore

    store = WTildeStore.open(path)
    assert store.is_complete()
    W = store.to_dask().compute()
    np.testing.assert_allclose(W, W.T, rtol=0, atol=1e-14 * np.abs(W).max())
    # 16 rows (every column) against the defining sum, not the block kernel that wrote the store (5e-16 measured)
    g = store.grid().grid_radians
    rows = np.unique(np.random.default_rng(3).choice(len(g), size=min(16, len(g)), replace=False))
    expected = slow_w_tilde_rows(dataset, g, rows)
    assert float(np.max(np.abs(W[rows] - expected)) / np.max(np.abs(expected))) <= RTOL
    assert verify_store(path, sample=1, seed=2, log=lambda *a: None)["ok"]


class Squeue:
    """Polls squeue in a thread: every job (id -> states seen) whose name is ``name``."""

    def __init__(self, name: str, interval: float = 0.5):
        self.name, self.interval = name, interval
        self.jobs: dict[str, set] = {}
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def poll(self) -> dict[str, str]:
        out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T"], capture_output=True, text=True, timeout=15).stdout
        now = {}
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3 and parts[1] == self.name:
                now[parts[0]] = parts[2]
                self.jobs.setdefault(parts[0], set()).add(parts[2])
                self.first_seen.setdefault(parts[0], time.monotonic())
        return now

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - keep polling
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


class Run:
    """`wtilde ...` as a subprocess with its output collected line by line."""

    def __init__(self, args, log_path):
        self.lines: list[str] = []
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([WTILDE, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env(), start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            self.log.write(line)
            self.log.flush()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                m = re.search(pattern, self.text())
                if m:
                    return m
                raise AssertionError(f"wtilde exited ({self.proc.returncode}) before {pattern!r}:\n{self.text()}")
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.text()}")

    def finish(self, timeout=420) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            raise AssertionError(f"wtilde did not finish within {timeout} s:\n{self.text()}")
        self._reader.join(timeout=10)
        self.log.close()
        return rc




# ---------------------------------------------------------------------------------------------------


def test_compute_on_slurm_equals_local_with_tls_and_private_dashboard(tmp_path, profile):
    """`wtilde compute --cluster slurm --jobs 2` on the SMA data: the store equals the LocalCluster
    one bit for bit; squeue shows the 2 worker jobs; the scheduler speaks TLS only with the run's
    credentials (kept user-only, removed at the end); every listening socket of the orchestrator,
    the dashboard's included, is bound to 127.0.0.1."""
    import psutil
    from distributed.security import Security
    from test_security import try_client

    from wtilde_dask.store import open_w_tilde, WTildeStore

    local = Run(["compute", *SMA_ARGS, "--out", tmp_path / "local.zarr", "--workers", "1",
                 "--threads-per-worker", "1"], tmp_path / "local.log")
    assert local.finish() == 0, local.text()

    with Squeue(profile["job_name"]) as sq:
        run = Run(["compute", *SMA_ARGS, "--out", tmp_path / "slurm.zarr", "--cluster", "slurm",
                   "--profile", profile["arg"], "--jobs", "2"], tmp_path / "slurm.log")
        address = run.wait_for(r"slurm: scheduler (tls://[0-9.]+:\d+)").group(1)
        port = int(run.wait_for(r"dashboard: http://127\.0\.0\.1:(\d+)/").group(1))
        assert address.startswith("tls://127.0.0.1:")

        # clients without the run's credentials are refused
        assert run.proc.poll() is None, "the run ended before the TLS checks"
        with pytest.raises(TypeError, match="ssl_context"):
            try_client(address)
        with pytest.raises(OSError, match="certificate"):
            try_client(address, Security.temporary())
        with pytest.raises(OSError):
            try_client(address.replace("tls://", "tcp://"))

        # listening sockets of the orchestrator process: scheduler + dashboard, loopback only
        listening = [c.laddr for c in psutil.Process(run.proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert port in [a.port for a in listening], listening
        assert {a.ip for a in listening} == {"127.0.0.1"}, listening

        # the run's credentials: a 0700 directory of 0600 files in the profile's shared directory
        tls_dirs = list(profile["shared"].glob("wtilde-tls-*"))
        assert len(tls_dirs) == 1
        assert stat.S_IMODE(tls_dirs[0].stat().st_mode) == 0o700
        for f in tls_dirs[0].iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f

        rc = run.finish()
    assert rc == 0, run.text()
    assert not list(profile["shared"].glob("wtilde-tls-*")), "TLS credentials left behind"

    # squeue showed the two worker jobs, running
    assert len(sq.jobs) >= 2, sq.jobs
    assert sum("RUNNING" in states for states in sq.jobs.values()) >= 2, sq.jobs

    a = open_w_tilde(tmp_path / "local.zarr").values
    b = open_w_tilde(tmp_path / "slurm.zarr").values
    assert a.shape == b.shape and np.array_equal(a, b)
    sa, sb = WTildeStore.open(tmp_path / "local.zarr"), WTildeStore.open(tmp_path / "slurm.zarr")
    assert np.array_equal(sa.read_array("dirty_image"), sb.read_array("dirty_image"))


def test_cancelled_worker_jobs_are_replaced(tmp_path, profile, synthetic):
    """Adaptive mode (1..2 jobs): the running worker jobs are scancel'led mid-run; the run can only
    finish on replacement jobs, and it does, with every block correct."""
    dataset, npz = synthetic
    out = tmp_path / "w.zarr"
    with Squeue(profile["job_name"]) as sq:
        run = Run(["compute", npz, *SYN_GRID, "--block-size", "32", "--out", out, "--cluster", "slurm",
                   "--profile", profile["arg"], "--adapt", "1", "2"], tmp_path / "run.log")
        wait_until(lambda: n_done(out) >= 1, 240, "a first block")
        victims = [j for j, s in sq.poll().items() if s == "RUNNING"]
        assert victims, sq.jobs
        before = set(sq.jobs)
        subprocess.run(["scancel", *victims], check=True, timeout=30)
        done_at_cancel = n_done(out)
        rc = run.finish()
    assert rc == 0, run.text()
    assert done_at_cancel < 105, "the run finished before the cancel"
    assert set(sq.jobs) - before, f"no new worker job after scancel {victims}: {sq.jobs}"
    assert_store_correct(dataset, out)


def test_worker_lifetime_retires_and_replaces(tmp_path, profile):
    """Workers with a 25 s lifetime (shorter than the run) retire and are replaced; no block is lost.

    The run must outlast the lifetime whatever the machine's speed: if it finished before a worker
    retired, it is repeated on a dataset 4x heavier (block time is proportional to K)."""
    for n_vis in (40000, 160000, 640000):
        dataset = synthetic_dataset(n_vis)
        npz = dataset.to_npz(tmp_path / f"syn{n_vis}.npz")
        out = tmp_path / f"w{n_vis}.zarr"
        with Squeue(profile["job_name"]) as sq:
            run = Run(["compute", npz, *SYN_GRID, "--block-size", "24", "--out", out, "--cluster", "slurm",
                       "--profile", profile["arg"], "--jobs", "2", "--lifetime", "25s"], tmp_path / f"run{n_vis}.log")
            rc = run.finish(timeout=540)
        assert rc == 0, run.text()
        if "submitting replacement" in run.text():
            break
    text = run.text()
    assert "worker lifetime 25s" in text
    assert "submitting replacement" in text, text
    assert len(sq.jobs) > 2, f"no worker job was replaced: {sq.jobs}"
    assert "0 skipped" in text
    assert_store_correct(dataset, out)


def test_broken_worker_job_script_stops_the_run(tmp_path, profile):
    """Worker jobs that die before their worker connects (here: a prologue that exits) are
    resubmitted a few times, then the run stops with an error naming the job logs, instead of
    waiting forever."""
    text = pathlib.Path(profile["arg"].rsplit(":", 1)[0])
    settings = yaml.safe_load(text.read_text())
    settings["jobqueue"]["testnode"]["job-script-prologue"] = ["echo 'broken environment' >&2; exit 3"]
    text.write_text(yaml.safe_dump(settings))
    e = env()
    e["WTILDE_SQUEUE_INTERVAL"] = "2"
    out = subprocess.run([WTILDE, "compute", *SMA_ARGS, "--out", tmp_path / "w.zarr", "--cluster", "slurm",
                          "--profile", profile["arg"], "--jobs", "2"],
                         capture_output=True, text=True, env=e, timeout=300)
    assert out.returncode != 0
    assert "worker jobs in a row ended before their worker connected" in out.stdout, out.stdout + out.stderr
    assert "logs" in out.stdout
    logs = list((tmp_path / "logs").glob("*.err"))
    assert logs and any("broken environment" in f.read_text() for f in logs)
    assert not list(profile["shared"].glob("wtilde-tls-*")), "TLS credentials left behind"


def _sbatch(args, job_name, log, cwd):
    out = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={job_name}", f"--output={log}", "--open-mode=append",
         "--time=00:20:00", "--mem=1G", "--cpus-per-task=1", str(SBATCH_SCRIPT), *map(str, args)],
        capture_output=True, text=True, env=env(), cwd=cwd, timeout=30, check=True)
    return out.stdout.strip().split(";")[0]


def _job_state(job_id):
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=15)
    return out.stdout.strip() or None


def kill_job_processes(job_id, store):
    """SIGKILL every process of a job (batch shell and `wtilde compute`), as a node failure would:
    nothing gets to clean up. (`scancel --signal=KILL` is a plain cancel for SLURM: TERM first.)
    proctrack/linuxproc can miss a process of the job in `scontrol listpids`, so the processes that
    run `wtilde compute` on this job's store are killed too, children first."""
    import psutil

    out = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True, timeout=15).stdout
    pids = [int(line.split()[0]) for line in out.splitlines()[1:] if line.split() and line.split()[0].isdigit()]
    assert pids, out
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "compute" in cmdline and str(store) in cmdline:
            try:
                pids += [child.pid for child in proc.children(recursive=True)] + [proc.pid]
            except psutil.NoSuchProcess:
                pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def test_orchestrator_job_resubmits_itself_and_resumes_after_kill(tmp_path, profile, synthetic):
    """The orchestrator as a SLURM job (deployments/slurm/wtilde-compute.sbatch):
    1. its walltime warning (USR1, as --signal=B:USR1@300 sends it) stops the run and the job
       resubmits itself; the new job resumes from the ledger;
    2. that job killed outright (SIGKILL to its processes) mid-run, then submitted again by hand:
       it resumes (the dead run's lock is stale) and finishes; every block is correct."""
    dataset, npz = synthetic
    out = tmp_path / "w.zarr"
    log = tmp_path / "orchestrator.log"
    name = f"wtc-{secrets.token_hex(3)}"
    args = [npz, "--out", out, *SYN_GRID, "--block-size", "32", "--cluster", "slurm", "--profile", profile["arg"],
            "--jobs", "1"]
    with Squeue(name) as sq:
        first = _sbatch(args, name, log, tmp_path)
        wait_until(lambda: n_done(out) >= 1, 240, "a first block")
        subprocess.run(["scancel", "--signal=USR1", "--batch", first], check=True, timeout=30)
        second = wait_until(lambda: [j for j in sq.poll() if j != first], 120, "the resubmitted job")[0]
        wait_until(lambda: _job_state(first) is None, 120, "the first job to end")
        done_1 = n_done(out)
        assert 1 <= done_1 < 105
        wait_until(lambda: _job_state(second) == "RUNNING" and n_done(out) > done_1, 240,
                   "progress in the resubmitted job")
        kill_job_processes(second, out)
        wait_until(lambda: _job_state(second) is None, 120, "the killed job to end")
        done_2 = n_done(out)
        assert done_1 < done_2 < 105, (done_1, done_2)
        third = _sbatch(args, name, log, tmp_path)
        wait_until(lambda: _job_state(third) is None, 420, "the third job to finish", interval=1)
    text = log.read_text()
    assert f"resubmitted as job {second}" in text, text
    assert re.search(rf"\b{done_1} already done \(skipped\)", text), text   # part 2 resumed
    assert f"{done_2} already done (skipped)" in text[text.index(f"job {third} part"):], text  # part 3 resumed
    assert "store complete" in text, text
    assert len(set(sq.jobs) - {first, second, third}) == 0, sq.jobs
    assert_store_correct(dataset, out)
