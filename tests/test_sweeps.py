"""Resumable sweeps: a re-run skips finished jobs (same config hash), resumes killed ones from
their checkpoint and reruns failed ones; a failing job never stops the others; the sweep ends
with a summary of failures. Also one GPU per job (lock files) and the launchers' configs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, compose_config
from omegaconf import OmegaConf

from clusterbench.engine import launch
from clusterbench.engine.checkpoint import load_checkpoint
from clusterbench.engine.resume import job_state
from clusterbench.engine.sweep import SUMMARY, SweepSummary, summarize
from clusterbench.train import run

KMEANS = ["model=kmeans", "model.n_init=1", "trainer.progress=false", "hardware=cpu"]
# three SDCIB jobs, the third one a config error (batch size 0)
SWEEP = [
    "backbone.hidden_dims=[8]",
    "model.critic_hidden_dims=[4]",
    "+dataset.views=[0,2]",
    "trainer.max_epochs=2",
    "trainer.checkpoint_every=1",
    "trainer.checkpoint_interval_s=0",
    "trainer.progress=false",
    "trainer.save_embedding=false",
    "hardware=cpu",
    "trainer.batch_size=500,1000,0",
    "trainer.checkpoint_when_done=full",  # finished jobs keep previous.pt: a test rolls one back to its epoch-1 checkpoint
]


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterbench.train", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def _job(sweep: Path, override: str) -> Path:
    """The one job folder of `sweep` whose name (the job's config) holds `override`."""
    (folder,) = [p for p in sweep.iterdir() if p.is_dir() and f"_{override}_" in f"_{p.name}_"]
    return folder


def test_job_state_skips_finished_resumes_killed_and_reruns_failed(tmp_path):
    cfg = compose_config(KMEANS)
    assert job_state(cfg, tmp_path / "new")[0] == "fresh"
    run(cfg, tmp_path / "job")
    assert job_state(cfg, tmp_path / "job") == ("skip", "finished with this config")
    other = compose_config([*KMEANS, "seed=5"])
    assert job_state(other, tmp_path / "job")[0] == "refuse"  # a finished run of another config: never overwritten
    results = json.loads((tmp_path / "job" / "results.json").read_text())
    (tmp_path / "job" / "results.json").unlink()  # killed before the end: a checkpoint, no results
    assert job_state(cfg, tmp_path / "job")[0] == "resume"
    assert job_state(other, tmp_path / "job") == ("fresh", "its checkpoint is from another config")
    results.update(status="failed", error="boom")
    (tmp_path / "job" / "results.json").write_text(json.dumps(results))
    assert job_state(cfg, tmp_path / "job") == ("fresh", "it failed before (boom)")


def test_summary_lists_failed_and_unfinished_jobs_and_exits_1(tmp_path, capsys):
    for name, results in (
        ("0_a", {"status": "finished", "metrics": {"acc": 0.5, "nmi": 0.4, "ari": 0.3}}),
        ("1_a", {"status": "failed", "error": "trainer.batch_size=0: expected a positive integer"}),
        ("2_a", None),
    ):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(["seed=1", f"job={name}"]), tmp_path / name / ".hydra" / "overrides.yaml")
        if results is not None:
            (tmp_path / name / "results.json").write_text(json.dumps(results))
    (tmp_path / "not_a_job").mkdir()
    summary = summarize(tmp_path)
    assert summary["counts"] == {"finished": 1, "failed": 1, "unfinished": 1}
    with pytest.raises(SystemExit) as info:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert info.value.code == 1
    assert json.loads((tmp_path / SUMMARY).read_text()) == summary
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sweep: 3 jobs (1 failed, 1 finished, 1 unfinished)")
    assert out[1] == "  failed: 1_a [job=1_a] trainer.batch_size=0: expected a positive integer"
    assert out[2] == "  unfinished: 2_a [job=2_a]"


def test_a_failed_job_that_later_finished_under_new_defaults_is_superseded_not_a_failure(tmp_path, capsys):
    """The same command-line job (same overrides) failed in one folder and finished in another
    (a newer clusterbench changed a default, so the config hash and the folder differ): the
    sweep holds its answer and exits 0; a failure of another job still exits 1."""
    for name, overrides, results in (
        ("old", ["seed=2"], {"status": "failed", "error": "unknown key"}),
        (
            "new",
            ["seed=2", "trainer.checkpoint_when_done=weights"],
            {"status": "finished", "metrics": {"acc": 0.9, "nmi": 0.8, "ari": 0.7}},
        ),
        ("other", ["seed=3"], None),
    ):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(overrides), tmp_path / name / ".hydra" / "overrides.yaml")
        if results is not None:
            (tmp_path / name / "results.json").write_text(json.dumps(results))
    summary = summarize(tmp_path)
    assert summary["counts"] == {"finished": 1, "superseded": 1, "unfinished": 1}
    old = next(job for job in summary["jobs"] if job["folder"] == "old")
    assert (old["superseded"], old["by"]) == ("failed", "new")
    with pytest.raises(SystemExit):  # seed 3 never finished
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    capsys.readouterr()
    (tmp_path / "other" / "results.json").write_text(json.dumps({"status": "finished", "metrics": {"acc": 0.5}}))
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))  # no exit
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("sweep: 3 jobs (2 finished, 1 superseded) -> ")


def test_a_job_another_process_is_running_is_listed_as_running_not_a_failure(tmp_path, capsys):
    """Two multiruns over one sweep folder (say seed 7 and seed 8 started apart): the first to end
    must not call the other's job, still training, a failure; once its process is gone without
    results.json the job is unfinished again. A job that wrote its finished results.json and
    still holds its lock (shrinking its checkpoint) is finished, not running."""
    for name, results in (("seed7", {"status": "finished", "metrics": {"acc": 0.5, "nmi": 0.4, "ari": 0.3}}), ("seed8", None)):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create([f"seed={name[-1]}"]), tmp_path / name / ".hydra" / "overrides.yaml")
        if results is not None:
            (tmp_path / name / "results.json").write_text(json.dumps(results))
    holder = subprocess.Popen(  # the other multirun: holds seed8's run-folder lock as training does
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from clusterbench.engine.sweep import lock_run_folder; "
            "[lock_run_folder(Path(a)) for a in sys.argv[1:]]; print('locked', flush=True); sys.stdin.read()",
            str(tmp_path / "seed8"),
            str(tmp_path / "seed7"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        summary = summarize(tmp_path)
        assert summary["counts"] == {"finished": 1, "running": 1}
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))  # no exit
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("sweep: 2 jobs (1 finished, 1 running)") and out[1] == "  running: seed8 [seed=8]"
    finally:
        holder.communicate("", timeout=60)
    assert summarize(tmp_path)["counts"] == {"finished": 1, "unfinished": 1}
    with pytest.raises(SystemExit):
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))


@pytest.mark.slow  # two sweeps of three jobs in subprocesses: about a minute on 2 busy cores
def test_sweep_with_a_failing_job_completes_the_others_and_resumes_when_rerun(tmp_path):
    sweep = tmp_path / "sweep"
    first = _train("-m", *SWEEP, f"hydra.sweep.dir={sweep}")
    assert first.returncode == 1, first.stderr  # the summary's exit status: a job failed
    jobs = [_job(sweep, f"trainer.batch_size={b}") for b in (500, 1000, 0)]
    results = [json.loads((p / "results.json").read_text()) for p in jobs]
    assert [r["status"] for r in results] == ["finished", "finished", "failed"]
    assert "trainer.batch_size=0: expected a positive integer" in results[2]["error"]
    summary = json.loads((sweep / SUMMARY).read_text())
    assert summary["counts"] == {"finished": 2, "failed": 1}
    assert f"failed: {jobs[2].name} [trainer.batch_size=0] trainer.batch_size=0" in first.stdout

    # job 1 "killed" after epoch 1: no results.json, its last checkpoint the epoch-1 one
    (jobs[1] / "results.json").unlink()
    (jobs[1] / "checkpoints" / "previous.pt").replace(jobs[1] / "checkpoints" / "last.pt")
    assert load_checkpoint(jobs[1] / "checkpoints" / "last.pt")["epoch"] == 1
    finished_at = (jobs[0] / "results.json").stat().st_mtime_ns

    second = _train("-m", *SWEEP, f"hydra.sweep.dir={sweep}")
    assert second.returncode == 1
    assert f"skipped: {jobs[0]}: finished with this config" in second.stdout
    assert f"resuming: {jobs[1]}: unfinished, checkpoint of epoch 1" in second.stdout
    assert (jobs[0] / "results.json").stat().st_mtime_ns == finished_at  # not trained again
    again = json.loads((jobs[1] / "results.json").read_text())
    assert again["status"] == "finished" and again["metrics"] == results[1]["metrics"]
    assert again["config_sha256"] == results[1]["config_sha256"]
    assert f"error: {jobs[2]}: trainer.batch_size=0" in second.stderr  # failed again: rerun, not skipped
    assert json.loads((sweep / SUMMARY).read_text())["counts"] == {"finished": 2, "failed": 1}


def test_a_crashing_job_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    """A bug (not a ClusterbenchError) in one job: its results.json says failed with the error,
    error.txt holds the traceback, and the job returns NaN (Optuna: a failed trial)."""
    from clusterbench import train
    from clusterbench.engine import jobs

    def crash(cfg, run_dir, meta):
        raise RuntimeError("a bug\nsecond line")

    monkeypatch.setattr(jobs, "sweep_job", crash)
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as info:
        monkeypatch.setattr(sys, "argv", ["train", "-m", *KMEANS, "seed=0,1", f"hydra.sweep.dir={sweep}"])
        train.main()
    assert info.value.code == 1
    for job in (_job(sweep, "seed=0"), _job(sweep, "seed=1")):
        results = json.loads((job / "results.json").read_text())
        assert results["status"] == "failed" and results["error"] == "RuntimeError: a bug"
        assert "Traceback" in (job / "error.txt").read_text()
    assert math.isnan(train.FAILED_JOB_VALUE)


def test_each_job_holds_its_own_gpu(tmp_path):
    try:
        assert launch.acquire_gpu([0, 1], 0, tmp_path) == 0
        assert launch.acquire_gpu([0, 1], 2, tmp_path) == 1  # job 2 would take GPU 0, which is held
        with pytest.raises(Exception, match="all 2 GPUs are held"):
            launch.acquire_gpu([0, 1], 3, tmp_path)
        launch.release_gpus()
        assert launch.acquire_gpu([0, 1], 3, tmp_path) == 1  # job 3's own GPU, free again
    finally:
        launch.release_gpus()
    assert launch.device_for(1) == "cuda:1"


def test_job_device_comes_from_the_environment_not_the_config(monkeypatch):
    from clusterbench.engine import hardware

    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(hardware.JOB_DEVICE_ENV, "cuda:3")
    assert str(hardware.Hardware(device="cuda").device) == "cuda:3"
    assert str(hardware.Hardware(device="cpu").device) == "cpu"


@pytest.mark.parametrize(
    "launcher,target",
    [("local_gpus", "JoblibLauncher"), ("submitit_local", "LocalLauncher"), ("slurm", "SlurmLauncher"), ("local", "JoblibLauncher")],
)
def test_launcher_configs_compose(launcher, target):
    from conftest import CONFIG_DIR
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"+launcher={launcher}", *KMEANS[:2]], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    assert cfg.hydra.callbacks.sweep_summary._target_ == "clusterbench.engine.sweep.SweepSummary"
    if launcher == "local_gpus":
        assert list(cfg.launcher_gpus) == [0, 1] and cfg.hardware.device == "cuda"


@pytest.mark.slow  # submitit's local executor: one subprocess per job
def test_submitit_local_launcher_runs_a_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    result = _train("-m", "+launcher=submitit_local", *KMEANS, "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    for job in (_job(sweep, "seed=0"), _job(sweep, "seed=1")):
        assert json.loads((job / "results.json").read_text())["status"] == "finished"
    assert (sweep / ".submitit").is_dir()
    assert json.loads((sweep / SUMMARY).read_text())["counts"] == {"finished": 2}


@pytest.mark.slow
def test_optuna_sweep_of_sdcib_alpha_beta(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    result = _train(
        "-m",
        "+sweep=sdcib_optuna",
        "hydra.sweeper.n_trials=2",
        "backbone.hidden_dims=[8]",
        "model.critic_hidden_dims=[4]",
        "+dataset.views=[0,2]",
        "trainer.max_epochs=1",
        "trainer.batch_size=1000",
        "trainer.progress=false",
        "hardware=cpu",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Best parameters" in result.stdout + result.stderr
    assert json.loads((sweep / SUMMARY).read_text())["counts"] == {"finished": 2}


def test_vectorised_sweep_rerun_skips_finished_members(tmp_path, monkeypatch, capsys):
    from clusterbench import train

    sweep = tmp_path / "sweep"
    argv = [
        "train",
        "-m",
        "+launcher=vectorized",
        "model.alpha=0.1,0.2",
        "backbone.hidden_dims=[8]",
        "model.critic_hidden_dims=[4]",
        "+dataset.views=[0,2]",
        "trainer.max_epochs=1",
        "trainer.batch_size=1000",
        "trainer.progress=false",
        "trainer.save_embedding=false",
        "hardware=cpu",
        f"hydra.sweep.dir={sweep}",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    train.main()
    jobs = sorted(p / "results.json" for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    stamps = [p.stat().st_mtime_ns for p in jobs]
    capsys.readouterr()
    train.main()
    assert capsys.readouterr().out.count("skipped: ") == 2
    assert [p.stat().st_mtime_ns for p in jobs] == stamps


def test_joblib_sweep_with_a_failing_job_completes_the_other(tmp_path):
    """The same with parallel worker processes (+launcher=local): the failing job is recorded,
    the other finishes, the summary lists the failure."""
    sweep = tmp_path / "sweep"
    result = _train("-m", "+launcher=local", *KMEANS, "model.view=0,9", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1, result.stderr[-2000:]
    good, bad = _job(sweep, "model.view=0"), _job(sweep, "model.view=9")
    assert [json.loads((p / "results.json").read_text())["status"] for p in (good, bad)] == ["finished", "failed"]
    assert f"failed: {bad.name} [model.view=9] model.view=9" in result.stdout
