"""Multi-view spectral clustering with an optimal neighbourhood Laplacian (ONMSC; Zhou, Liu,
Liu, Guo, Zhao, Zhu, Zhai, Yin & Gao, AAAI 2020): SDCIB Table 2's "ONMSC".

The paper's own update equations were not available to us; what is implemented is the problem
that the authors' released MATLAB code (github.com/xinwangliu/ONMSC, V9_MSC.m) minimises,
written out and solved block by block from that objective (not translated from the code).
docs/classic_multiview.md lists what this leaves undetermined.

Base Laplacians, per view p (m views): a Gaussian kernel K_p (median heuristic) kept on a
neighbourhood graph (each sample's tau = round(neighbor_rate N / k) nearest neighbours in the
average kernel, symmetrised), W_p; the first-order Laplacian L1_p = I - D^-1/2 W_p D^-1/2; the
high-order one L2_p = the normalised Laplacian of A_p^2 (A_p = D^-1/2 W_p D^-1/2, zero diagonal:
two-step connections). With L = I - V Lam V^T the optimal Laplacian in the neighbourhood of the
two combinations Lo(gamma) = sum_p gamma_p Lo_p (o = 1, 2):

    min  tr(H^T L H) + sum_o ||L - Lo(gamma)||_F^2 + lam gamma^T C gamma
    s.t. H^T H = I_k, V^T V = I_k, Lam = diag(l_1..l_k) in [0, 1]^k, gamma >= 0, 1^T gamma = 1
    (`weights: affine` drops gamma >= 0, as the authors' code does)

C_pq = sum_o tr(Lo_p Lo_q) / (||Lo_p||_F ||Lo_q||_F) penalises picking correlated Laplacians.
Each block has a closed form (or a small QP) and never increases the objective; per iteration:
    V:     the k eigenvectors of 2 Ls - H H^T with the smallest eigenvalues (jointly with Lam:)
    Lam:   l_i = clip((2 (O - v_i^T Ls v_i) + ||H^T v_i||^2) / (2 O), 0, 1),  Ls = sum_o Lo(gamma), O = 2
    H:     the k eigenvectors of L = I - V Lam V^T with the smallest eigenvalues: H = V
    gamma: min gamma^T (G + lam C) gamma - 2 b^T gamma on the simplex, G_pq = sum_o tr(Lo_p Lo_q),
           b_p = sum_o tr(Lo_p L)
Clusters: k-means on the row-normalised H.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import minimize

from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo
from clusterbench.methods.multiview_classic import (
    MultiViewClassic,
    check_count,
    check_positive,
    eigenvectors,
    gaussian_kernel,
    kmeans_on_rows,
    normalized_affinity,
)

ORDERS = 2  # first- and second-order base Laplacians


def neighbourhood_mask(kernel: np.ndarray, tau: int) -> np.ndarray:
    """Symmetric 0/1 mask of each sample's `tau` most similar samples (itself excluded)."""
    n = len(kernel)
    k = kernel.copy()
    np.fill_diagonal(k, -np.inf)
    order = np.argsort(-k, axis=1, kind="stable")[:, :tau]
    mask = np.zeros((n, n), dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask | mask.T


def base_laplacians(kernels: list[np.ndarray], tau: int) -> list[list[np.ndarray]]:
    """[[L1_p for every view p], [L2_p for every view p]]."""
    mask = neighbourhood_mask(sum(kernels) / len(kernels), tau)
    first, second = [], []
    for kernel in kernels:
        w = np.where(mask, np.maximum(kernel, 0.0), 0.0)
        np.fill_diagonal(w, 0.0)
        a = normalized_affinity(w)
        first.append(np.eye(len(w)) - a)
        a2 = a @ a
        np.fill_diagonal(a2, 0.0)
        second.append(np.eye(len(w)) - normalized_affinity(a2))
    return [first, second]


def gram_matrices(laplacians: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """G_pq = sum_o tr(Lo_p Lo_q) and C_pq = sum_o tr(Lo_p Lo_q) / (||Lo_p|| ||Lo_q||)."""
    m = len(laplacians[0])
    gram, corr = np.zeros((m, m)), np.zeros((m, m))
    for order in laplacians:
        flat = np.stack([lap.ravel() for lap in order])  # symmetric: tr(A B) = <A, B>
        g = flat @ flat.T
        norms = np.sqrt(np.diag(g))
        gram += g
        corr += g / np.outer(norms, norms)
    return gram, corr


def affine_qp(q: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin gamma^T q gamma - 2 b^T gamma over sum gamma = 1, any sign (the KKT system)."""
    m = len(b)
    kkt = np.block([[2 * q, np.ones((m, 1))], [np.ones((1, m)), np.zeros((1, 1))]])
    return np.linalg.lstsq(kkt, np.concatenate([2 * b, [1.0]]), rcond=None)[0][:m]


def simplex_qp(q: np.ndarray, b: np.ndarray, start: np.ndarray) -> np.ndarray:
    """argmin gamma^T q gamma - 2 b^T gamma over gamma >= 0, sum gamma = 1 (q PSD, m small)."""
    m = len(b)
    result = minimize(
        lambda g: g @ q @ g - 2 * b @ g,
        start,
        jac=lambda g: 2 * q @ g - 2 * b,
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda g: g.sum() - 1.0, "jac": lambda g: np.ones(m)}],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    gamma = np.clip(result.x, 0.0, None)
    return gamma / gamma.sum()


def combine(laplacians: list[list[np.ndarray]], gamma: np.ndarray) -> list[np.ndarray]:
    return [sum(g * lap for g, lap in zip(gamma, order)) for order in laplacians]


def onmsc_objective(
    h: np.ndarray, v: np.ndarray, lam_diag: np.ndarray, combined: list[np.ndarray], gamma: np.ndarray, lam: float, corr: np.ndarray
) -> float:
    optimal = np.eye(len(v)) - (v * lam_diag) @ v.T
    value = float(np.trace(h.T @ optimal @ h))
    value += sum(float(np.sum((optimal - c) ** 2)) for c in combined)
    return value + lam * float(gamma @ corr @ gamma)


def update_eigenvalues(v: np.ndarray, h: np.ndarray, summed: np.ndarray) -> np.ndarray:
    """Lam's diagonal: clip((2 (O - v_i^T Ls v_i) + ||H^T v_i||^2) / (2 O), 0, 1)."""
    quad = np.einsum("ni,nm,mi->i", v, summed, v)
    pull = ((h.T @ v) ** 2).sum(axis=0)
    return np.clip((2.0 * (ORDERS - quad) + pull) / (2.0 * ORDERS), 0.0, 1.0)


def update_weights(
    laplacians, v: np.ndarray, lam_diag: np.ndarray, gram: np.ndarray, corr: np.ndarray, lam: float, gamma: np.ndarray, simplex: bool = True
) -> np.ndarray:
    optimal = np.eye(len(v)) - (v * lam_diag) @ v.T
    b = np.array([sum(float(np.sum(order[p] * optimal)) for order in laplacians) for p in range(len(gamma))])
    return simplex_qp(gram + lam * corr, b, gamma) if simplex else affine_qp(gram + lam * corr, b)


class OptimalNeighbourhoodSpectral(MultiViewClassic):
    model_name = "onmsc"

    def __init__(
        self,
        data_info: DataInfo,
        backbone: dict | None = None,
        loss: object | None = None,
        lam: float = 1.0,
        weights: Literal["simplex", "affine"] = "simplex",
        neighbor_rate: float = 1.0,
        sigma: float | None = None,
        max_iter: int = 30,
        tol: float = 1e-4,
        n_init: int = 50,
    ) -> None:
        super().__init__(data_info)
        check_positive("lam", lam, allow_zero=True)
        check_positive("neighbor_rate", neighbor_rate)
        tau = round(neighbor_rate * data_info.n_samples / data_info.n_clusters)
        if not 1 <= tau < data_info.n_samples:
            raise ConfigError(
                f"model.neighbor_rate={neighbor_rate!r}: gives {tau} neighbours per sample, expected 1..{data_info.n_samples - 1}"
            )
        if sigma is not None:
            check_positive("sigma", sigma)
        check_count("max_iter", max_iter)
        check_positive("tol", tol, allow_zero=True)
        check_count("n_init", n_init)
        self.lam = float(lam)
        self.simplex = weights == "simplex"
        self.tau = tau
        self.sigma = sigma
        self.max_iter = max_iter
        self.tol = float(tol)
        self.n_init = n_init

    def fit_predict_views(self, views: list[np.ndarray], seed: int) -> np.ndarray:
        k = self.n_clusters
        laplacians = base_laplacians([gaussian_kernel(x, seed, self.sigma) for x in views], self.tau)
        gram, corr = gram_matrices(laplacians)
        gamma = np.full(len(views), 1.0 / len(views))
        combined = combine(laplacians, gamma)
        summed = sum(combined)
        h = eigenvectors(summed, k, largest=False)[1]  # spectral clustering on the average
        history = []
        for iteration in range(1, self.max_iter + 1):
            # (V, Lam) jointly: V's columns the bottom eigenvectors of 2 Ls - H H^T, then each l_i
            v = eigenvectors(2.0 * summed - h @ h.T, k, largest=False)[1]
            lam_diag = update_eigenvalues(v, h, summed)
            h = v  # the bottom eigenvectors of I - V Lam V^T (Lam in [0, 1]) are V's columns
            gamma = update_weights(laplacians, v, lam_diag, gram, corr, self.lam, gamma, self.simplex)
            combined = combine(laplacians, gamma)
            summed = sum(combined)
            history.append(onmsc_objective(h, v, lam_diag, combined, gamma, self.lam, corr))
            if iteration > 3 and abs(history[-2] - history[-1]) <= self.tol * abs(history[-2]):
                break
        self.fit_info = {"view_weights": gamma.tolist(), "objective": history, "iterations": len(history), "neighbours": self.tau}
        return kmeans_on_rows(h, k, seed, self.n_init)
