"""Mutual-information bounds used by SDCIB (Super Deep Contrastive Information Bottleneck, ICML 2025).

Pure functions on tensors; log-sum-exp / softmax parts are computed in float32
(float64 stays float64) with autocast disabled locally, so they can be called
inside ``torch.autocast`` on CPU or CUDA.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "gaussian_kl_to_standard_normal",
    "mine_lower_bound",
    "jsd_mine_term",
    "shuffle_pairs",
    "softmax_kl_term",
]


def _as_float(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()


def gaussian_kl_to_standard_normal(mu: Tensor, std: Tensor, dim: int | None = None) -> Tensor:
    """``KL( N(mu, diag(std^2)) || N(0, I) )``, summed over features, averaged over the batch.

    Per sample: ``0.5 * sum_d (mu_d^2 + std_d^2 - 1 - 2 log std_d)``.  This is
    the variational upper bound of ``I(X; H_l)`` with a standard-normal
    prior ``q(h_l)`` used by SDCIB (ICML 2025, Eq. 8-10).  ``mu`` and ``std``
    have shape ``(..., D)``; features are the last dimension, every leading
    dimension is averaged (with ``dim`` given, only that one: e.g. ``dim=-2`` keeps one value
    per member of a ``members x N x D`` batch).  ``std`` must be strictly positive.
    """
    if mu.shape != std.shape:
        raise ValueError(f"mu and std must have the same shape, got {tuple(mu.shape)} and {tuple(std.shape)}")
    with torch.autocast(device_type=mu.device.type, enabled=False):
        mu = _as_float(mu)
        std = _as_float(std)
        kl = 0.5 * (mu.pow(2) + std.pow(2) - 1.0 - 2.0 * std.log())
        kl = kl.sum(dim=-1)
        return kl.mean() if dim is None else kl.mean(dim if dim >= 0 else dim + 1)


def _flat(t: Tensor, name: str) -> Tensor:
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D or N x 1, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty")
    return _as_float(t)


def mine_lower_bound(t_joint: Tensor, t_marginal: Tensor, dim: int | None = None) -> Tensor:
    """Donsker-Varadhan lower bound on mutual information, as used by MINE.

    Belghazi et al., "Mutual Information Neural Estimation", ICML 2018::

        I(Y; H) >= E_{p(y,h)}[T] - log E_{p(y)p(h)}[exp T]
                 = mean(t_joint) - (logsumexp(t_marginal) - log n_marginal)

    SDCIB (ICML 2025) Eq. 12 is the negative of this quantity (the MINE loss).
    ``t_joint``: critic outputs on joint pairs; ``t_marginal``: critic outputs
    on product-of-marginals pairs (e.g. made with :func:`shuffle_pairs`).  Both
    1-D or ``N x 1``; with ``dim`` given, any shape, reduced along ``dim`` only (one bound per
    estimator when G critics are batched as ``G x N``).  (No moving-average bias correction of
    the gradient.)
    """
    if dim is not None:
        with torch.autocast(device_type=t_joint.device.type, enabled=False):
            tj, tm = t_joint.float(), t_marginal.float()
            return tj.mean(dim) - (torch.logsumexp(tm, dim=dim) - math.log(tm.shape[dim]))
    tj = _flat(t_joint, "t_joint")
    tm = _flat(t_marginal, "t_marginal")
    with torch.autocast(device_type=tj.device.type, enabled=False):
        return tj.mean() - (torch.logsumexp(tm, dim=0) - math.log(tm.numel()))


def jsd_mine_term(t_joint: Tensor, t_marginal: Tensor, dim: int | None = None) -> Tensor:
    """Jensen-Shannon MI estimator: ``-mean(softplus(-t_joint)) - mean(softplus(t_marginal))``.

    The JSD form of the MINE / Deep InfoMax bound (Hjelm et al., ICLR 2019),
    which the released SDCIB code uses in place of the Donsker-Varadhan bound
    of SDCIB Eq. 12.  Larger means more dependence.  Inputs as in
    :func:`mine_lower_bound` (with ``dim``: any shape, reduced along ``dim`` only).
    """
    if dim is not None:
        with torch.autocast(device_type=t_joint.device.type, enabled=False):
            return -F.softplus(-t_joint.float()).mean(dim) - F.softplus(t_marginal.float()).mean(dim)
    tj = _flat(t_joint, "t_joint")
    tm = _flat(t_marginal, "t_marginal")
    with torch.autocast(device_type=tj.device.type, enabled=False):
        return -F.softplus(-tj).mean() - F.softplus(tm).mean()


def shuffle_pairs(
    n: int,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device | str] = None,
) -> Tensor:
    """Random permutation of ``range(n)`` for drawing product-of-marginals samples.

    Pair ``y[i]`` with ``h[perm[i]]`` to approximate samples of ``p(y) p(h)``
    (MINE, Belghazi et al. 2018; SDCIB Eq. 12).  Not a derangement: a few
    pairs may stay matched.  ``generator`` is used if given (the permutation is
    drawn on the generator's device and moved to ``device``).
    """
    gen_device = generator.device if generator is not None else device
    perm = torch.randperm(n, generator=generator, device=gen_device)
    return perm if device is None else perm.to(device)


def softmax_kl_term(h: Tensor, reference: Tensor, dim: int | None = None) -> Tensor:
    """``mean_batch KL( softmax(h) || softmax(reference) )`` along the last dimension.

    Released-code variant of the ``I(X; H_l)`` compression term of SDCIB
    (ICML 2025): instead of the analytic Gaussian KL of Eq. 8-10 (see
    :func:`gaussian_kl_to_standard_normal`), the released implementation
    compares the softmax of the reparameterised sample ``h`` with the softmax
    of a standard-normal sample ``reference`` of the same shape.  Every
    leading dimension is averaged (with ``dim`` given, only that one).
    """
    if h.shape != reference.shape:
        raise ValueError(f"h and reference must have the same shape, got {tuple(h.shape)} and {tuple(reference.shape)}")
    with torch.autocast(device_type=h.device.type, enabled=False):
        log_p = F.log_softmax(_as_float(h), dim=-1)
        log_q = F.log_softmax(_as_float(reference), dim=-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
        return kl.mean() if dim is None else kl.mean(dim if dim >= 0 else dim + 1)
