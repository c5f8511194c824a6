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
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from clusterbench._configs import config_dir
from clusterbench.cli_errors import run_hydra
from clusterbench.config_check import check_config
from clusterbench.engine.checkpoint import DiskWriteError, disk_write_message, storage_error, write_text
from clusterbench.engine.distributed import launched_by_torchrun, run_stamp, share_run_stamp
from clusterbench.engine.ensemble import InvalidMembers, MembersDoNotFit
from clusterbench.engine.hardware import JOB_DEVICE_ENV
from clusterbench.engine.launch import acquire_gpu, device_for, release_gpus
from clusterbench.engine.loop import fit, fit_members
from clusterbench.engine.loggers import say
from clusterbench.engine.results import write_failure
from clusterbench.engine.resume import job_state, prepare_resume
from clusterbench.engine.sweep import LOCK, created_run_dir, hydra_files_subdir, job_folder_name, read_results
from clusterbench.engine.throughput import throughput_text
from clusterbench.errors import ClusterbenchError, ConfigError, RunFolderError, TrainingError, first_line

CONFIG_DIR = config_dir()  # configs/ of the checkout, or clusterbench/configs/ in an installed wheel
# run folders are named with ${cb_now:...}: Hydra's `now`, except under torchrun, where every
# rank uses rank 0's start time so that all of them name the same folder
OmegaConf.register_new_resolver("cb_now", run_stamp, use_cache=True, replace=True)
# multirun job folders are named by their config (engine/sweep.py)
OmegaConf.register_new_resolver("cb_job", job_folder_name, replace=True)
# a re-run of a sweep leaves the .hydra/ files of the finished jobs it skips as they are
OmegaConf.register_new_resolver("cb_hydra_subdir", hydra_files_subdir, replace=True)


def run(cfg: DictConfig, run_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validates the config (nothing loaded yet), then trains and evaluates. With `resume`,
    continues that folder's run (engine/resume.py): a finished run with nothing more to
    train is left as it is and its results are returned."""
    meta = dict(meta or {})
    if cfg.get("resume"):
        cfg, run_dir, meta, results = prepare_resume(cfg, meta, check_config)
        if results is not None:
            return results
    else:
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
    return f"silhouette {m['silhouette']:.4f}  Calinski-Harabasz {m['calinski_harabasz']:.1f}  cluster sizes {m['cluster_sizes']} (no labels)"


def _label_selected(selection: dict[str, Any]) -> str:
    """What read the labels: the epoch rule (best_acc) and/or a method's candidate choice."""
    parts = []
    if selection.get("rule") == "best_acc":
        parts.append("epoch by best ACC")
    candidate = selection.get("candidate") or {}
    if candidate.get("uses_labels"):
        parts.append(f"{candidate.get('chosen')} chosen by best ACC")
    return ", ".join(parts) or "uses the labels"


def prepare_job(cfg: DictConfig) -> dict[str, Any]:
    """A vectorised sweep's per-job step, run inside Hydra's run_job (which writes the job's
    folder and .hydra/ files): the validated, resolved config, its folder and its meta."""
    hydra_cfg = HydraConfig.get()
    if cfg.get("resume"):
        raise ConfigError("resume= is for one run folder; resume a vectorised member with resume=<member folder>")
    check_config(cfg)
    OmegaConf.resolve(cfg)  # ${...} must not be read later, under another job's Hydra state
    return {"cfg": cfg, "run_dir": Path(hydra_cfg.runtime.output_dir), "meta": {**job_meta(hydra_cfg), "sweep_job": True}}


def train_group(jobs: list[dict[str, Any]]) -> list[dict[str, Any] | BaseException]:
    """Trains one group of a vectorised sweep as one batched model; one outcome per job. A job
    already finished with its config (a re-run of the sweep) is skipped; unfinished members
    are trained afresh (a batched model does not resume single members). A failure of the whole
    group (a config error) is recorded in every member's folder."""
    done: dict[int, dict[str, Any] | BaseException] = {}
    for i, job in enumerate(jobs):
        action, why = job_state(job["cfg"], job["run_dir"])
        if action == "skip":
            done[i] = read_results(job["run_dir"])
            print(f"skipped: {job['run_dir']}: {why}", flush=True)  # not into its train.log: the folder is not this run's
        elif action == "refuse":
            done[i] = RunFolderError(f"{job['run_dir']}: {why}")
    todo = [job for i, job in enumerate(jobs) if i not in done]
    trained_iter = iter(_fit_group(todo))
    outcomes = [done[i] if i in done else next(trained_iter) for i in range(len(jobs))]
    for job, outcome in zip(jobs, outcomes):
        if isinstance(outcome, BaseException):
            say(f"error: {job['run_dir']} [{' '.join(job['meta']['overrides'])}]: {outcome}", error=True)
        else:
            say(summary_line(outcome, job["meta"], job["run_dir"]))
    return outcomes


def _fit_group(todo: list[dict[str, Any]]) -> list[dict[str, Any] | BaseException]:
    """fit_members on a group's unfinished jobs; a group whose stacked model would not fit in
    memory is split into parts that do (checked before anything trains)."""
    if not todo:
        return []
    invalid: dict[int, ConfigError] = {}
    try:
        return fit_members([j["cfg"] for j in todo], [j["run_dir"] for j in todo], [j["meta"] for j in todo])
    except MembersDoNotFit as err:
        say(f"vectorised: {err}; training {len(todo)} members {err.fits} at a time")
        fits = err.fits
    except InvalidMembers as err:  # members whose own config fails: they alone fail
        invalid = err.errors
    except ClusterbenchError as err:
        for job in todo:
            record_failure(job["cfg"], job["run_dir"], job["meta"], err)
        return [err] * len(todo)
    # outside the except block: the error's traceback (and the frames of the fit that raised
    # it, with their data) is released before the parts train
    if invalid:
        for i, err in invalid.items():
            record_failure(todo[i]["cfg"], todo[i]["run_dir"], todo[i]["meta"], err)
        trained = iter(_fit_group([job for i, job in enumerate(todo) if i not in invalid]))
        return [invalid[i] if i in invalid else next(trained) for i in range(len(todo))]
    return [outcome for start in range(0, len(todo), fits) for outcome in _fit_group(todo[start : start + fits])]


# what a failed multirun job returns: NaN, which Optuna records as a failed trial and goes on
# (None would stop its search)
FAILED_JOB_VALUE = float("nan")


def _is_multirun(hydra_cfg) -> bool:
    return hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN"


# multirun job folders this process skipped (finished with their config): nothing is written
# into them, not even a line of their train.log
skipped_folders: set[Path] = set()


def sweep_job(cfg: DictConfig, run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """One job of a multirun, re-runnable: a job already finished with this config is skipped
    (its results are returned), one with a checkpoint of this config but no results.json (it
    was killed) is resumed from it, anything else trains afresh (engine/sweep.py); a folder
    holding a finished run of another config is refused (RunFolderError), never overwritten."""
    if cfg.get("resume"):
        return run(cfg, run_dir, meta)
    check_config(cfg)  # a wrong key fails with its name here, before the folder is looked at
    action, why = job_state(cfg, run_dir)
    if action == "skip":
        results = read_results(run_dir)
        print(f"skipped: {run_dir}: {why}", flush=True)  # not into its train.log: the folder is not this run's
        skipped_folders.add(Path(run_dir))
        return results
    if action == "refuse":
        raise RunFolderError(f"{run_dir}: {why}")
    if action == "resume":
        say(f"resuming: {run_dir}: {why}")
        with open_dict(cfg):
            cfg.resume = str(run_dir)
    return run(cfg, run_dir, {**meta, "sweep_job": True})


def record_failure(cfg: DictConfig, run_dir: Path, meta: dict[str, Any], error: BaseException | str) -> None:
    """results.json with status failed for a job that stopped before the engine wrote one (a
    config error, a bug): the sweep summary lists it and a re-run of the sweep trains it again.
    Nothing is written into a folder that holds another run (RunFolderError), nor onto a disk
    that could not take the run's files (DiskWriteError: the folder's checkpoint, if any, stays
    resumable, and a re-run of the sweep resumes it)."""
    if isinstance(error, (RunFolderError, DiskWriteError)):
        return
    write_failure(Path(run_dir), cfg, meta, str(error) if isinstance(error, ClusterbenchError) else error)


def _remove_if_created(run_dir: Path) -> None:
    """A run folder this run created, holding nothing of a run (only Hydra's .hydra/, train.log
    and the lock): removed after a config error, so no empty folders pile up."""
    if Path(run_dir) not in created_run_dir or not run_dir.is_dir():
        return
    if {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log", LOCK}:
        shutil.rmtree(run_dir, ignore_errors=True)


def _single_run(cfg: DictConfig, run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """A single run's errors as one line each, with exit status 2 (a config or data problem),
    1 (training stopped, disk full) or 130 (interrupted, with the command that resumes)."""
    try:
        return run(cfg, run_dir, meta)
    except TrainingError as err:
        say(f"error: {err}", error=True)
        sys.exit(1)
    except ClusterbenchError as err:
        say(f"error: {err}", error=True)
        if not isinstance(err, RunFolderError):
            _remove_if_created(run_dir)
        sys.exit(2)
    except KeyboardInterrupt:
        folder = cfg.get("resume") or run_dir
        say(f"interrupted: the last checkpoint in {folder} is kept; continue with: python -m clusterbench.train resume={folder}", error=True)
        sys.exit(130)
    except (OSError, RuntimeError) as err:
        cause = storage_error(err)
        if cause is None:
            raise
        say(f"error: {disk_write_message(cause, Path(cfg.get('resume') or run_dir))}", error=True)
        sys.exit(1)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    meta = job_meta(hydra_cfg)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if not _is_multirun(hydra_cfg):
        results = _single_run(cfg, run_dir, meta)
        run_dir = Path(cfg.resume) if cfg.get("resume") else run_dir
    else:
        # one bad job never stops the sweep: whatever it raises is recorded in its results.json
        # (a traceback for a non-clusterbench error in error.txt) and listed by the summary
        try:
            gpus = cfg.get("launcher_gpus")
            if gpus:  # +launcher=local_gpus: this job holds one GPU while it runs
                gpu = acquire_gpu(list(gpus), int(hydra_cfg.job.num), Path(hydra_cfg.sweep.dir) / ".gpus")
                os.environ[JOB_DEVICE_ENV] = device_for(gpu)
                say(f"job {hydra_cfg.job.num}: GPU {gpu}")
            results = sweep_job(cfg, run_dir, meta)
        except ClusterbenchError as err:
            say(f"error: {run_dir}: {err}", error=True)
            record_failure(cfg, run_dir, meta, err)
            return FAILED_JOB_VALUE
        except Exception as err:  # noqa: BLE001 - a bug in one job must not lose the others
            message = f"{type(err).__name__}: {first_line(err)}"
            say(f"error: {run_dir}: {message} (traceback in {run_dir / 'error.txt'})", error=True)
            write_text(run_dir / "error.txt", traceback.format_exc())
            record_failure(cfg, run_dir, meta, message)
            return FAILED_JOB_VALUE
        finally:
            release_gpus()
            os.environ.pop(JOB_DEVICE_ENV, None)
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
