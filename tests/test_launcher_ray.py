"""+launcher=ray (hydra-ray-launcher, `pip install -e ".[ray]"`): a 2-job k-means sweep on a
local Ray (one CPU, no GPU) writes the same run folders, results and sweep summary as the joblib
launcher. Skipped where Ray or the plugin is not installed (the default environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

# hardware.num_threads=1 on both: the joblib launcher's config sets it, so the jobs' configs
# (and their folders' hashes) are the same under either launcher
JOBS = ["model=kmeans", "model.n_init=1", "trainer.progress=false", "hardware=cpu", "hardware.num_threads=1", "seed=0,1"]
# a local Ray on this machine alone: one CPU, no dashboard; jobs ask for no GPU (a task asking
# for a GPU that no node has waits forever)
LOCAL_RAY = [
    "hydra.launcher.ray.init.num_cpus=1",
    "+hydra.launcher.ray.init.include_dashboard=false",
    "hydra.launcher.ray.remote.num_gpus=0",
    "hydra.launcher.ray.remote.num_cpus=1",
]


def _sweep(sweep: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "clusterbench.train", "-m", *args, *JOBS, f"hydra.sweep.dir={sweep}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env=env,
    )


def _folders(sweep: Path) -> dict[str, dict]:
    """Each job folder: its files and the results that do not depend on the launcher."""
    out = {}
    for folder in sorted(p for p in sweep.iterdir() if p.is_dir()):
        results = json.loads((folder / "results.json").read_text())
        out[folder.name] = {
            "files": sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()),
            **{key: results[key] for key in ("status", "metrics", "config_sha256", "seed")},
        }
    return out


def _summary(sweep: Path, launcher: str) -> dict:
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    del summary["sweep_dir"]
    for job in summary["jobs"]:
        job["overrides"].remove(f"+launcher={launcher}")
    return summary


@pytest.mark.slow  # a local Ray starts in ~6 s; two sweeps take ~30 s on 2 busy cores
def test_ray_sweep_matches_the_joblib_sweep(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    ray_dir, joblib_dir = tmp_path / "ray", tmp_path / "joblib"
    ray_run = _sweep(ray_dir, "+launcher=ray", *LOCAL_RAY)
    assert ray_run.returncode == 0, ray_run.stderr[-3000:]
    assert "Started a local Ray instance" in ray_run.stderr
    joblib_run = _sweep(joblib_dir, "+launcher=local")
    assert joblib_run.returncode == 0, joblib_run.stderr[-3000:]
    ray_jobs, joblib_jobs = _folders(ray_dir), _folders(joblib_dir)
    assert len(ray_jobs) == 2 and all(job["status"] == "finished" for job in ray_jobs.values())
    assert ray_jobs == joblib_jobs  # folder names, files, metrics, config hashes
    assert _summary(ray_dir, "ray") == _summary(joblib_dir, "local")
    assert _summary(ray_dir, "ray")["counts"] == {"finished": 2}
