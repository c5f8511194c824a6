"""Resumable sweeps and run-folder checks.

- `job_state(cfg, run_dir)`: what a (re-)run of a multirun job should do with the folder it
  finds: skip it (a finished results.json with this config's hash), resume it (a checkpoint of
  this config and no final results.json: the job was killed), or train it afresh (nothing
  there, a failed job, or another config).
- Hydra callbacks (configs/train.yaml, hydra.callbacks): `OutputFolderCheck` reports an
  output folder that cannot be written in one line before Hydra writes anything into it, and
  `SweepSummary` ends a multirun with a summary of its jobs (sweep_summary.json, written
  atomically) listing the failed and unfinished ones, and exit status 1 when there are any.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from clusterbench.engine.checkpoint import PREVIOUS, CheckpointError, read_checkpoint, write_json
from clusterbench.engine.provenance import config_hash
from clusterbench.errors import first_line

SUMMARY = "sweep_summary.json"


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """results.json of a run folder (None when absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return None


def job_state(cfg: DictConfig, run_dir: Path) -> tuple[str, str]:
    """("skip" | "resume" | "fresh", why) for a multirun job about to run in `run_dir`."""
    run_dir = Path(run_dir)
    wanted = config_hash(cfg)
    results = read_results(run_dir)
    if results is not None:
        if results.get("config_sha256") != wanted:
            return "fresh", "its results.json is from another config"
        if results.get("status") == "finished":
            return "skip", "finished with this config"
        return "fresh", f"it failed before ({results.get('error', 'no message')})"
    for name in ("last.pt", PREVIOUS):
        path = run_dir / "checkpoints" / name
        if not path.exists():
            continue
        try:
            state = read_checkpoint(path)
        except CheckpointError:
            continue  # a damaged last.pt: previous.pt may still do (resume falls back to it)
        saved = state.get("config_sha256") or (config_hash(state["config"]) if "config" in state else None)
        if saved == wanted:
            return "resume", f"unfinished, checkpoint of epoch {state['epoch']}"
        return "fresh", "its checkpoint is from another config"
    return "fresh", "nothing there yet"


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be written under `folder` (which may not exist yet), or None. Probes
    the nearest existing ancestor with a temporary file, so nothing new is left behind."""
    base = _nearest_existing(Path(folder))
    if not base.is_dir():
        return f"{base} is not a folder"
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return err.strerror or first_line(err)
    return None


def _check(folder: str, key: str) -> None:
    problem = folder_problem(Path(folder))
    if problem is not None:
        print(f"error: {key}={folder}: output folder is not writable ({problem})", file=sys.stderr)
        raise SystemExit(2)  # Hydra's callback runner passes SystemExit through, not Exceptions


class OutputFolderCheck(Callback):
    """One line and exit status 2, before Hydra creates the run (or sweep) folder, when it
    cannot be written: no data loaded, no training started."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(str(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(str(config.hydra.sweep.dir), "hydra.sweep.dir")


def summarize(sweep_dir: Path) -> dict[str, Any]:
    """Every job folder of a sweep (a folder with .hydra/) with its status: finished, failed
    (results.json says why) or unfinished (no results.json: killed, or never started)."""
    jobs = []
    for folder in sorted(Path(sweep_dir).iterdir(), key=lambda p: p.name):
        if not (folder / ".hydra").is_dir():
            continue
        results = read_results(folder)
        overrides = []
        saved = folder / ".hydra" / "overrides.yaml"
        if saved.exists():
            overrides = list(OmegaConf.load(saved))
        job: dict[str, Any] = {"folder": folder.name, "overrides": overrides}
        if results is None:
            job["status"] = "unfinished"
        else:
            job["status"] = results.get("status", "unknown")
            if job["status"] == "finished":
                job["metrics"] = {k: results["metrics"].get(k) for k in ("acc", "nmi", "ari")}
            else:
                job["error"] = results.get("error")
        jobs.append(job)
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    return {"sweep_dir": str(sweep_dir), "n_jobs": len(jobs), "counts": counts, "jobs": jobs}


class SweepSummary(Callback):
    """At the end of a multirun: sweep_summary.json in the sweep folder, one line of counts,
    one line per failed or unfinished job, and exit status 1 when there is any."""

    def __init__(self, exit_on_failure: bool = True) -> None:
        self.exit_on_failure = exit_on_failure

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        summary = summarize(sweep_dir)
        write_json(sweep_dir / SUMMARY, summary)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(summary["counts"].items()))
        print(f"sweep: {summary['n_jobs']} jobs ({counts or 'none'}) -> {sweep_dir / SUMMARY}")
        bad = [job for job in summary["jobs"] if job["status"] != "finished"]
        # the overrides that tell the jobs apart (those shared by every job say nothing)
        shared = set.intersection(*(set(job["overrides"]) for job in summary["jobs"])) if len(summary["jobs"]) > 1 else set()
        for job in bad:
            own = " ".join(o for o in job["overrides"] if o not in shared)
            print(f"  {job['status']}: {job['folder']} [{own}] {job.get('error') or ''}".rstrip())
        if bad and self.exit_on_failure:
            sys.stdout.flush()
            raise SystemExit(1)
