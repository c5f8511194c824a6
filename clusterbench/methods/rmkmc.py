"""Robust multi-view k-means (RMKMC; Cai, Nie & Huang, "Multi-View K-Means Clustering on Big
Data", IJCAI 2013): SDCIB Table 2's "RMKMC". Equations and choices: docs/classic_multiview.md.

One cluster indicator G (N x K, one 1 per row) shared by all views, one centroid matrix F_v
(d_v x K) per view, view weights alpha_v on the simplex raised to the power gamma > 1:

    min  sum_v alpha_v^gamma || X_v^T - G F_v^T ||_{2,1}       (row-wise L2, summed: robust)

solved by re-weighting, per iteration (Algorithm 1 of the paper):
    D_v = diag(1 / (2 ||x_i^v - F_v g_i||))                        (the L2,1 re-weighting)
    Dt_v = alpha_v^gamma D_v
    F_v = X_v Dt_v G (G^T Dt_v G)^-1                                (weighted centroids)
    g_i = e_k, k = argmin_k sum_v Dt_v[i, i] ||x_i^v - f_k^v||^2     (assignment)
    alpha_v = (gamma H_v)^(1/(1-gamma)) / sum_w (gamma H_w)^(1/(1-gamma)), H_v = ||X_v^T - G F_v^T||_{2,1}
starting from a random G, D_v = I and alpha_v = 1/M. We run `n_init` random starts (each with its
own draw from the run's seed) and keep the one with the lowest objective (label-free).
"""

from __future__ import annotations

import numpy as np

from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo
from clusterbench.methods.multiview_classic import MultiViewClassic, check_count, check_positive

# a sample exactly on its centroid has an infinite L2,1 weight; its distance is floored here
_EPS = 1e-10


def reweighting(residual_norms: np.ndarray) -> np.ndarray:
    """The diagonal of D_v: 1 / (2 ||e_i||), e_i the i-th row of X_v^T - G F_v^T."""
    return 0.5 / np.maximum(residual_norms, _EPS)


def view_weights(h: np.ndarray, gamma: float) -> np.ndarray:
    """alpha_v = (gamma H_v)^(1/(1-gamma)) / sum_w (gamma H_w)^(1/(1-gamma)), computed in logs
    (H_v spans orders of magnitude across views)."""
    logs = np.log(gamma * np.maximum(h, _EPS)) / (1.0 - gamma)
    logs -= logs.max()
    w = np.exp(logs)
    return w / w.sum()


def weighted_centroids(x: np.ndarray, labels: np.ndarray, d: np.ndarray, k: int, previous: np.ndarray | None) -> np.ndarray:
    """F_v^T (K x d_v) = (G^T Dt G)^-1 G^T Dt X_v^T: each centroid the Dt-weighted mean of its
    samples. An empty cluster keeps its previous centroid (or the sample farthest from all
    others' centroids at the first step)."""
    g = np.zeros((len(x), k))
    g[np.arange(len(x)), labels] = d  # Dt G
    sums = g.T @ x  # G^T Dt X_v^T
    mass = g.sum(axis=0)  # diagonal of G^T Dt G
    centroids = np.empty_like(sums)
    full = mass > 0
    centroids[full] = sums[full] / mass[full, None]
    if not full.all():
        if previous is not None:
            centroids[~full] = previous[~full]
        else:  # cannot happen with the random start below (every cluster gets a sample); kept for safety
            centroids[~full] = x[np.argsort(-np.linalg.norm(x - x.mean(0), axis=1))[: int((~full).sum())]]
    return centroids


def residual_norms(x: np.ndarray, centroids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x - centroids[labels], axis=1)


def squared_distances_to(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d2 = (x**2).sum(1)[:, None] - 2.0 * x @ centroids.T + (centroids**2).sum(1)[None, :]
    return np.maximum(d2, 0.0)


class RobustMultiViewKMeans(MultiViewClassic):
    model_name = "rmkmc"

    def __init__(
        self,
        data_info: DataInfo,
        backbone: dict | None = None,
        loss: object | None = None,
        gamma: float = 10**0.5,
        max_iter: int = 100,
        n_init: int = 10,
        tol: float = 1e-6,
    ) -> None:
        super().__init__(data_info)
        if not (np.isfinite(gamma) and gamma > 1):
            raise ConfigError(f"model.gamma={gamma!r}: expected a number > 1 (the view weights are alpha_v^gamma)")
        check_count("max_iter", max_iter)
        check_count("n_init", n_init)
        check_positive("tol", tol, allow_zero=True)
        self.gamma = float(gamma)
        self.max_iter = max_iter
        self.n_init = n_init
        self.tol = float(tol)

    def fit_once(
        self, views: list[np.ndarray], rng: np.random.RandomState, start: np.ndarray | None = None
    ) -> tuple[float, np.ndarray, np.ndarray, int]:
        """One start: from `start` (labels) or a random indicator with every cluster used (a
        random permutation of 0..K-1 repeated)."""
        n, k, m = len(views[0]), self.n_clusters, len(views)
        labels = rng.permutation(np.arange(n) % k) if start is None else np.asarray(start)
        d = [np.ones(n) for _ in range(m)]
        alpha = np.full(m, 1.0 / m)
        centroids: list[np.ndarray | None] = [None] * m
        previous = np.inf
        iterations = 0
        for iterations in range(1, self.max_iter + 1):
            dt = [a**self.gamma * dv for a, dv in zip(alpha, d)]
            centroids = [weighted_centroids(x, labels, w, k, f) for x, w, f in zip(views, dt, centroids)]
            cost = sum(w[:, None] * squared_distances_to(x, f) for x, w, f in zip(views, dt, centroids))
            labels = cost.argmin(axis=1)
            norms = [residual_norms(x, f, labels) for x, f in zip(views, centroids)]
            d = [reweighting(r) for r in norms]
            h = np.array([r.sum() for r in norms])  # H_v = ||X_v^T - G F_v^T||_{2,1}
            alpha = view_weights(h, self.gamma)
            objective = float(alpha**self.gamma @ h)
            if abs(previous - objective) <= self.tol * max(abs(objective), 1e-300):
                break
            previous = objective
        return objective, labels, alpha, iterations

    def fit_predict_views(self, views: list[np.ndarray], seed: int) -> np.ndarray:
        rng = np.random.RandomState(seed)
        best = None
        for _ in range(self.n_init):
            result = self.fit_once(views, rng)
            if best is None or result[0] < best[0]:
                best = result
        objective, labels, alpha, iterations = best
        self.fit_info = {"objective": objective, "view_weights": alpha.tolist(), "iterations": iterations}
        return labels
