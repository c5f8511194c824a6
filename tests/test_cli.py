"""The command line as a user runs it: a tiny training run, a multirun, and report over it."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterbench.train", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_single_run_prints_metrics_and_writes_its_folder(tmp_path):
    run_dir = tmp_path / "run"
    result = _train(
        "backbone.hidden_dims=[16]",
        "model.critic_hidden_dims=[8]",
        "+dataset.views=[0,2]",
        "trainer.max_epochs=1",
        "trainer.batch_size=500",
        "trainer.progress=false",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr
    assert "ACC" in result.stdout and "NMI" in result.stdout and "ARI" in result.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert results["model"] == "sdcib" and results["dataset"]["name"] == "handwritten"
    assert "trainer.max_epochs=1" in results["overrides"]
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / "metrics.csv").exists()


def test_multirun_then_report(tmp_path):
    sweep = tmp_path / "sweep"
    result = _train("-m", "model=kmeans", "model.n_init=1", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    runs = sorted(p.name for p in sweep.iterdir() if (p / "results.json").exists())
    # job folders are named by their config (model, dataset, overrides, config hash)
    assert [r.rsplit("_", 1)[0] for r in runs] == ["kmeans_handwritten_seed=0_model.n_init=1", "kmeans_handwritten_seed=1_model.n_init=1"]
    report = subprocess.run([sys.executable, "-m", "clusterbench.report", str(sweep)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert report.returncode == 0, report.stderr
    assert "| kmeans | handwritten | model.n_init=1 | 2 | 0,1 | last |" in report.stdout


def test_sweep_file_runs_its_grid(tmp_path):
    """+sweep=sdcib_ablation expands to the 4 runs of SDCIB Table 4."""
    sweep = tmp_path / "sweep"
    result = _train(
        "-m",
        "+sweep=sdcib_ablation",
        "backbone.hidden_dims=[8]",
        "model.critic_hidden_dims=[4]",
        "+dataset.views=[0,2]",
        "trainer.max_epochs=1",
        "trainer.batch_size=1000",
        "trainer.progress=false",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr
    grid = set()
    for run in sweep.iterdir():
        if (run / "results.json").exists():
            overrides = json.loads((run / "results.json").read_text())["overrides"]
            grid.add(tuple(sorted(o for o in overrides if o.startswith("loss.weights"))))
    assert grid == {
        ("loss.weights.cluster=1.0", "loss.weights.instance=1.0"),
        ("loss.weights.cluster=1.0", "loss.weights.instance=0.0"),
        ("loss.weights.cluster=0.0", "loss.weights.instance=1.0"),
        ("loss.weights.cluster=0.0", "loss.weights.instance=0.0"),
    }


def test_local_launcher_runs_jobs_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    result = _train("-m", "+launcher=local", "model=kmeans", "model.n_init=1", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    assert len(list(sweep.glob("kmeans_handwritten_seed=0_*/results.json"))) == 1
    assert len(list(sweep.glob("kmeans_handwritten_seed=1_*/results.json"))) == 1
    assert "Joblib" in (sweep / "multirun.yaml").read_text()
