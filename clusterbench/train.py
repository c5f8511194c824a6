"""`python -m clusterbench.train [group=option ...] [key=value ...]`: one run (or `-m` a sweep).

The command line only: Hydra's entry, the console's lines and the exit codes. What a run, a
sweep job or a vectorised group does (and how a failed job is recorded) is engine/jobs.py;
resume is engine/resume.py.

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

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from clusterbench.threads import prefer_short_spin

prefer_short_spin()  # before the imports below load torch and its OpenMP runtime (clusterbench/threads.py)

from clusterbench._configs import config_dir
from clusterbench.cli_errors import run_hydra
from clusterbench.console import say
from clusterbench.engine.checkpoint import checkpoint_files, disk_write_message, storage_error
from clusterbench.engine.distributed import launched_by_torchrun, run_stamp, share_run_stamp
from clusterbench.engine.jobs import (
    job_meta,
    multirun_job,
    prepare_job,  # noqa: F401 - the vectorised launcher's per-job step
    record_crash,
    run,
    skipped_folders,
    train_vectorised_group,
)
from clusterbench.engine.sweep import created_run_dir, hydra_files_subdir, job_folder_name, remove_if_no_run
from clusterbench.engine.throughput import throughput_text
from clusterbench.errors import ClusterbenchError, RunFolderError, TrainingError

CONFIG_DIR = config_dir()  # configs/ of the checkout, or clusterbench/configs/ in an installed wheel
# run folders are named with ${cb_now:...}: Hydra's `now`, except under torchrun, where every
# rank uses rank 0's start time so that all of them name the same folder
OmegaConf.register_new_resolver("cb_now", run_stamp, use_cache=True, replace=True)
# multirun job folders are named by their config (engine/sweep.py)
OmegaConf.register_new_resolver("cb_job", job_folder_name, replace=True)
# a re-run of a sweep leaves the .hydra/ files of the finished jobs it skips as they are
OmegaConf.register_new_resolver("cb_hydra_subdir", hydra_files_subdir, replace=True)


def summary_line(results: dict[str, Any], meta: dict[str, Any], run_dir: Path | str) -> str:
    m = results["metrics"]
    selection = results["selection"]
    flag = "  [label-selected: " + _label_selected(selection) + "]" if selection.get("uses_labels") else ""
    chosen = f", {selection['rule']} epoch {selection['epoch']}" if results.get("epochs") else ""  # k-means: no epochs
    collapsed = f"  [{results['collapse']['message']}]" if results.get("collapse") else ""
    speed = throughput_text(results.get("throughput"))  # engine/throughput.py: samples/s, FLOP/s = % of peak
    speed = f"  ({speed})" if speed else ""
    return (
        f"{results.get('model') or meta.get('model')} on {results['dataset']['name']} (seed {results['seed']}{chosen}): "
        f"{score_text(m)}{flag}{collapsed}{speed}  -> {run_dir}"
    )


def score_text(m: dict[str, Any]) -> str:
    """ACC / NMI / ARI, or for data without labels the label-free scores."""
    if "acc" in m:
        return f"ACC {m['acc']:.4f}  NMI {m['nmi']:.4f}  ARI {m['ari']:.4f}"
    return (
        f"silhouette {m['silhouette']:.4f}  Calinski-Harabasz {m['calinski_harabasz']:.1f}  cluster sizes {m['cluster_sizes']} (no labels)"
    )


def _label_selected(selection: dict[str, Any]) -> str:
    """What read the labels: the epoch rule (best_acc) and/or a method's candidate choice."""
    parts = []
    if selection.get("rule") == "best_acc":
        parts.append("epoch by best ACC")
    candidate = selection.get("candidate") or {}
    if candidate.get("uses_labels"):
        parts.append(f"{candidate.get('chosen')} chosen by best ACC")
    return ", ".join(parts) or "uses the labels"


def train_group(jobs: list[dict[str, Any]]) -> list[dict[str, Any] | BaseException]:
    """The vectorised launcher's per-group step (hydra_plugins/clusterbench_vectorized):
    engine/jobs.py trains the group, then one line per job, as a sequential multirun prints."""
    outcomes = train_vectorised_group(jobs)
    for job, outcome in zip(jobs, outcomes):
        if isinstance(outcome, BaseException):
            say(f"error: {job['run_dir']} [{' '.join(job['meta']['overrides'])}]: {outcome}", error=True)
        else:
            say(summary_line(outcome, job["meta"], job["run_dir"]))
    return outcomes


# what a failed multirun job returns: NaN, which Optuna records as a failed trial and goes on
# (None would stop its search)
FAILED_JOB_VALUE = float("nan")


def _is_multirun(hydra_cfg) -> bool:
    return hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN"


def interrupted_message(folder: Path) -> str:
    """What Ctrl-C leaves: the checkpoint to continue from, or none yet (the first is written
    after trainer.checkpoint_every epochs and trainer.checkpoint_interval_s seconds)."""
    kept = next(iter(checkpoint_files(folder)), None)
    if kept is None:
        return f"interrupted before the first checkpoint was written in {folder}: nothing to continue from; run the command again"
    return f"interrupted: the last checkpoint {kept} is kept; continue with: python -m clusterbench.train resume={folder}"


@contextlib.contextmanager
def exit_codes(cfg: DictConfig, run_dir: Path, meta: dict[str, Any] | None = None):
    """A single run's errors as one line each, with exit status 2 (a config or data problem),
    1 (training stopped, disk full) or 130 (interrupted, with the command that resumes). Any
    other error is a bug: its traceback is printed (to be reported) and also kept in the run
    folder's error.txt, and results.json says the run failed."""
    try:
        yield
    except TrainingError as err:
        say(f"error: {err}", error=True)
        sys.exit(1)
    except ClusterbenchError as err:
        say(f"error: {err}", error=True)
        if not isinstance(err, RunFolderError) and Path(run_dir) in created_run_dir:
            remove_if_no_run(run_dir)  # a config error leaves no empty folder behind
        sys.exit(2)
    except KeyboardInterrupt:
        say(interrupted_message(Path(cfg.get("resume") or run_dir)), error=True)
        sys.exit(130)
    except Exception as err:
        folder = Path(cfg.get("resume") or run_dir)
        cause = storage_error(err) if isinstance(err, (OSError, RuntimeError)) else None
        if cause is None:
            record_crash(cfg, folder, meta or {}, err)
            raise
        say(f"error: {disk_write_message(cause, folder)}", error=True)
        sys.exit(1)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    meta = job_meta(hydra_cfg)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if not _is_multirun(hydra_cfg):
        with exit_codes(cfg, run_dir, meta):
            results = run(cfg, run_dir, meta)
        run_dir = Path(cfg.resume) if cfg.get("resume") else run_dir
    else:
        results = multirun_job(cfg, run_dir, meta, hydra_cfg)
        if results is None:  # recorded in its folder; the sweep goes on
            return FAILED_JOB_VALUE
    if Path(run_dir) in skipped_folders:
        print(summary_line(results, meta, run_dir), flush=True)
    else:
        say(summary_line(results, meta, run_dir))
    return results["metrics"].get("acc", results["metrics"].get("silhouette"))


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
    if sys.argv[1:] == ["--version"]:  # Hydra's own --version would name Hydra's version
        from clusterbench import __version__

        print(f"clusterbench {__version__}")
        return
    _distributed_launch()
    run_hydra(main)  # Hydra's errors as one line each, exit status 2 (clusterbench/cli_errors.py)


if __name__ == "__main__":
    cli()
