"""The tensor collectives a method's loss uses under `hardware=ddp`, importable without the engine.

Methods gather their batch-level quantities here; the engine (engine/distributed.py, which
re-exports these) owns the process group, the gradient averaging and the run-folder plumbing.
Every helper is the identity (or a no-op) in a single process, so methods call them
unconditionally and single-process runs are unchanged bit for bit. How a DDP step then equals
the one-process step on the global batch: engine/distributed.py's docstring.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist

# torch 2.x marks the differentiable all_gather deprecated (in favour of functional collectives);
# it still works, and tests/test_ddp.py checks that its backward sums over ranks as used here
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather is deprecated", category=FutureWarning)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def gather(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """`x` of every rank concatenated along `dim` in rank order, WITH gradients
    (torch.distributed.nn.functional.all_gather); `x` itself in a single process."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat([_ContiguousGrad.apply(part) for part in all_gather(x.contiguous())], dim=dim)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous. all_gather's backward (gloo) sends
    the gradients through scatter into `empty_like(grad)` buffers: for a non-contiguous gradient
    (a loss over the transposed batch, as CC's cluster-column loss) those buffers are strided
    and the received values land wrong, silently. Found by tests/test_ddp.py (torch 2.x)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


@torch.no_grad()
def gather_nograd(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """`gather` without gradients (predictions, pseudo-labels); every rank's `x` must have the
    same shape."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=dim)


def own_rows(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """This rank's equal share of a gathered `x` along `dim` (the inverse of `gather` for the
    rows this rank contributed); `x` itself in a single process."""
    if not is_distributed():
        return x
    share = x.shape[dim] // world_size()
    return x.narrow(dim, rank() * share, share)


@torch.no_grad()
def broadcast_(x: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank `src`'s `x` on every rank, in place (targets computed once, e.g. k-means
    pseudo-labels drawn with a rank's own random seed); `x` itself in a single process."""
    if is_distributed():
        dist.broadcast(x, src=src)
    return x


@torch.no_grad()
def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / world_size()
