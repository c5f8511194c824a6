"""Co-regularised multi-view spectral clustering (Kumar, Rai & Daume III, NIPS 2011): SDCIB
Table 2's "CoregMVSC". Equations and choices: docs/classic_multiview.md.

Per view v: a Gaussian kernel K_v (median heuristic) and the normalised affinity
L_v = D_v^-1/2 K_v D_v^-1/2 (the paper calls it the normalised Laplacian; spectral clustering
maximises tr(U^T L_v U) over U^T U = I). Each view's spectral embedding U_v (N x k, k = number
of clusters) starts as the top-k eigenvectors of L_v; then, for `n_iter` rounds:

- centroid (default): a consensus U* = top-k eigenvectors of sum_v lambda U_v U_v^T (one lambda
  for every view, so those of sum_v U_v U_v^T), then every
  U_v = top-k eigenvectors of L_v + lambda U* U*^T; they maximise
      sum_v tr(U_v^T L_v U_v) + lambda sum_v tr(U_v U_v^T U* U*^T)
  block by block, so the objective never decreases. Clusters: k-means on the rows of U*,
  each scaled to unit length.
- pairwise: every U_v = top-k eigenvectors of L_v + lambda sum_{w != v} U_w U_w^T (in the order
  v = 2, ..., m, 1, as the authors' code), which maximises
      sum_v tr(U_v^T L_v U_v) + lambda sum_{v < w} tr(U_v U_v^T U_w U_w^T)
  block by block. Clusters: k-means on the row-normalised concatenation [U_1, ..., U_m] (the
  paper leaves the choice open; the authors' code reports view 1's U_1).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

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


def projector(u: np.ndarray) -> np.ndarray:
    return u @ u.T


def coreg_objective(affinities: list[np.ndarray], embeddings: list[np.ndarray], lam: float, consensus: np.ndarray | None) -> float:
    """The maximised objective: centroid form with `consensus` U*, pairwise form without."""
    value = sum(float(np.trace(u.T @ a @ u)) for a, u in zip(affinities, embeddings))
    if consensus is not None:
        star = projector(consensus)
        return value + lam * sum(float(np.sum(projector(u) * star)) for u in embeddings)
    m = len(embeddings)
    for v in range(m):
        for w in range(v + 1, m):
            # tr(U_v U_v^T U_w U_w^T) = ||U_v^T U_w||_F^2
            value += lam * float(np.sum((embeddings[v].T @ embeddings[w]) ** 2))
    return value


class CoRegularizedSpectral(MultiViewClassic):
    model_name = "coreg"

    def __init__(
        self,
        data_info: DataInfo,
        backbone: dict | None = None,
        loss: object | None = None,
        variant: Literal["centroid", "pairwise"] = "centroid",
        lam: float = 0.01,
        n_iter: int = 10,
        sigma: float | None = None,
        n_init: int = 10,
    ) -> None:
        super().__init__(data_info)
        check_positive("lam", lam, allow_zero=True)
        check_count("n_iter", n_iter, low=0)
        if sigma is not None:
            check_positive("sigma", sigma)
        check_count("n_init", n_init)
        self.variant = variant
        self.lam = float(lam)
        self.n_iter = n_iter
        self.sigma = sigma
        self.n_init = n_init

    def affinities(self, views: list[np.ndarray], seed: int) -> list[np.ndarray]:
        return [normalized_affinity(gaussian_kernel(x, seed, self.sigma)) for x in views]

    def fit_predict_views(self, views: list[np.ndarray], seed: int) -> np.ndarray:
        k = self.n_clusters
        affinities = self.affinities(views, seed)
        embeddings = [eigenvectors(a, k, largest=True)[1] for a in affinities]
        objective = []
        if self.variant == "centroid":
            consensus = None
            for _ in range(self.n_iter):
                # one lambda for every view: the top eigenvectors of sum_v lambda U_v U_v^T are those of sum_v U_v U_v^T
                consensus = eigenvectors(sum(projector(u) for u in embeddings), k, largest=True)[1]
                star = projector(consensus)
                embeddings = [eigenvectors(a + self.lam * star, k, largest=True)[1] for a in affinities]
                objective.append(coreg_objective(affinities, embeddings, self.lam, consensus))
            if consensus is None:  # n_iter = 0: the consensus of the single-view embeddings
                consensus = eigenvectors(sum(projector(u) for u in embeddings), k, largest=True)[1]
            final = consensus
        else:
            m = len(views)
            order = [*range(1, m), 0]
            for _ in range(self.n_iter):
                for v in order:
                    others = sum(projector(embeddings[w]) for w in range(m) if w != v)
                    embeddings[v] = eigenvectors(affinities[v] + self.lam * others, k, largest=True)[1]
                objective.append(coreg_objective(affinities, embeddings, self.lam, None))
            final = np.concatenate(embeddings, axis=1)
        self.fit_info = {"objective": objective}
        return kmeans_on_rows(final, k, seed, self.n_init)
