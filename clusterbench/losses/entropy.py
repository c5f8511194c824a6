"""Entropy helpers for soft cluster assignments.

All functions are pure: they take probability tensors and return a scalar
tensor.  Half / bfloat16 inputs are promoted to float32 (float64 stays float64)
so that the log terms are accurate under ``torch.autocast``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["entropy", "marginal_entropy", "mean_entropy", "EPS"]

#: Clamp applied to probabilities before taking the log (0 * log(eps) == 0).
EPS = 1e-12


def _as_float(x: Tensor) -> Tensor:
    """Promote to at least float32 (keeps float64)."""
    return x if x.dtype == torch.float64 else x.float()


def entropy(p: Tensor, dim: int = -1) -> Tensor:
    """Shannon entropy ``H(p) = -sum_k p_k log p_k`` along ``dim`` (natural log).

    ``p`` must already be normalised along ``dim``.  ``log`` is taken of
    ``p.clamp_min(EPS)`` so that empty entries contribute exactly 0 and the
    result (and its gradient) stays finite.
    """
    p = _as_float(p)
    return -(p * p.clamp_min(EPS).log()).sum(dim=dim)


def marginal_entropy(p: Tensor) -> Tensor:
    """Entropy of the mean assignment of an ``N x K`` probability matrix.

    ``H(mean_n p_n)``: large when the clusters are used evenly.  This is the
    cluster-size entropy ``H(P)`` of Contrastive Clustering (Li et al.,
    AAAI 2021, Eq. 6) when the rows of ``p`` sum to one.
    """
    if p.dim() != 2:
        raise ValueError(f"expected an N x K matrix, got shape {tuple(p.shape)}")
    return entropy(_as_float(p).mean(dim=0))


def mean_entropy(p: Tensor) -> Tensor:
    """Mean per-row entropy ``(1/N) sum_n H(p_n)`` of an ``N x K`` probability matrix.

    Small when every sample is confidently assigned to one cluster.
    """
    if p.dim() != 2:
        raise ValueError(f"expected an N x K matrix, got shape {tuple(p.shape)}")
    return entropy(p, dim=1).mean()
