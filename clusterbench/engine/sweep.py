"""Run folders and resumable sweeps: job folder names, one process per folder (its lock), the
checks before a fresh run claims a folder, the .hydra/ files, and the sweep summary. What a
re-run does with a job's folder (skip, resume, train afresh) is engine/resume.py's `job_state`.

- Hydra callbacks (configs/train.yaml, hydra.callbacks): `OutputFolderCheck` reports an
  output folder that cannot be written in one line before Hydra writes anything into it, and
  `SweepSummary` ends a multirun with a summary of its jobs (sweep_summary.json, written
  atomically) listing the failed, unfinished and running ones, and exit status 1 when any
  failed or is unfinished.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from clusterbench.engine.checkpoint import checkpoint_files, write_json, write_text
from clusterbench.engine.provenance import config_hash
from clusterbench.errors import RunFolderError, first_line

SUMMARY = "sweep_summary.json"
LOCK = ".lock"
# what a run writes into its folder (besides Hydra's .hydra/ and train.log): a fresh run into a
# folder that holds a failed run's files (or an overwrite=true run) removes them first, so that
# no stale file of an earlier run survives next to the new ones
ARTEFACTS = ("results.json", "metrics.csv", "predictions.npz", "embedding.npz", "error.txt", "checkpoints")
# the most characters of a job folder's name spent on its overrides (the hash tells jobs apart)
NAME_OVERRIDES_CHARS = 100
# overrides a job folder's name leaves out: model and dataset lead the name, and these do not
# change what is computed (the hash still sees every key)
# overrides that do not tell two jobs apart (where they write, log, how many threads they use,
# what a finished run keeps on disk)
NOT_IDENTIFYING = r"^[+~]*(trainer\.progress|trainer\.checkpoint_when_done|hardware\.num_threads|paths\.[^=]*|hydra\.[^=]*|logger[^=]*)="
NAME_QUIET = r"^[+~]*(model|dataset|launcher|hardware|logger|trainer\.progress|trainer\.checkpoint_when_done|paths\.[^=]*)="


# --- job folder names --------------------------------------------------------------------------


def job_folder_name(model: str, dataset: str, _root_: DictConfig) -> str:
    """Resolver `cb_job` (configs/train.yaml's hydra.sweep.subdir): a multirun job's folder is
    named by its config, not its job number, so that a re-run of a sweep with another value list
    finds each config's own folder (skips, resumes or adds, never overwrites):
    `<model>_<dataset>_<the job's other overrides>_<first 8 hex digits of its config hash>`."""
    overrides = [str(o) for o in _root_.hydra.overrides.task if not re.match(NAME_QUIET, str(o))]
    # short overrides first (a sweep's values: seed=1, model.alpha=0.1), so a cut keeps them
    overrides.sort(key=len)
    text = re.sub(r"[^A-Za-z0-9._=+,-]+", "-", "_".join(overrides))[:NAME_OVERRIDES_CHARS].strip("-_")
    task = OmegaConf.masked_copy(_root_, [k for k in _root_ if k != "hydra"])
    digest = config_hash(task)[:8]
    return "_".join(part for part in (model, dataset, text, digest) if part)


HYDRA_FILES = ".hydra"


def write_hydra_files(run_dir: Path, config=None, overrides=None, choices: dict[str, Any] | None = None) -> None:
    """A run folder's .hydra/ files as Hydra's run_job writes them, each atomically, for runs
    Hydra does not start (the Python API) and for what a resume changes: config.yaml (the
    task config), overrides.yaml (the overrides) and hydra.yaml (the groups' choices, which
    report and resume= read). Only the files given are written."""
    folder = Path(run_dir) / HYDRA_FILES
    if config is not None:
        write_text(folder / "config.yaml", OmegaConf.to_yaml(config))
    if overrides is not None:
        write_text(folder / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    if choices is not None:
        write_text(folder / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": {"runtime": {"choices": dict(choices)}}})))


def hydra_files_subdir(_root_: DictConfig) -> str | None:
    """Resolver `cb_hydra_subdir` (configs/train.yaml's hydra.output_subdir), read by Hydra just
    before it writes a job's .hydra/ files: None (write nothing) for a multirun job whose folder
    holds a finished run of this very config, which the job will skip, so that a re-run of a
    sweep leaves finished folders as they are (Hydra rewrote their hydra.yaml's job id and
    number); `.hydra` otherwise."""
    from hydra.core.hydra_config import HydraConfig

    try:
        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN"
        folder = Path(str(hydra_cfg.runtime.output_dir)) if multirun else None
    except ValueError:  # no Hydra context (a config composed outside a run)
        folder = None
    results = read_results(folder) if folder is not None else None
    if results is None or results.get("status") != "finished":
        return HYDRA_FILES
    task = OmegaConf.masked_copy(_root_, [k for k in _root_ if k != "hydra"])
    return None if results.get("config_sha256") == config_hash(task) else HYDRA_FILES


# --- one process per run folder ------------------------------------------------------------------

_locks: dict[str, int] = {}  # run folder -> the open, flock-ed descriptor of its .lock file
_claimed: set[str] = set()  # every run folder this process has locked (kept after unlocking)


def lock_run_folder(run_dir: Path) -> None:
    """Holds an exclusive lock on `run_dir`/.lock for the life of this process's run (or until
    `unlock_run_folder`). The kernel drops it when the process dies, however it dies, so a
    killed run never leaves its folder locked. RunFolderError when another process holds it."""
    run_dir = Path(run_dir)
    key = str(run_dir.resolve())
    if key in _locks:
        return
    path = run_dir / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderError(
                f"run folder {run_dir} is in use by another run (it holds {path}); wait for it or choose another folder"
            ) from None
        if _is_current(fd, path):
            break
        # its holder released the folder (and removed the file) between our open and our lock:
        # a lock on that file guards nothing, so lock the folder's current one
        os.close(fd)
    _locks[key] = fd
    _claimed.add(key)


def unclaimed_and_taken(run_dir: Path) -> bool:
    """For a run that stopped before claiming `run_dir` (this process never locked it): whether
    the folder is another run's, in use by another process or holding a checkpoint that waits
    to be resumed, so that nothing of this run may be written there."""
    if str(Path(run_dir).resolve()) in _claimed:
        return False
    return folder_in_use(run_dir) or (read_results(run_dir) is None and holds_checkpoint(run_dir))


def holds_checkpoint(run_dir: Path) -> bool:
    """Whether `run_dir` has a checkpoint a run could resume from (last.pt or its previous copy)."""
    return bool(checkpoint_files(run_dir))


def _is_current(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path`."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def unlock_run_folder(run_dir: Path) -> None:
    """Releases `run_dir` and removes its .lock, so a finished folder holds no empty lock file.
    The file goes while still locked: a process that opened it meanwhile finds, once it has the
    lock, that it is no longer the folder's file, and takes the new one (lock_run_folder)."""
    fd = _locks.pop(str(Path(run_dir).resolve()), None)
    if fd is None:
        return
    try:
        (Path(run_dir) / LOCK).unlink(missing_ok=True)
    except OSError:  # a read-only or vanished folder: the lock is released all the same
        pass
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def folder_in_use(run_dir: Path) -> bool:
    """Whether another process holds `run_dir`'s lock (probed without keeping it)."""
    path = Path(run_dir) / LOCK
    if str(Path(run_dir).resolve()) in _locks or not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # its run released the folder just now
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took
    return False


def occupied(run_dir: Path, overwrite: bool = False, unfinished_ok: bool = False) -> str | None:
    """Why a fresh run must not start in `run_dir` (None: it may): another process uses it, it
    holds a finished run, or (unless `unfinished_ok`) a killed run that can be resumed.
    `overwrite` allows the last two, never the first."""
    run_dir = Path(run_dir)
    if folder_in_use(run_dir):
        return f"run folder {run_dir} is in use by another run; wait for it or choose another folder"
    if overwrite:
        return None
    results = read_results(run_dir)
    if results is not None and results.get("status") == "finished":
        return f"run folder {run_dir} holds a finished run (results.json); choose another folder, or add overwrite=true to replace it"
    if results is None and not unfinished_ok and holds_checkpoint(run_dir):
        return f"run folder {run_dir} holds an unfinished run: continue it with resume={run_dir}, or add overwrite=true to start afresh"
    return None


def claim_fresh_folder(run_dir: Path, overwrite: bool = False, unfinished_ok: bool = False) -> None:
    """Before a fresh (not resumed) run: lock `run_dir`, refuse it when `occupied`, and remove
    the files an earlier failed (or overwritten) run left there."""
    run_dir = Path(run_dir)
    lock_run_folder(run_dir)
    problem = occupied(run_dir, overwrite, unfinished_ok)
    if problem is not None:
        unlock_run_folder(run_dir)
        raise RunFolderError(problem)
    for name in ARTEFACTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


# what a run folder holds before a run has written anything of its own: Hydra's files, the log,
# the lock, and the copy of the data the Python API writes
NOTHING_OF_A_RUN = frozenset({HYDRA_FILES, "train.log", LOCK, "input.npz"})


def remove_if_no_run(run_dir: Path) -> None:
    """Removes `run_dir` when it holds nothing of a run (NOTHING_OF_A_RUN only): a folder this
    run made, after a config or data error, so that no empty folders pile up (the command
    line's and the Python API's one rule)."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= NOTHING_OF_A_RUN:
        shutil.rmtree(run_dir, ignore_errors=True)


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """results.json of a run folder (None when absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return None


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


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


# the run folder of this process's single run, when this run created it (a config error then
# removes it again: no empty folders left behind, see clusterbench/train.py)
created_run_dir: list[Path] = []


class OutputFolderCheck(Callback):
    """Before Hydra creates or writes into the run (or sweep) folder, one line and exit status 2
    when it cannot be written, is in use by another run, or holds a finished run (a killed one:
    resume it). `resume=<folder>` makes that folder the run's output folder (no new folder, and
    Hydra keeps the folder's .hydra/ files: they describe the run being continued)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        from clusterbench.engine.distributed import secondary_rank

        if secondary_rank():
            return  # torchrun: rank 0 checks and locks the one run folder all ranks share

        # ${hydra:runtime.choices...} in hydra.run.dir resolves through HydraConfig, which Hydra
        # sets only later (in run_job); its value is the same then
        HydraConfig.instance().set_config(config)
        resume = config.get("resume")
        if resume:
            from clusterbench.engine.resume import not_a_run_folder

            folder = Path(str(resume))
            problem = not_a_run_folder(resume)
            if problem is not None:
                _refuse(problem)
            if folder_in_use(folder):
                _refuse(f"resume={resume}: run folder is in use by another run")
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.run.dir = str(folder)
                config.hydra.output_subdir = None
            return
        folder = str(config.hydra.run.dir)
        _check(folder, "hydra.run.dir")
        problem = occupied(Path(folder), bool(config.get("overwrite")))
        if problem is not None:
            _refuse(f"hydra.run.dir={folder}: {problem}")
        if not Path(folder).exists():
            created_run_dir.append(Path(folder))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(str(config.hydra.sweep.dir), "hydra.sweep.dir")


def summarize(sweep_dir: Path) -> dict[str, Any]:
    """Every job folder of a sweep (a folder with .hydra/) with its status: finished, failed
    (results.json says why), unfinished (no results.json: killed, or never started), running
    (another process holds its lock now) or superseded (failed or unfinished, but the same
    overrides finished in another folder)."""
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
        has_finished = results is not None and results.get("status") == "finished"
        if not has_finished and folder_in_use(folder):
            # another process trains it now (a second multirun over the same sweep folder); a
            # finished results.json wins: its process still holds the lock while it shrinks its
            # checkpoint, and a rerun removes results.json before it trains
            job["status"] = "running"
        elif results is None:
            job["status"] = "unfinished"
        else:
            job["status"] = results.get("status", "unknown")
            if job["status"] == "finished":
                job["metrics"] = {k: results["metrics"].get(k) for k in ("acc", "nmi", "ari")}
            else:
                job["error"] = results.get("error")
        jobs.append(job)

    # a failed or unfinished folder whose overrides (the same command-line job) later finished in
    # another folder, under a config whose defaults had changed (a new clusterbench version), is
    # superseded: the sweep holds that job's answer, and the old folder is kept, not counted as bad
    def identity(job: dict[str, Any]) -> tuple[str, ...]:
        return tuple(sorted(str(o) for o in job["overrides"] if not re.match(NOT_IDENTIFYING, str(o))))

    finished = {identity(job): job["folder"] for job in jobs if job["status"] == "finished"}
    for job in jobs:
        if job["status"] not in ("finished", "running") and identity(job) in finished:
            job.update(superseded=job["status"], status="superseded", by=finished[identity(job)])
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    return {"sweep_dir": str(sweep_dir), "n_jobs": len(jobs), "counts": counts, "jobs": jobs}


class SweepSummary(Callback):
    """At the end of a multirun: sweep_summary.json in the sweep folder, one line of counts,
    one line per failed, unfinished or running job, and exit status 1 when any failed or is
    unfinished (a job another process is running is not a failure of this one)."""

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
        # a job another process is running is not this multirun's failure; it is listed
        bad = [job for job in summary["jobs"] if job["status"] not in ("finished", "superseded", "running")]
        # the overrides that tell the jobs apart (those shared by every job say nothing)
        shared = set.intersection(*(set(job["overrides"]) for job in summary["jobs"])) if len(summary["jobs"]) > 1 else set()
        for job in bad + [job for job in summary["jobs"] if job["status"] == "running"]:
            own = " ".join(o for o in job["overrides"] if o not in shared)
            print(f"  {job['status']}: {job['folder']} [{own}] {job.get('error') or ''}".rstrip())
        if bad and self.exit_on_failure:
            sys.stdout.flush()
            raise SystemExit(1)
