"""SLURM profiles -> SLURMCluster arguments and worker job scripts (no SLURM needed)."""

from __future__ import annotations

import pathlib

import pytest

from wtilde_dask.slurm import ProfileError, cluster_kwargs, load_profile, parse_walltime, worker_lifetime

PROFILES = pathlib.Path(__file__).parent.parent / "deployments" / "slurm" / "jobqueue.yaml"


def job_script(kw):
    from dask_jobqueue.slurm import SLURMJob

    job_kw = {k: v for k, v in kw.items() if k not in ("scheduler_options", "shared_temp_directory")}
    return SLURMJob("tls://10.0.0.1:8786", name="w-0", **job_kw).job_script()


@pytest.mark.parametrize("text,seconds", [("30", 1800), ("05:30", 330), ("01:00:00", 3600),
                                          ("2-00", 172800), ("1-02:03", 93780), ("1-00:00:10", 86410)])
def test_parse_walltime(text, seconds):
    assert parse_walltime(text) == seconds


def test_bad_walltime_named():
    with pytest.raises(ProfileError, match="walltime: 'soon'"):
        parse_walltime("soon")


def test_default_lifetime_ends_before_walltime():
    life, stagger = worker_lifetime("01:00:00")
    assert life == 3600 - 360 and stagger == 180
    assert life + stagger < 3600
    assert worker_lifetime("00:10:00") == (480, 30)
    assert worker_lifetime("01:00:00", "none") is None
    assert worker_lifetime("01:00:00", "50m", "1m") == (3000, 60)
    with pytest.raises(ProfileError, match="must end before the walltime"):
        worker_lifetime("01:00:00", "59m", "2m")


@pytest.mark.parametrize("name", ["cosma5", "cosma7", "cosma8", "cosma8-shared"])
def test_cosma_profiles(name, tmp_path):
    pname, settings = load_profile(f"{PROFILES}:{name}")
    settings["log-directory"] = str(tmp_path / "logs")  # not ~/.wtilde/logs of whoever runs the tests
    assert pname == name
    kw = cluster_kwargs(pname, settings, security=None)
    script = job_script(kw)
    assert f"#SBATCH -p {settings['queue']}" in script
    assert "#SBATCH -A dpXXX" in script
    assert f"#SBATCH -t {settings['walltime']}" in script
    assert "--lifetime " in script and "--lifetime-stagger " in script
    assert "--interface ib0" in script
    assert "source ~/venvs/wtilde/bin/activate" in script
    # each worker process's thread pools (BLAS, the likelihood's host F: OMP_NUM_THREADS) sized to its share
    threads = int(settings["cores"]) // int(settings.get("processes") or 1)
    assert f"export OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads}" in script
    assert kw["scheduler_options"]["dashboard_address"] == "127.0.0.1:8787"
    life = int(kw["worker_extra_args"][kw["worker_extra_args"].index("--lifetime") + 1].rstrip("s"))
    assert life < parse_walltime(settings["walltime"])


def test_tls_options_reach_the_worker_command(tmp_path):
    """With the run's TLS (wtilde_dask.security.run_security) the SLURMCluster built from a profile writes the
    worker's credential files into the run's directory and its job script passes them to the worker."""
    from dask_jobqueue import SLURMCluster

    from wtilde_dask.security import close_worker_files, run_security

    name, settings = load_profile(f"{PROFILES}:testnode")
    settings["shared-temp-directory"] = str(tmp_path / "elsewhere")  # replaced by the run's own directory
    with run_security(tmp_path / "tls") as run:
        kw = cluster_kwargs(name, settings, security=run, dashboard_address="127.0.0.1:9999")
        assert kw["protocol"] == "tls://" and kw["security"] is run.security
        assert kw["shared_temp_directory"] == str(run.directory)
        assert kw["scheduler_options"]["dashboard_address"] == "127.0.0.1:9999"
        kw["scheduler_options"] = {"host": "127.0.0.1", "dashboard_address": None}  # this test binds no fixed port
        with SLURMCluster(**kw) as cluster:
            script = cluster.job_script()
            files = {p.name.split(".")[3]: p for p in run.files()}  # .dask-jobqueue.worker.<key>.<random>
            close_worker_files(cluster)
    assert sorted(files) == ["ca_file", "cert", "key"]
    assert f"--tls-ca-file {files['ca_file']}" in script
    assert f"--tls-cert {files['cert']}" in script and f"--tls-key {files['key']}" in script
    assert "--protocol tls://" in script and "--interface lo" in script
    assert "#SBATCH -J wtilde-worker" in script
    assert not run.directory.exists()


def test_profile_errors(tmp_path):
    with pytest.raises(ProfileError, match="profile 'nope': not found"):
        load_profile("nope")
    with pytest.raises(ProfileError, match="no profile 'nope'"):
        load_profile(f"{PROFILES}:nope")
    with pytest.raises(ProfileError, match="holds 5 profiles"):
        load_profile(str(PROFILES))
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobqueue:\n  x:\n    cores: 1\n    memory: 1GB\n    walltime: '00:10:00'\n    coers: 2\n")
    with pytest.raises(ProfileError, match="unknown key.*coers"):
        cluster_kwargs(*load_profile(str(bad)))
    bad.write_text("jobqueue:\n  x:\n    cores: 1\n    walltime: '00:10:00'\n")
    with pytest.raises(ProfileError, match="memory is not set"):
        cluster_kwargs(*load_profile(str(bad)))


def test_profile_from_dask_config():
    import dask

    with dask.config.set({"jobqueue.mysite": {"cores": 2, "memory": "4GB", "walltime": "02:00:00", "queue": "q"}}):
        name, settings = load_profile("mysite")
    kw = cluster_kwargs(name, settings)
    assert kw["queue"] == "q" and kw["cores"] == 2 and "security" not in kw


def test_no_usable_profile_says_how_to_fix(tmp_path, monkeypatch):
    """``--cluster slurm`` without a usable profile: the error names dask's config directories and the files
    there, the ``--profile FILE.yaml:NAME`` form and the usable profiles."""
    import dask

    conf = tmp_path / "dask-config"
    conf.mkdir()
    (conf / "jobqueue.yaml").write_text("# jobqueue:\n#   slurm:\n#     cores: null\n")  # dask-jobqueue's template
    (conf / "site.yaml").write_text("jobqueue:\n  mysite:\n    cores: 4\n    memory: 8GB\n    walltime: '01:00:00'\n")
    monkeypatch.setattr(dask.config, "paths", [str(conf)])
    with dask.config.set({"jobqueue.mysite": {"cores": 4, "memory": "8GB", "walltime": "01:00:00"},
                          "jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(ProfileError) as err:
            cluster_kwargs(*load_profile(None))
        text = str(err.value)
        assert "profile 'slurm': cores, memory are not set" in text
        assert f"config directories searched: {conf}" in text
        assert f"{conf / 'jobqueue.yaml'} (no jobqueue profile)" in text
        assert f"{conf / 'site.yaml'} (jobqueue profiles: mysite)" in text
        assert "profiles that set cores, memory, walltime: mysite" in text
        assert "--profile FILE.yaml:NAME" in text and "deployments/slurm/jobqueue.yaml:cosma8" in text

        with pytest.raises(ProfileError, match=r"profile 'cosma9': not found(.|\n)*FILE\.yaml:NAME"):
            load_profile("cosma9")


def test_no_usable_profile_cli_message(tmp_path, capsys, monkeypatch):
    """The same message reaches the user of ``wtilde compute --cluster slurm`` on stderr; no store is written."""
    import dask

    from wtilde_dask.cli import main

    monkeypatch.setattr(dask.config, "paths", [str(tmp_path)])
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        assert main(["compute", "sma", "--out", str(tmp_path / "w.zarr"), "--cluster", "slurm"]) == 2
    err = capsys.readouterr().err
    assert "wtilde compute: error: profile 'slurm': cores, memory are not set" in err
    assert "--profile FILE.yaml:NAME" in err and str(tmp_path) in err
    assert not (tmp_path / "w.zarr").exists()
