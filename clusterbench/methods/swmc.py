"""Self-weighted multiview clustering with multiple graphs (SwMC; Nie, Li & Li, IJCAI 2017):
SDCIB Table 2's "SwMC". Equations and choices: docs/classic_multiview.md.

Per view v an adaptive-neighbour graph A_v (Nie, Wang & Huang, KDD 2014: each sample's `k`
nearest neighbours weighted (d_{i,k+1} - d_ij) / (k d_{i,k+1} - sum_h d_ih), rows summing to 1,
then symmetrised). One target graph S, rows on the simplex, close to every A_v, whose Laplacian
has rank N - c (exactly c connected components, c = number of clusters):

    min_S  sum_v ||S - A_v||_F    s.t. s_i >= 0, s_i^T 1 = 1, rank(L_S) = N - c

The square roots make the view weights w_v = 1 / (2 ||S - A_v||_F) appear by themselves. With
w fixed, S is the constrained-Laplacian-rank (CLR) problem on the weighted graphs: the rank
constraint relaxed to 2 lambda tr(F^T L_S F) with F^T F = I (Ky Fan), and
    s_i = projection onto the simplex of (sum_v w_v a_i^v - lambda d_i / 2) / sum_v w_v,
          d_ij = ||f_i - f_j||^2
    F   = the c eigenvectors of L_S with the smallest eigenvalues
alternated, lambda doubled while L_S has fewer than c zero eigenvalues (fewer than c connected
components) and halved (F kept) while it has more, until exactly c. Then w_v = 1 / (2 ||S - A_v||_F),
and again, until sum_v ||S - A_v||_F stops changing (the authors' code nests the loops the same
way). The clusters are the connected components of S; no k-means.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from clusterbench.console import say
from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo
from clusterbench.methods.multiview_classic import MultiViewClassic, check_count, check_positive, eigenvectors, squared_distances

_EPS = 1e-12
# an eigenvalue sum of L_S below this counts as zero (the authors' code uses the same threshold)
_ZERO = 1e-10


def adaptive_neighbour_graph(x: np.ndarray, k: int) -> np.ndarray:
    """The k-nearest-neighbour graph with the closed-form adaptive-neighbour weights of CAN
    (Nie, Wang & Huang, KDD 2014, Eq. 17 there): row i gives its k nearest neighbours j
    (squared Euclidean distance d_ij, itself excluded) the weight
    (d_{i,k+1} - d_ij) / (k d_{i,k+1} - sum_{h<=k} d_ih); the graph returned is (A + A^T) / 2."""
    n = len(x)
    d2 = squared_distances(x)
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")[:, : k + 1]
    near = np.take_along_axis(d2, order, axis=1)
    kth = near[:, k : k + 1]  # d_{i,k+1}
    denominator = k * kth - near[:, :k].sum(axis=1, keepdims=True)
    weights = np.where(denominator > _EPS, (kth - near[:, :k]) / np.maximum(denominator, _EPS), 1.0 / k)
    a = np.zeros((n, n))
    np.put_along_axis(a, order[:, :k], weights, axis=1)
    return (a + a.T) / 2.0


def project_rows_to_simplex(v: np.ndarray) -> np.ndarray:
    """Each row of v projected onto {s >= 0, sum s = 1} (Euclidean; sort-based, exact)."""
    n, m = v.shape
    u = -np.sort(-v, axis=1)
    css = np.cumsum(u, axis=1) - 1.0
    ind = np.arange(1, m + 1)
    rho = (u - css / ind > 0).sum(axis=1)
    theta = css[np.arange(n), rho - 1] / rho
    return np.maximum(v - theta[:, None], 0.0)


def laplacian(s: np.ndarray) -> np.ndarray:
    """L_S = D - (S + S^T)/2 with D the degrees of the symmetrised S (diagonal of S dropped)."""
    w = (s + s.T) / 2.0
    np.fill_diagonal(w, 0.0)
    return np.diag(w.sum(axis=1)) - w


def components(s: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the graph with an edge wherever S_ij + S_ji > 0."""
    w = s + s.T
    np.fill_diagonal(w, 0.0)
    return connected_components(csr_matrix(w > 0), directed=False)


def view_weights(s: np.ndarray, graphs: list[np.ndarray]) -> np.ndarray:
    """w_v = 1 / (2 ||S - A_v||_F): the self-weighting of the paper."""
    return np.array([0.5 / max(np.linalg.norm(s - a), _EPS) for a in graphs])


def update_graph(graphs: list[np.ndarray], weights: np.ndarray, f: np.ndarray, lam: float, support: np.ndarray | None) -> np.ndarray:
    """Row-wise: s_i = simplex projection of (sum_v w_v a_i^v - lam d_i / 2) / sum_v w_v, with
    d_ij = ||f_i - f_j||^2, over the entries j in `support` (None: every j != i); no self-loops."""
    target = sum(w * a for w, a in zip(weights, graphs)) - lam / 2.0 * squared_distances(f)
    target /= weights.sum()
    allowed = ~np.eye(len(f), dtype=bool) if support is None else support
    # an entry below (row max - 1) is 0 after the projection (its threshold is >= max - 1), so
    # the entries outside the support are set there: finite, and never chosen
    low = np.max(np.where(allowed, target, -np.inf), axis=1, keepdims=True) - 2.0
    return np.where(allowed, project_rows_to_simplex(np.where(allowed, target, low)), 0.0)


def swmc_objective(s: np.ndarray, graphs: list[np.ndarray]) -> float:
    return float(sum(np.linalg.norm(s - a) for a in graphs))


class SelfWeightedMultiviewClustering(MultiViewClassic):
    model_name = "swmc"

    def __init__(
        self,
        data_info: DataInfo,
        backbone: dict | None = None,
        loss: object | None = None,
        n_neighbors: int = 10,
        support: Literal["neighbours", "all"] = "neighbours",
        lam: float = 1.0,
        max_iter: int = 50,
        inner_iter: int = 50,
        tol: float = 1e-8,
    ) -> None:
        super().__init__(data_info)
        if not 1 <= n_neighbors < data_info.n_samples - 1:
            raise ConfigError(
                f"model.n_neighbors={n_neighbors}: expected 1..{data_info.n_samples - 2} (the dataset has {data_info.n_samples} samples)"
            )
        check_positive("lam", lam)
        check_count("max_iter", max_iter)
        check_count("inner_iter", inner_iter)
        check_positive("tol", tol, allow_zero=True)
        self.n_neighbors = n_neighbors
        self.support = support
        self.lam = float(lam)
        self.max_iter = max_iter
        self.inner_iter = inner_iter
        self.tol = float(tol)

    def rank_constrained_graph(
        self, graphs: list[np.ndarray], weights: np.ndarray, start: np.ndarray, support: np.ndarray | None
    ) -> tuple[np.ndarray, float]:
        """S for fixed weights: the CLR problem (Nie et al., AAAI 2016) on the weighted graphs,
        lambda from `lam`, doubled while L_S has fewer than c (near) zero eigenvalues, halved
        (and F kept) while it has more, until it has exactly c or `inner_iter` updates."""
        c, lam = self.n_clusters, self.lam
        _, f = eigenvectors(laplacian(start), c, largest=False)
        for _ in range(self.inner_iter):
            s = update_graph(graphs, weights, f, lam, support)
            values, vectors = eigenvectors(laplacian(s), c + 1, largest=False)
            if values[:c].sum() > _ZERO:  # fewer than c zero eigenvalues: more weight on the rank term
                lam *= 2.0
                f = vectors[:, :c]
            elif values.sum() < _ZERO:  # more than c: less weight, keep the F that gave them
                lam /= 2.0
            else:
                break
        return s, lam

    def fit_predict_views(self, views: list[np.ndarray], seed: int) -> np.ndarray:
        c = self.n_clusters
        graphs = [adaptive_neighbour_graph(x, self.n_neighbors) for x in views]
        weights = np.full(len(graphs), 1.0 / len(graphs))
        # `neighbours`: s_i lives on the samples that are a neighbour of i in some view (as the
        # authors' code); `all`: on every other sample, as the paper's problem is written
        support = sum(graphs) > 0 if self.support == "neighbours" else None
        s = sum(w * a for w, a in zip(weights, graphs))
        history, found, lam = [], None, self.lam
        for _ in range(self.max_iter):
            s, lam = self.rank_constrained_graph(graphs, weights, s, support)  # fix w, update S (and F)
            weights = view_weights(s, graphs)  # fix S, update w
            history.append(swmc_objective(s, graphs))
            count, labels = components(s)
            if count == c:
                found = labels
            if len(history) > 1 and abs(history[-2] - history[-1]) <= self.tol * history[-1]:
                break
        count, labels = components(s)
        if count != c:
            labels = self.fallback(labels, count, graphs, weights, found)
        self.fit_info = {
            "view_weights": (weights / weights.sum()).tolist(),
            "lambda": lam,
            "components": int(count),
            "iterations": len(history),
            "objective": history,
        }
        return labels

    def fallback(
        self, labels: np.ndarray, count: int, graphs: list[np.ndarray], weights: np.ndarray, found: np.ndarray | None
    ) -> np.ndarray:
        """The iteration ended without exactly c components (the paper has no rule for it)."""
        c = self.n_clusters
        say(f"warning: model=swmc ended with {count} connected components instead of {c} (see docs/classic_multiview.md)", error=True)
        if found is not None:  # the last iterate that had exactly c components
            return found
        if count < c:
            return labels
        # more than c: the c largest components stay; every other component joins the one it is
        # most similar to in the weighted input graphs sum_v w_v A_v
        sizes = np.bincount(labels, minlength=count)
        keep = np.argsort(-sizes, kind="stable")[:c]
        new_id = np.full(count, -1)
        new_id[keep] = np.arange(c)
        affinity = sum(w * a for w, a in zip(weights, graphs))
        member = np.zeros((len(labels), c))
        kept = new_id[labels] >= 0
        member[np.flatnonzero(kept), new_id[labels][kept]] = 1.0
        for comp in np.flatnonzero(new_id < 0):
            new_id[comp] = int(np.argmax((affinity[labels == comp] @ member).sum(axis=0)))
        return new_id[labels]
