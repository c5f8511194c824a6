"""Atomic checkpoint and JSON writes, and RNG state capture for bit-exact resume (the resume
rules themselves: engine/resume.py)."""

from __future__ import annotations

import errno
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clusterbench.atomic import atomic_write_bytes
from clusterbench.errors import ClusterbenchError, TrainingError, first_line


class CheckpointError(ClusterbenchError):
    """A checkpoint file is missing or cannot be read; the message names the file."""


class DiskWriteError(TrainingError):
    """A run could not write a file (disk full, quota, read-only or failing disk); the message
    names the file and says what the run folder still holds."""


# errors of the disk itself, not of the run: one line, exit status 1
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def storage_error(err: BaseException | None) -> OSError | None:
    """The OSError of a full (or read-only, or failing) disk behind `err`: `err` itself, or
    the one torch's zip writer turns into `RuntimeError: [enforce fail at inline_container.cc]
    unexpected pos` (Python keeps it as the RuntimeError's context)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in STORAGE_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


def write_file(path: Path, write, before_replace=None) -> None:
    """atomic_write_bytes, where a disk that cannot take the file is an OSError naming `path`
    (the write's own OSError names no file, and torch's writer raises a RuntimeError)."""
    try:
        atomic_write_bytes(path, write, before_replace)
    except (OSError, RuntimeError) as err:
        cause = storage_error(err)
        if cause is None:
            raise
        raise OSError(cause.errno, cause.strerror or os.strerror(cause.errno), str(path)) from None


def disk_write_message(err: OSError, run_dir: Path) -> str:
    """One line for a file the run could not write: the error, the file, and whether the run
    folder holds a checkpoint to continue from (never claims one that is not there)."""
    what = err.strerror or first_line(err)
    where = f" writing {err.filename}" if err.filename else f" writing into {run_dir}"
    kept = next(iter(checkpoint_files(run_dir)), None)
    if kept is not None:
        return f"{what}{where}; the last checkpoint {kept} is kept: free some space, then continue with resume={run_dir}"
    return f"{what}{where}; no checkpoint had been written yet in {run_dir}: free some space and run again"


def save_checkpoint(path: Path, state: dict[str, Any], keep_previous: bool = False) -> None:
    """torch.save via a temporary file and a rename. With `keep_previous`, the file already at
    `path` is first renamed to previous.pt beside it, so that one good checkpoint survives
    whatever happens to the newest one (resume falls back to it: engine/resume.py)."""
    path = Path(path)

    def keep_the_last_one() -> None:
        # killed between the two renames: only previous.pt is there, and resume uses it
        if path.exists():
            os.replace(path, previous_checkpoint(path))

    write_file(path, lambda handle: torch.save(state, handle), keep_the_last_one if keep_previous else None)


def previous_checkpoint(path: Path) -> Path:
    return Path(path).with_name(PREVIOUS)


PREVIOUS = "previous.pt"


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The checkpoints a run in `run_dir` could resume from, in the order resume tries them:
    checkpoints/last.pt, then previous.pt (the copy kept while the newest is written)."""
    checkpoints = Path(run_dir) / "checkpoints"
    return [path for path in (checkpoints / "last.pt", checkpoints / PREVIOUS) if path.exists()]


CHECKPOINT_KEYS = ("epoch", "step", "method", "optimizers", "rng")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load with weights_only=True: tensors and plain Python values only, nothing a file
    could make Python execute (our checkpoints hold nothing else, see capture_rng)."""
    return torch.load(path, map_location="cpu", weights_only=True)


TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*m")  # torch's messages embed bold text


def _load_problem(err: Exception) -> str:
    """Why torch.load refused a file, in one line, without torch's advice to load it with
    weights_only=False (that would run whatever code the file holds)."""
    text = str(err)
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f"a Python object ({found.group(1)})" if found else "Python objects"
        return f"it holds {what} besides tensors and plain values, which clusterbench checkpoints never do; not loaded, as that could run code from the file"
    return f"{type(err).__name__}: {TERMINAL_CODES.sub('', first_line(err))}"


def read_checkpoint(path: Path, resume: bool = True) -> dict[str, Any]:
    """A checkpoint, or CheckpointError naming the file and what is wrong with it (missing,
    truncated, corrupted, not a clusterbench checkpoint). `resume=False`: a weights-only
    checkpoint will do (only the method state and the config are needed)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    try:
        state = load_checkpoint(path)
    except Exception as err:  # torch/zipfile/pickle raise many types for a damaged file
        raise CheckpointError(f"{path} is unreadable ({_load_problem(err)})") from None
    kind = state.get("kind", "full") if isinstance(state, dict) else None
    if resume and kind == "weights":
        raise CheckpointError(
            f"{path} holds weights only (trainer.checkpoint=weights or trainer.checkpoint_when_done=weights); "
            "resume needs trainer.checkpoint=full (and a finished run's trainer.checkpoint_when_done=extendable or full)"
        )
    needed = CHECKPOINT_KEYS if resume else ("method", "config")
    if kind == "extendable":  # a finished run's: resume restarts the optimisers
        needed = tuple(key for key in needed if key not in NOT_EXTENDABLE)
    if not isinstance(state, dict) or any(key not in state for key in needed):
        raise CheckpointError(f"{path} is not a clusterbench checkpoint (keys {', '.join(needed)} expected)")
    return state


# what an `extendable` last.pt drops: the optimisers' state (Adam's two moments: twice the weights)
NOT_EXTENDABLE = ("optimizers",)


def shrink_finished_checkpoints(folder: Path, mode: str) -> None:
    """What a finished run's checkpoints/ keeps (`trainer.checkpoint_when_done`):
    - extendable (default): last.pt without the optimisers' state (the method's state, config,
      evaluations, RNG streams and schedule position stay): enough for report, load_trained and
      resume= with a larger trainer.max_epochs, whose optimisers then start afresh;
    - full: as written during training (resume= with a larger max_epochs continues exactly as
      an uninterrupted longer run);
    - weights: last.pt with the method's state and config only (load_trained and report);
    - none: no checkpoint.
    previous.pt (the fallback while training) is deleted in all but full; epoch_XXXX.pt copies
    asked for with trainer.keep_checkpoints are left alone. Called only after results.json is
    written; config_check has already refused any other `mode`."""
    if mode == "full":
        return
    last = Path(folder) / "last.pt"
    if mode == "none":
        last.unlink(missing_ok=True)
    elif last.exists():
        state = load_checkpoint(last)
        if state.get("kind", "full") == "full":
            if mode == "weights":
                kept = {key: state[key] for key in ("epoch", "method", "config", "config_sha256") if key in state}
            else:
                kept = {key: value for key, value in state.items() if key not in NOT_EXTENDABLE}
            kept["kind"] = mode
            write_file(last, lambda handle: torch.save(kept, handle))
    (Path(folder) / PREVIOUS).unlink(missing_ok=True)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n"
    write_file(path, lambda handle: handle.write(text.encode()))


def write_text(path: Path, text: str) -> None:
    write_file(path, lambda handle: handle.write(text.encode()))


def capture_rng(generator: torch.Generator) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        # numpy's state as a tensor and plain values: loadable with weights_only=True
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "shuffle": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state() -> tuple:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> torch.Generator:
    """Seeds python, numpy and torch (all devices); returns the generator that shuffles batches."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
