"""torch.distributed helpers for `hardware=ddp` (one job on several processes, torchrun).

The tensor collectives a method's loss uses (`gather`, `gather_nograd`, `own_rows`,
`broadcast_`, `mean_over_ranks`, the rank queries) live in clusterbench/collectives.py, so
methods need not import the engine; they are re-exported here. Every helper is the identity (or
a no-op) in a single process, so methods and the loop call them unconditionally and
single-process runs are unchanged bit for bit.

How a DDP step equals the single-process step on the global batch: each rank holds B/W of the
global batch of B samples (the same global batches as one process, split in rank order). A
contrastive loss gathers embeddings and assignments with `gather` (differentiable: backward
gives each rank the SUM over ranks of the gradient of its own rows), so every rank computes the
loss of the whole global batch; per-sample terms stay local means. `average_gradients` then
averages the parameter gradients over ranks before each optimiser step. For a global term the
W identical per-rank losses give W x the gradient through the gather, divided by W; for a local
mean the average of W local means is the global mean: both equal the one-process gradient
(tests/test_ddp.py checks this to 1e-5 for CC and SDCIB, tests/test_ddp_methods.py for HTCN, DCSM,
PICI, VTCC and MFAVBs-CC).
"""

from __future__ import annotations

import os
from datetime import datetime

import torch
import torch.distributed as dist

# the tensor collectives live where methods can import them without the engine; re-exported here
from clusterbench.collectives import (  # noqa: F401
    broadcast_,
    gather,
    gather_nograd,
    is_distributed,
    is_main_process,
    mean_over_ranks,
    own_rows,
    rank,
    world_size,
)

# env vars torchrun sets for every process
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
RUN_STAMP_ENV = "CLUSTERBENCH_RUN_STAMP"


def launched_by_torchrun() -> bool:
    return all(k in os.environ for k in _ENV) and int(os.environ["WORLD_SIZE"]) > 1


def secondary_rank() -> bool:
    """A torchrun process other than rank 0 (known before the process group exists)."""
    return launched_by_torchrun() and int(os.environ["RANK"]) != 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def init_from_env(backend: str = "auto") -> None:
    """Joins the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT); a no-op
    when one exists. `auto`: gloo for CPU tensors and, with CUDA, nccl for CUDA tensors."""
    if dist.is_initialized():
        return
    if backend == "auto":
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)


@torch.no_grad()
def average_gradients(params) -> None:
    """Averages `.grad` over ranks in place (one flat all-reduce); a no-op in a single process.
    Every rank must have gradients for the same parameters (true for the methods' losses)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= world_size()
    for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        grad.copy_(synced)


@torch.no_grad()
def broadcast_module(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (all ranks start from the same weights)."""
    if not is_distributed():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, as torch DDP's
    broadcast_buffers does: each rank updates its own from its share of the batch, so before an
    evaluation every rank takes rank 0's, and the evaluated model is one model (rank 0's, the
    one its checkpoint holds: a resume is then exact on every rank)."""
    if not is_distributed():
        return
    for tensor in module.buffers():
        dist.broadcast(tensor.data, src=0)


def shard(n: int) -> tuple[torch.Tensor, int]:
    """This rank's contiguous share of range(n), padded (by repeating its last index, or index
    0 for an empty share) to ceil(n / W) so all ranks gather equal shapes; with its real length.
    Concatenating the gathered shares in rank order and keeping the first n rows drops the
    padding (it only ever sits after the last real sample)."""
    w, r = world_size(), rank()
    per = -(-n // w)
    start, stop = min(r * per, n), min((r + 1) * per, n)
    index = torch.arange(start, stop)
    if len(index) < per:
        fill = index[-1:] if len(index) else torch.zeros(1, dtype=torch.long)
        index = torch.cat([index, fill.repeat(per - len(index))])
    return index, stop - start


def run_stamp(pattern: str) -> str:
    """Resolver `cb_now` (configs/train.yaml's run folders): the time of rank 0's start under
    torchrun (shared through CLUSTERBENCH_RUN_STAMP), so every rank names the same folder; the
    current time otherwise, as Hydra's `now`."""
    stamp = os.environ.get(RUN_STAMP_ENV)
    moment = datetime.fromtimestamp(float(stamp)) if stamp else datetime.now()
    return moment.strftime(pattern)


def share_run_stamp() -> None:
    """Under torchrun, before Hydra composes: joins the process group and gives every rank rank
    0's start time, so `${cb_now:...}` resolves to the same run folder on all of them."""
    if not launched_by_torchrun() or RUN_STAMP_ENV in os.environ:
        return
    import time

    init_from_env()
    box = [time.time()]
    dist.broadcast_object_list(box, src=0)
    os.environ[RUN_STAMP_ENV] = repr(box[0])
