"""The Deep Divergence-based Clustering (DDC) loss, the clustering objective of SiMVC and CoMVC.

References: M. Kampffmeyer, S. Løkse, F. M. Bianchi, L. Livi, A.-B. Salberg, R. Jenssen,
"Deep divergence-based approach to clustering", Neural Networks 2019 (DDC); D. J. Trosten,
S. Løkse, R. Jenssen, M. Kampffmeyer, "Reconsidering Representation Alignment for Multi-view
Clustering", CVPR 2021 (SiMVC / CoMVC, Sec. 3.2: L_cluster = L_1 + L_2 + L_3).

With A (n x k) the soft assignments and K (n x n) a Gaussian kernel on the clustering module's
hidden representation:

    L_1 = d_CS(A, K)                     cluster separation and compactness
    L_2 = triu(A A^T) / C(n, 2)           orthogonality of the samples' assignment vectors
    L_3 = d_CS(M, K),  m_ij = exp(-||a_i - e_j||^2)   assignments pushed to the simplex corners

    d_CS(A, K) = 1 / C(k, 2) * sum_{i<j} (a_i^T K a_j) / sqrt(a_i^T K a_i * a_j^T K a_j)
    (a_i: the i-th column of A)

Pure functions; float32 (float64 stays float64) with autocast off.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gaussian_kernel", "cauchy_schwarz_divergence", "ddc_terms"]

EPS = 1e-9


def _as_float(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()


def _upper_sum(x: Tensor) -> Tensor:
    """Sum of the strictly upper triangular part."""
    return torch.triu(x, diagonal=1).sum()


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """||x_i - y_j||^2 for the rows of x and y (may be slightly negative by round-off)."""
    return (x * x).sum(1, keepdim=True) - 2 * x @ y.t() + (y * y).sum(1)


def gaussian_kernel(h: Tensor, rel_sigma: float = 0.15) -> Tensor:
    """k_ij = exp(-||h_i - h_j||^2 / (2 sigma^2)) with sigma^2 = rel_sigma * median_ij ||h_i - h_j||^2
    (the DDC papers' bandwidth: a fraction of the median squared distance, no gradient through
    it, at least 1e-9). The median is torch's lower median over all n^2 entries."""
    d = squared_distances(h, h).clamp_min(0)
    sigma2 = (rel_sigma * d.median()).detach().clamp_min(EPS)
    return torch.exp(-d / (2 * sigma2))


def cauchy_schwarz_divergence(a: Tensor, kernel: Tensor) -> Tensor:
    """d_CS(A, K) above: the mean over the k(k-1)/2 pairs of columns of their kernel-weighted
    cosine (numerator clamped at 1e-9, squared denominator at 1e-18, as in DDC's code)."""
    k = a.shape[1]
    if k < 2:
        raise ValueError(f"the Cauchy-Schwarz divergence needs at least 2 clusters, got {k}")
    nom = a.t() @ kernel @ a
    diag = torch.diagonal(nom)
    denom_sq = (diag[:, None] * diag[None, :]).clamp_min(EPS**2)
    return 2.0 / (k * (k - 1)) * _upper_sum(nom.clamp_min(EPS) / denom_sq.sqrt())


def ddc_terms(assignments: Tensor, hidden: Tensor, rel_sigma: float = 0.15) -> dict[str, Tensor]:
    """The three DDC terms {"ddc_1", "ddc_2", "ddc_3"} of soft assignments (n x k, rows on the
    simplex) and the hidden representation they were computed from (n x d)."""
    if assignments.dim() != 2 or hidden.dim() != 2 or assignments.shape[0] != hidden.shape[0]:
        raise ValueError(f"expected n x k assignments and n x d hidden features, got {tuple(assignments.shape)} and {tuple(hidden.shape)}")
    with torch.autocast(device_type=assignments.device.type, enabled=False):
        a, h = _as_float(assignments), _as_float(hidden)
        n, k = a.shape
        kernel = gaussian_kernel(h, rel_sigma)
        corners = torch.eye(k, dtype=a.dtype, device=a.device)
        m = torch.exp(-squared_distances(a, corners))
        return {
            "ddc_1": cauchy_schwarz_divergence(a, kernel),
            "ddc_2": 2.0 / (n * (n - 1)) * _upper_sum(a @ a.t()),
            "ddc_3": cauchy_schwarz_divergence(m, kernel),
        }
