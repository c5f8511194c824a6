"""One GPU per job for parallel sweeps on one machine (configs/launcher/local_gpus.yaml).

`launcher_gpus: [0, 1, 2, 3]` in the config makes each multirun job take one of those GPUs:
first the one its job number points at (job k -> gpus[k % n]), else any free one. A GPU is
held with an exclusive lock file in the sweep folder (`.gpus/gpu<id>.lock`) for the job's
whole life, so two jobs never share a GPU, even when jobs finish out of order and the
launcher's worker processes are reused (joblib/loky does reuse them). The job then trains on
`cuda:<id>` (through CLUSTERBENCH_JOB_DEVICE, read by engine/hardware.py, so the config and its
hash stay the same whichever GPU a job gets): a device index rather than CUDA_VISIBLE_DEVICES,
which cannot re-point a reused worker whose CUDA is already initialised.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from clusterbench.errors import ConfigError

_held: dict[str, int] = {}  # lock path -> file descriptor, for the life of the job


def acquire_gpu(gpus: list[int], job_num: int, lock_dir: Path) -> int:
    """The GPU this job holds (a non-blocking exclusive flock per GPU; the job's own GPU first)."""
    if not gpus:
        raise ConfigError("launcher_gpus=[]: name at least one GPU index")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    n = len(gpus)
    for offset in range(n):
        gpu = int(gpus[(job_num + offset) % n])
        path = lock_dir / f"gpu{gpu}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held[str(path)] = fd
        return gpu
    raise ConfigError(f"launcher_gpus={list(gpus)}: all {n} GPUs are held by other jobs of this sweep; set hydra.launcher.n_jobs <= {n}")


def release_gpus() -> None:
    while _held:
        _, fd = _held.popitem()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def device_for(gpu: int) -> str:
    """cuda:<gpu>: a device index, never CUDA_VISIBLE_DEVICES, which a reused worker process
    cannot change once its CUDA is initialised (its next job would see the wrong GPU list)."""
    return f"cuda:{gpu}"
