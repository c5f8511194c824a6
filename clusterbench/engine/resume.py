"""Resume: continuing the run a run folder holds. Every resume rule lives here.

1. **Which config.** `resume=<folder>` continues the run with the config the folder was started
   with (its .hydra/config.yaml), never the one this command line would compose
   (`load_resumed_config`). A folder without .hydra/config.yaml is not a run folder: one line.
2. **What may change.** Only SAFE_ON_RESUME: more epochs, and settings that do not change what
   is computed. Any other override is a ConfigError naming it (the run continues with its own
   config). The applied ones are recorded in the folder's .hydra/ files (a later resume
   continues from them) and in results.json's `resume_overrides`.
3. **Nothing to do.** A finished run (results.json) with no more epochs to train is left as it
   is and its results returned (`finished_already`).
4. **Which checkpoint.** checkpoints/last.pt, or previous.pt beside it when last.pt is missing
   or damaged, with one warning line (`checkpoint_to_continue`); neither readable, or a changed
   dataset file, or trainer.max_epochs below the checkpoint's epoch: one line naming it.
5. **Optimisers restarted.** A finished run's `extendable` checkpoint keeps no optimiser state:
   the optimisers start afresh at its epoch from its weights; the epochs where that happened
   are kept in later checkpoints and results.json (`optimizers_restarted_at`).
6. **Sweep re-runs.** A multirun job whose folder holds a finished run of its config is skipped,
   one with a checkpoint of its config and no results.json (killed) is resumed, anything else
   trains afresh; a finished run of another config is never overwritten (`job_state`).
7. **One-step methods** (k-means) have no epochs to continue: they are fitted again, same seed
   (engine/loop.py's FitRun.restore).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from clusterbench.console import say
from clusterbench.engine.checkpoint import CheckpointError, checkpoint_files, previous_checkpoint, read_checkpoint
from clusterbench.engine.provenance import config_hash
from clusterbench.engine.sweep import read_results, write_hydra_files
from clusterbench.errors import ConfigError

# what `resume=<folder> key=value` may change: more epochs, and settings that do not change what
# is computed; anything else is refused in one line (the run continues with its own config)
SAFE_ON_RESUME = (
    "trainer.max_epochs",
    "trainer.progress",
    "trainer.eval_batch_size",
    "trainer.checkpoint_every",
    "trainer.checkpoint_interval_s",
    "trainer.checkpoint_when_done",
    "hardware.num_threads",
)


# --- 1-3: the config a resume continues with -----------------------------------------------------


def not_a_run_folder(resume: Path | str) -> str | None:
    """Why `resume=<folder>` cannot continue that folder (None: it can be tried)."""
    saved = Path(str(resume)) / ".hydra" / "config.yaml"
    return None if saved.exists() else f"resume={resume}: not a run folder ({saved} is missing)"


def _saved(run_dir: Path, name: str):
    path = run_dir / ".hydra" / name
    return OmegaConf.load(path) if path.exists() else None


def load_resumed_config(cfg: DictConfig, overrides: list[str] | None = None) -> tuple[DictConfig, Path, dict[str, Any]]:
    """The config a run folder was started with, so that `resume=<folder>` continues that run,
    with the safe `overrides` of this command line applied (SAFE_ON_RESUME; others are a
    ConfigError); and the run's own meta (its model, dataset and overrides, the applied ones
    appended), which results.json records."""
    run_dir = Path(cfg.resume)
    problem = not_a_run_folder(cfg.resume)
    if problem is not None:
        raise ConfigError(problem)
    resumed = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    saved_overrides = [str(o) for o in (_saved(run_dir, "overrides.yaml") or [])]
    hydra_saved = _saved(run_dir, "hydra.yaml")
    choices = dict(hydra_saved.hydra.runtime.choices) if hydra_saved is not None else {}
    wanted = [o for o in overrides or [] if not o.startswith(("resume=", "overwrite=", "+overwrite="))]
    applied = []
    for override in OverridesParser.create().parse_overrides(wanted):
        key = override.key_or_group
        value = None if override.is_delete() else override.value()
        if key in choices and str(value) == str(choices[key]):
            continue  # the group option the run was started with
        current = OmegaConf.select(resumed, key, default=None)
        if not override.is_delete() and key not in choices and current == value:
            continue  # the value the run has
        if override.input_line in saved_overrides and not isinstance(current, (int, float, str, bool)):
            continue  # a group the run was started with (e.g. +experiment=...)
        if key not in SAFE_ON_RESUME or override.is_delete():
            raise ConfigError(
                f"resume={cfg.resume}: {override.input_line} cannot change on resume (the run continues with its own config; "
                f"only {', '.join(SAFE_ON_RESUME)} may); start a new run for another config"
            )
        OmegaConf.update(resumed, key, value, merge=False, force_add=True)
        applied.append(f"{key}={override.get_value_element_as_str()}")
    with open_dict(resumed):
        resumed.resume = str(run_dir)
    keys = {o.split("=", 1)[0].lstrip("+~") for o in applied}
    meta = {
        "model": choices.get("model"),
        "dataset": choices.get("dataset"),
        "overrides": [o for o in saved_overrides if o.split("=", 1)[0].lstrip("+~") not in keys] + applied,
        "resume_overrides": applied,
    }
    return resumed, run_dir, meta


def record_resume_overrides(run_dir: Path, cfg: DictConfig, meta: dict[str, Any]) -> None:
    """The folder's .hydra/config.yaml and overrides.yaml after a resume that changed a safe
    setting: they describe the run as it now is (a later resume continues from that)."""
    config = OmegaConf.to_container(cfg, resolve=False)
    config.pop("resume", None)
    write_hydra_files(run_dir, config=OmegaConf.create(config), overrides=meta["overrides"])


def finished_already(run_dir: Path, max_epochs: int) -> dict[str, Any] | None:
    """results.json of a finished run with nothing more to train (a one-step method, or
    trainer.max_epochs not above its epochs), else None."""
    results = read_results(run_dir)
    epochs = int((results or {}).get("epochs") or 0)  # 0: a method without training (k-means)
    if results is not None and results.get("status") == "finished" and (epochs == 0 or int(max_epochs) <= epochs):
        more = "" if epochs == 0 else " (trainer.max_epochs=N continues it)"
        say(f"resume={run_dir}: the run finished already (results.json); nothing to do{more}")
        return results
    return None


def prepare_resume(cfg: DictConfig, meta: dict[str, Any], check) -> tuple[DictConfig, Path, dict[str, Any], dict[str, Any] | None]:
    """`resume=<folder>` before anything is built: (the run's own config with the safe overrides
    applied and checked by `check`, its folder, its meta, and its results when it finished
    already and there is nothing to do)."""
    cfg, run_dir, resumed_meta = load_resumed_config(cfg, meta.get("overrides"))
    meta = {**meta, **resumed_meta}
    check(cfg)
    results = finished_already(run_dir, cfg.trainer.max_epochs)
    if results is None and meta["resume_overrides"]:
        record_resume_overrides(run_dir, cfg, meta)
        say(f"resuming {run_dir} with {' '.join(meta['resume_overrides'])}")
    return cfg, run_dir, meta, results


# --- 4-5: the checkpoint a resume continues from ------------------------------------------------


def load_latest_checkpoint(path: Path, warn=None) -> tuple[dict[str, Any], Path]:
    """The checkpoint at `path` (checkpoints/last.pt), or, when that one is missing or damaged,
    the previous.pt beside it, with one line through `warn` saying so. CheckpointError (one
    line, both files named) when neither can be read."""
    try:
        return read_checkpoint(path), Path(path)
    except CheckpointError as first:
        previous = previous_checkpoint(path)
        try:
            state = read_checkpoint(previous)
        except CheckpointError as second:
            raise CheckpointError(f"no usable checkpoint: {first}; {second}") from None
        if warn is not None:
            warn(f"warning: {first}; resuming from {previous} (epoch {state['epoch']})")
        return state, previous


def checkpoint_to_continue(path: Path, resume: str, dataset_checksum: str, max_epochs: int) -> dict[str, Any]:
    """The checkpoint state `resume=<folder>` continues from (rule 4), checked against the data
    and the schedule; ConfigError (one line) when there is none to continue from."""
    try:
        state, _ = load_latest_checkpoint(path, warn=lambda line: say(line, error=True))
    except CheckpointError as err:
        raise ConfigError(f"resume={resume}: {err}") from None
    if state["dataset_checksum"] != dataset_checksum:
        raise ConfigError(f"resume={resume}: dataset file changed since the run started (checksum differs)")
    if state["epoch"] > max_epochs:
        raise ConfigError(f"resume={resume}: trainer.max_epochs={max_epochs} is below the checkpoint's epoch {state['epoch']}")
    return state


def optimizers_restarted(state: dict[str, Any], resume: str) -> list[int]:
    """The epochs after which the optimisers started afresh (rule 5): the checkpoint's own list,
    plus its epoch when it keeps no optimiser state (a finished run's extendable checkpoint)."""
    restarted = list(state.get("optimizers_restarted_at", []))
    if "optimizers" not in state:
        restarted.append(int(state["epoch"]))
        say(
            f"resume={resume}: the finished run kept no optimiser state (trainer.checkpoint_when_done=extendable); "
            f"the optimisers start afresh at epoch {state['epoch']} from its weights",
            error=True,
        )
    return restarted


# --- 6: sweep re-runs -----------------------------------------------------------------------------


def job_state(cfg: DictConfig, run_dir: Path) -> tuple[str, str]:
    """("skip" | "resume" | "fresh" | "refuse", why) for a multirun job about to run in `run_dir`."""
    run_dir = Path(run_dir)
    wanted = config_hash(cfg)
    results = read_results(run_dir)
    if results is not None:
        if results.get("config_sha256") != wanted:
            if results.get("status") == "finished":
                return "refuse", "it holds a finished run of another config (never overwritten; use another hydra.sweep.dir)"
            return "fresh", "its results.json is from another config"
        if results.get("status") == "finished":
            return "skip", "finished with this config"
        return "fresh", f"it failed before ({results.get('error', 'no message')})"
    for path in checkpoint_files(run_dir):
        try:
            state = read_checkpoint(path)
        except CheckpointError:
            continue  # a damaged last.pt: previous.pt may still do (resume falls back to it)
        saved = state.get("config_sha256") or (config_hash(state["config"]) if "config" in state else None)
        if saved == wanted:
            return "resume", f"unfinished, checkpoint of epoch {state['epoch']}"
        return "fresh", "its checkpoint is from another config"
    return "fresh", "nothing there yet"
