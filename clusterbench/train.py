"""`python -m clusterbench.train [group=option ...] [key=value ...]`: one run (or `-m` a sweep).

Examples:
    python -m clusterbench.train                                 # SDCIB on the embedded handwritten data
    python -m clusterbench.train model=kmeans dataset=bdgp paths.data_dir=/data
    python -m clusterbench.train -m seed=0,1,2,3,4
    python -m clusterbench.train -m +sweep=sdcib_alpha_beta +launcher=vectorized   # one process, batched
    python -m clusterbench.train resume=outputs/runs/<run folder>
    python -m clusterbench.train -m seed=0,1,2 hydra.sweep.dir=outputs/multirun/s   # again: skips finished jobs
    torchrun --nproc_per_node=4 -m clusterbench.train hardware=ddp model=cc dataset=cifar10
(docs/reliability.md: DDP, launchers, resumable sweeps, faults, provenance)
"""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from clusterbench._configs import config_dir
from clusterbench.config_check import check_config
from clusterbench.engine.checkpoint import write_json
from clusterbench.engine.distributed import launched_by_torchrun, run_stamp, share_run_stamp
from clusterbench.engine.hardware import JOB_DEVICE_ENV
from clusterbench.engine.launch import acquire_gpu, device_for, release_gpus
from clusterbench.engine.loop import fit, fit_members
from clusterbench.engine.provenance import config_hash
from clusterbench.engine.sweep import job_state, read_results
from clusterbench.errors import ClusterbenchError, ConfigError, first_line

CONFIG_DIR = config_dir()  # configs/ of the checkout, or clusterbench/configs/ in an installed wheel
# run folders are named with ${cb_now:...}: Hydra's `now`, except under torchrun, where every
# rank uses rank 0's start time so that all of them name the same folder
OmegaConf.register_new_resolver("cb_now", run_stamp, use_cache=True, replace=True)


def load_resumed_config(cfg: DictConfig) -> tuple[DictConfig, Path]:
    """The config a run folder was started with, so that `resume=<folder>` continues that run."""
    run_dir = Path(cfg.resume)
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.exists():
        raise ConfigError(f"resume={cfg.resume}: not a run folder ({saved} is missing)")
    resumed = OmegaConf.load(saved)
    with open_dict(resumed):
        resumed.resume = str(run_dir)
    return resumed, run_dir


def run(cfg: DictConfig, run_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validates the config (nothing loaded yet), then trains and evaluates."""
    if cfg.get("resume"):
        cfg, run_dir = load_resumed_config(cfg)
    check_config(cfg)
    return fit(cfg, run_dir, meta)


def job_meta(hydra_cfg) -> dict[str, Any]:
    return {
        "model": hydra_cfg.runtime.choices.get("model"),
        "dataset": hydra_cfg.runtime.choices.get("dataset"),
        "overrides": list(hydra_cfg.overrides.task),
    }


def summary_line(results: dict[str, Any], meta: dict[str, Any], run_dir: Path | str) -> str:
    m = results["metrics"]
    return (
        f"{meta['model']} on {results['dataset']['name']} (seed {results['seed']}, {results['selection']['rule']} epoch "
        f"{results['selection']['epoch']}): ACC {m['acc']:.4f}  NMI {m['nmi']:.4f}  ARI {m['ari']:.4f}  -> {run_dir}"
    )


def prepare_job(cfg: DictConfig) -> dict[str, Any]:
    """A vectorised sweep's per-job step, run inside Hydra's run_job (which writes the job's
    folder and .hydra/ files): the validated, resolved config, its folder and its meta."""
    hydra_cfg = HydraConfig.get()
    if cfg.get("resume"):
        raise ConfigError("resume= is for one run folder; resume a vectorised member with resume=<member folder>")
    check_config(cfg)
    OmegaConf.resolve(cfg)  # ${...} must not be read later, under another job's Hydra state
    return {"cfg": cfg, "run_dir": Path(hydra_cfg.runtime.output_dir), "meta": job_meta(hydra_cfg)}


def train_group(jobs: list[dict[str, Any]]) -> list[dict[str, Any] | BaseException]:
    """Trains one group of a vectorised sweep as one batched model; one outcome per job. A job
    already finished with its config (a re-run of the sweep) is skipped; unfinished members
    are trained afresh (a batched model does not resume single members)."""
    done: dict[int, dict[str, Any]] = {}
    for i, job in enumerate(jobs):
        if job_state(job["cfg"], job["run_dir"])[0] == "skip":
            done[i] = read_results(job["run_dir"])
            print(f"skipped: {job['run_dir']}: finished with this config")
    todo = [job for i, job in enumerate(jobs) if i not in done]
    try:
        trained = fit_members([j["cfg"] for j in todo], [j["run_dir"] for j in todo], [j["meta"] for j in todo]) if todo else []
    except ClusterbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return [done[i] if i in done else err for i in range(len(jobs))]
    trained_iter = iter(trained)
    outcomes = [done[i] if i in done else next(trained_iter) for i in range(len(jobs))]
    for job, outcome in zip(jobs, outcomes):
        if isinstance(outcome, BaseException):
            print(f"error: {job['run_dir']}: {outcome}", file=sys.stderr)
        else:
            print(summary_line(outcome, job["meta"], job["run_dir"]))
    return outcomes


# what a failed multirun job returns: NaN, which Optuna records as a failed trial and goes on
# (None would stop its search)
FAILED_JOB_VALUE = float("nan")


def _is_multirun(hydra_cfg) -> bool:
    return hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN"


def sweep_job(cfg: DictConfig, run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """One job of a multirun, re-runnable: a job already finished with this config is skipped
    (its results are returned), one with a checkpoint of this config but no results.json (it
    was killed) is resumed from it, anything else trains afresh (engine/sweep.py)."""
    if cfg.get("resume"):
        return run(cfg, run_dir, meta)
    check_config(cfg)  # a wrong key fails with its name here, before the folder is looked at
    action, why = job_state(cfg, run_dir)
    if action == "skip":
        results = read_results(run_dir)
        print(f"skipped: {run_dir}: {why}")
        return results
    if action == "resume":
        print(f"resuming: {run_dir}: {why}")
        with open_dict(cfg):
            cfg.resume = str(run_dir)
    return run(cfg, run_dir, meta)


def record_failure(cfg: DictConfig, run_dir: Path, meta: dict[str, Any], error: str) -> None:
    """results.json with status failed for a job that stopped before the engine wrote one (a
    config error, a bug): the sweep summary lists it and a re-run of the sweep trains it again."""
    existing = read_results(run_dir)
    if existing is not None and existing.get("status") == "failed" and existing.get("error") == error:
        return  # the engine's own record (with the dataset) of this very failure
    try:
        digest = config_hash(cfg)
    except Exception:  # an unresolvable config: the failure itself
        digest = None
    write_json(
        run_dir / "results.json",
        {"status": "failed", "error": error, "model": meta.get("model"), "overrides": meta.get("overrides", []), "config_sha256": digest},
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    meta = job_meta(hydra_cfg)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if not _is_multirun(hydra_cfg):
        try:
            results = run(cfg, run_dir, meta)
        except ClusterbenchError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
    else:
        # one bad job never stops the sweep: whatever it raises is recorded in its results.json
        # (a traceback for a non-clusterbench error in error.txt) and listed by the summary
        try:
            gpus = cfg.get("launcher_gpus")
            if gpus:  # +launcher=local_gpus: this job holds one GPU while it runs
                gpu = acquire_gpu(list(gpus), int(hydra_cfg.job.num), Path(hydra_cfg.sweep.dir) / ".gpus")
                os.environ[JOB_DEVICE_ENV] = device_for(gpu)
                print(f"job {hydra_cfg.job.num}: GPU {gpu}")
            results = sweep_job(cfg, run_dir, meta)
        except ClusterbenchError as err:
            print(f"error: {run_dir}: {err}", file=sys.stderr)
            record_failure(cfg, run_dir, meta, str(err))
            return FAILED_JOB_VALUE
        except Exception as err:  # noqa: BLE001 - a bug in one job must not lose the others
            message = f"{type(err).__name__}: {first_line(err)}"
            print(f"error: {run_dir}: {message} (traceback in {run_dir / 'error.txt'})", file=sys.stderr)
            (run_dir / "error.txt").write_text(traceback.format_exc())
            record_failure(cfg, run_dir, meta, message)
            return FAILED_JOB_VALUE
        finally:
            release_gpus()
            os.environ.pop(JOB_DEVICE_ENV, None)
    print(summary_line(results, meta, run_dir))
    return results["metrics"]["acc"]


def _distributed_launch() -> None:
    """Under torchrun (hardware=ddp): one run folder for all ranks, and only rank 0 lets Hydra
    write its .hydra/ files and log file there."""
    if not launched_by_torchrun():
        return
    share_run_stamp()
    if int(os.environ["RANK"]) != 0:
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def cli() -> None:
    """The `clusterbench-train` console script: the same as `python -m clusterbench.train`."""
    _distributed_launch()
    main()


if __name__ == "__main__":
    cli()
