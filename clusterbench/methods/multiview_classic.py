"""What the classic multi-view baselines share (co-regularised spectral clustering, RMKMC, SwMC,
ONMSC; SDCIB Table 2): one fit on ALL views of ALL samples at once, in `on_fit_start`, and the
partition it gave looked up per evaluation batch.

`ClassicClustering` (classic.py) clusters one feature matrix (a view, or the views concatenated);
the methods here see the list of views and model each view separately (a graph, a kernel or a
set of centroids per view) before they agree on one partition. A subclass gives
`fit_predict_views(views, seed) -> labels` for a list of (N, d_v) float64 matrices; the base
class refuses data with one view (a one-line ConfigError naming the model and the view count),
derives scikit-learn's random_state from the run's seed (`sklearn_seed`, as classic.py does),
limits scikit-learn's / numpy's thread pools to `hardware.num_threads` and keeps the labels in
a buffer, so `predict(views, index)` is transductive: the labels the fit gave the samples
`index` (no method here has an out-of-sample rule).

The helpers below are the pieces the spectral methods share: the Gaussian kernel with the median
heuristic, the normalised affinity D^-1/2 W D^-1/2 (and its Laplacian I - D^-1/2 W D^-1/2),
eigenvectors of a symmetric matrix, and k-means on the row-normalised spectral embedding
(Ng, Jordan & Weiss 2002).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances
from threadpoolctl import threadpool_limits

from clusterbench.errors import ConfigError
from clusterbench.methods.base import ClusteringMethod, DataInfo
from clusterbench.methods.classic import sklearn_seed
from clusterbench.methods.ncuts import median_gamma


class MultiViewClassic(ClusteringMethod):
    """Subclasses set `model_name` (the configs/model/<name>.yaml name, for messages) and give
    `fit_predict_views`. `fit_info` holds what a fit reports besides the labels (view weights,
    iterations, ...): a plain dict of floats and lists, for the docs and the tests."""

    model_name = "multiview_classic"

    def __init__(self, data_info: DataInfo) -> None:
        super().__init__()
        if data_info.n_views < 2:
            raise ConfigError(
                f"model={self.model_name} clusters several views at once; the dataset has {data_info.n_views} view "
                "(use a single-view method: model=kmeans or model=amncuts)"
            )
        self.n_clusters = data_info.n_clusters
        self.fit_info: dict = {}
        # (N,): the label the fit gave each sample
        self.register_buffer("assignments", torch.zeros(0, dtype=torch.long))

    def fit_predict_views(self, views: list[np.ndarray], seed: int) -> np.ndarray:
        raise NotImplementedError

    def on_fit_start(self, views: list[torch.Tensor]) -> None:
        seed = sklearn_seed()
        arrays = [v.detach().double().cpu().numpy() for v in views]
        # scikit-learn's OpenMP/BLAS pools follow hardware.num_threads (set on torch by the engine)
        with threadpool_limits(limits=torch.get_num_threads()):
            labels = np.asarray(self.fit_predict_views(arrays, seed), dtype=np.int64)
        if labels.shape != (len(arrays[0]),):
            raise RuntimeError(f"model={self.model_name}: the fit returned labels of shape {labels.shape}, expected ({len(arrays[0])},)")
        self.assignments = torch.as_tensor(labels, device=views[0].device)

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        if self.assignments.numel() == 0:
            raise RuntimeError("predict before on_fit_start: the partition is computed on all samples at fit time")
        return self.assignments[index.to(self.assignments.device)]


# --- checks of hyperparameters (one line naming the key and the value) -----------------------------


def check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and np.isfinite(value)):
        raise ConfigError(f"model.{key}={value!r}: expected a {'non-negative' if allow_zero else 'positive'} finite number")


def check_count(key: str, value: int, low: int = 1) -> None:
    if value < low:
        raise ConfigError(f"model.{key}={value!r}: expected an integer >= {low}")


# --- shared pieces of the spectral methods ----------------------------------------------------------


def squared_distances(x: np.ndarray) -> np.ndarray:
    """(N, N) squared Euclidean distances, exactly 0 on the diagonal and never negative."""
    d2 = pairwise_distances(x, metric="sqeuclidean")
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2


def gaussian_kernel(x: np.ndarray, seed: int, sigma: float | None = None) -> np.ndarray:
    """K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2)); `sigma: None` is the median heuristic, sigma =
    the median Euclidean distance between distinct samples (on at most 1000 samples drawn with
    `seed`: ncuts.median_gamma gives 1 / median squared distance = 1 / sigma^2)."""
    sigma2 = 1.0 / median_gamma(x, seed) if sigma is None else float(sigma) ** 2
    return np.exp(-squared_distances(x) / (2.0 * sigma2))


def normalized_affinity(w: np.ndarray) -> np.ndarray:
    """D^-1/2 W D^-1/2 with D = diag(row sums of W); a row that sums to 0 stays 0."""
    degree = w.sum(axis=1)
    inv_sqrt = np.zeros_like(degree)
    positive = degree > 0
    inv_sqrt[positive] = 1.0 / np.sqrt(degree[positive])
    a = w * inv_sqrt[:, None] * inv_sqrt[None, :]
    return (a + a.T) / 2.0


def normalized_laplacian(w: np.ndarray) -> np.ndarray:
    """I - D^-1/2 W D^-1/2 (symmetric normalised Laplacian)."""
    return np.eye(len(w)) - normalized_affinity(w)


def eigenvectors(m: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """The k eigenvectors (columns) of the symmetric matrix `m` with the largest (or smallest)
    eigenvalues, and those eigenvalues, largest (smallest) first."""
    n = len(m)
    m = (m + m.T) / 2.0
    index = [n - k, n - 1] if largest else [0, k - 1]
    values, vectors = scipy.linalg.eigh(m, subset_by_index=index)
    if largest:
        values, vectors = values[::-1], vectors[:, ::-1]
    return values, np.ascontiguousarray(vectors)


def row_normalize(u: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return u / norms


def kmeans_on_rows(u: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    """k-means (scikit-learn, k-means++ seeding, `n_init` restarts) on the row-normalised rows of
    a spectral embedding U (N, k): the last step of Ng, Jordan & Weiss's spectral clustering."""
    return KMeans(k, n_init=n_init, random_state=seed).fit(row_normalize(u)).labels_
