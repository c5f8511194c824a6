"""Normalised cuts (Shi & Malik, TPAMI 2000) as scikit-learn's SpectralClustering: the first K
eigenvectors of the normalised graph Laplacian of an affinity graph, then k-means on them
(`assign_labels`). SDCIB Table 2 calls the per-view variant Ncuts and the concatenated one
AmNcuts (configs/model/ncuts.yaml, amncuts.yaml). Transductive: the partition of all samples is
computed at fit time (see classic.py).

Affinity: `nearest_neighbors` (default) is the symmetrised 0/1 graph of each sample's
`n_neighbors` nearest neighbours, sparse and free of any scale parameter, so the same setting
fits views of any dimension and scale; `rbf` is exp(-gamma ||x - y||^2) on all pairs, a dense
N x N matrix (N = 11k: about 1 GB and a much slower eigensolver), with `gamma: null` set per
feature set to 1 / median squared distance (median heuristic, on at most 1000 samples drawn
with the run's seed) instead of scikit-learn's fixed gamma = 1.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import numpy as np
from sklearn.cluster import SpectralClustering as SKSpectralClustering
from sklearn.metrics import pairwise_distances

from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo
from clusterbench.methods.classic import ClassicClustering, ViewSelection


def median_gamma(x: np.ndarray, seed: int, max_samples: int = 1000) -> float:
    """1 / median squared Euclidean distance between distinct samples (on a seeded subsample)."""
    rows = np.random.RandomState(seed).permutation(len(x))[:max_samples]
    d2 = pairwise_distances(x[rows], metric="sqeuclidean")
    median = float(np.median(d2[np.triu_indices(len(rows), k=1)])) if len(rows) > 1 else 0.0
    return 1.0 / median if median > 0 else 1.0


class SpectralClustering(ClassicClustering):
    def __init__(
        self,
        data_info: DataInfo,
        backbone: dict | None = None,
        loss: object | None = None,
        view: int | None = None,
        per_view: bool = False,
        view_selection: ViewSelection = "best_acc",
        affinity: Literal["nearest_neighbors", "rbf"] = "nearest_neighbors",
        n_neighbors: int = 10,
        gamma: float | None = None,
        eigen_solver: Literal["arpack", "lobpcg", "amg"] = "arpack",
        assign_labels: Literal["kmeans", "discretize", "cluster_qr"] = "kmeans",
        n_init: int = 10,
    ) -> None:
        super().__init__(data_info, view, per_view, view_selection)
        if not 1 <= n_neighbors < data_info.n_samples:
            raise ConfigError(
                f"model.n_neighbors={n_neighbors}: expected 1..{data_info.n_samples - 1} (the dataset has {data_info.n_samples} samples)"
            )
        if gamma is not None and not gamma > 0:
            raise ConfigError(f"model.gamma={gamma}: expected a positive number or null (median heuristic)")
        if eigen_solver == "amg" and importlib.util.find_spec("pyamg") is None:
            raise ConfigError("model.eigen_solver=amg needs pyamg (pip install pyamg); arpack needs nothing")
        self.affinity = affinity
        self.n_neighbors = n_neighbors
        self.gamma = gamma
        self.eigen_solver = eigen_solver
        self.assign_labels = assign_labels
        self.n_init = n_init

    def fit_predict(self, x: np.ndarray, seed: int) -> np.ndarray:
        gamma = self.gamma
        if gamma is None:
            gamma = median_gamma(x, seed) if self.affinity == "rbf" else 1.0  # unused by nearest_neighbors
        model = SKSpectralClustering(
            self.n_clusters,
            affinity=self.affinity,
            n_neighbors=self.n_neighbors,
            gamma=gamma,
            eigen_solver=self.eigen_solver,
            assign_labels=self.assign_labels,
            n_init=self.n_init,
            random_state=seed,
        )
        return model.fit_predict(x)
