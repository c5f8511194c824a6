"""What one command runs, below the command line: a run, a job of a multirun, a group of a
vectorised sweep, and what happens to each when it fails.

- `run`: check the config once (nothing loaded yet), or take a resumed folder's own config
  (engine/resume.py), then fit (engine/loop.py).
- `multirun_job`: one job of a `-m` sweep, re-runnable (skip, resume or train afresh, as
  engine/resume.py's `job_state` says) and never stopping the sweep: whatever it raises is
  recorded in its folder's results.json (a traceback of a non-clusterbench error in error.txt).
- `prepare_job` / `train_vectorised_group`: a vectorised sweep's per-job and per-group steps
  (+launcher=vectorized, engine/ensemble.py).

A single run's path, from the command to the loop, is four calls (Hydra's own frames aside):
    1. train.cli -> cli_errors.run_hydra(main)   command line; Hydra's errors as one line each
    2. Hydra composes the config -> train.main(cfg)   compose
    3. train.main -> jobs.run                     check the config, once (or take a resumed folder's)
    4. jobs.run -> FitRun(...).fit()              build (setup: hardware, data, method,
                                                  optimisers), then the epochs (engine/loop.py)
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from clusterbench.config_check import check_config
from clusterbench.console import say
from clusterbench.engine.checkpoint import DiskWriteError, write_text
from clusterbench.engine.ensemble import InvalidMembers, MembersDoNotFit, release_memory
from clusterbench.engine.hardware import JOB_DEVICE_ENV
from clusterbench.engine.launch import acquire_gpu, device_for, release_gpus
from clusterbench.engine.loop import FitRun, fit_members
from clusterbench.engine.results import write_failure
from clusterbench.engine.resume import job_state, prepare_resume
from clusterbench.engine.sweep import read_results, unclaimed_and_taken
from clusterbench.errors import ClusterbenchError, ConfigError, RunFolderError, first_line


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
    # FitRun directly, not through loop.fit: one call less between the command and the loop
    outcomes = FitRun([cfg], [Path(run_dir)], [meta]).fit()  # a one-member fit raises its TrainingError
    release_memory()  # a multirun's next job finds the fit's memory free
    return outcomes[0]


def job_meta(hydra_cfg) -> dict[str, Any]:
    """What results.json records of the command line: the groups' choices and the overrides."""
    return {
        "model": hydra_cfg.runtime.choices.get("model"),
        "dataset": hydra_cfg.runtime.choices.get("dataset"),
        "overrides": list(hydra_cfg.overrides.task),
    }


# --- a job of a multirun ---------------------------------------------------------------------------

# multirun job folders this process skipped (finished with their config): nothing is written
# into them, not even a line of their train.log
skipped_folders: set[Path] = set()


def sweep_job(cfg: DictConfig, run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """One job of a multirun, re-runnable: a job already finished with this config is skipped
    (its results are returned), one with a checkpoint of this config but no results.json (it
    was killed) is resumed from it, anything else trains afresh (engine/resume.py); a folder
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


def multirun_job(cfg: DictConfig, run_dir: Path, meta: dict[str, Any], hydra_cfg) -> dict[str, Any] | None:
    """`sweep_job` under the sweep's failure policy: one bad job never stops the sweep. Its
    results, or None when it failed: then one line says why, and its results.json (and, for a
    non-clusterbench error, error.txt with the traceback) records it for the sweep summary."""
    try:
        gpus = cfg.get("launcher_gpus")
        if gpus:  # +launcher=local_gpus: this job holds one GPU while it runs
            gpu = acquire_gpu(list(gpus), int(hydra_cfg.job.num), Path(hydra_cfg.sweep.dir) / ".gpus")
            os.environ[JOB_DEVICE_ENV] = device_for(gpu)
            say(f"job {hydra_cfg.job.num}: GPU {gpu}")
        return sweep_job(cfg, run_dir, meta)
    except ClusterbenchError as err:
        say(f"error: {run_dir}: {err}", error=True)
        record_failure(cfg, run_dir, meta, err)
    except Exception as err:  # noqa: BLE001 - a bug in one job must not lose the others
        message = record_crash(cfg, run_dir, meta, err)
        say(f"error: {run_dir}: {message} (traceback in {run_dir / 'error.txt'})", error=True)
    finally:
        release_gpus()
        os.environ.pop(JOB_DEVICE_ENV, None)
    return None


def record_crash(cfg: DictConfig, run_dir: Path, meta: dict[str, Any], err: BaseException) -> str:
    """A run stopped by an unexpected error (a bug, not bad input): its traceback in error.txt
    and results.json with status failed, so the folder says what happened; the error's one-line
    form is returned. Call it inside the `except` block (the traceback is the current one). A
    folder whose results.json says finished keeps it: that run did finish (a resume that adds
    nothing to train cannot fail; one that does continues from its checkpoint)."""
    message = f"{type(err).__name__}: {first_line(err)}"
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or unclaimed_and_taken(run_dir):
        return message  # the folder is not this run's: the traceback stays on the screen only
    write_text(run_dir / "error.txt", traceback.format_exc())
    if (read_results(run_dir) or {}).get("status") != "finished":
        write_failure(run_dir, cfg, meta, message)
    return message


def record_failure(cfg: DictConfig, run_dir: Path, meta: dict[str, Any], error: BaseException | str) -> None:
    """results.json with status failed for a job that stopped before the engine wrote one (a
    config error, a bug): the sweep summary lists it and a re-run of the sweep trains it again.
    Nothing is written into a folder that holds another run (RunFolderError), nor onto a disk
    that could not take the run's files (DiskWriteError: the folder's checkpoint, if any, stays
    resumable, and a re-run of the sweep resumes it), nor, when the run stopped before claiming
    its folder, into a folder that another run uses or whose checkpoint waits to be resumed."""
    if isinstance(error, (RunFolderError, DiskWriteError)):
        return
    if unclaimed_and_taken(run_dir):
        return
    write_failure(Path(run_dir), cfg, meta, str(error) if isinstance(error, ClusterbenchError) else error)


# --- a vectorised sweep ----------------------------------------------------------------------------


def prepare_job(cfg: DictConfig) -> dict[str, Any]:
    """A vectorised sweep's per-job step, run inside Hydra's run_job (which writes the job's
    folder and .hydra/ files): the validated, resolved config, its folder and its meta."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    if cfg.get("resume"):
        raise ConfigError("resume= is for one run folder; resume a vectorised member with resume=<member folder>")
    check_config(cfg)
    OmegaConf.resolve(cfg)  # ${...} must not be read later, under another job's Hydra state
    return {"cfg": cfg, "run_dir": Path(hydra_cfg.runtime.output_dir), "meta": {**job_meta(hydra_cfg), "sweep_job": True}}


def train_vectorised_group(jobs: list[dict[str, Any]]) -> list[dict[str, Any] | BaseException]:
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
    return [done[i] if i in done else next(trained_iter) for i in range(len(jobs))]


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
