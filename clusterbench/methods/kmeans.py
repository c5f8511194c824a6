"""k-means (scikit-learn's KMeans, Lloyd, k-means++ seeding) on the concatenated preprocessed
views, on one view, or on each view with one view's partition kept: the floor every table needs.
SDCIB Table 2 calls the per-view variant KM and the concatenated one AmKM (configs/model/km.yaml,
amkm.yaml); `model=kmeans` is the concatenated one with `view` to pick a single view.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans as SKKMeans

from clusterbench.methods.base import DataInfo
from clusterbench.methods.classic import ClassicClustering, ViewSelection


class KMeans(ClassicClustering):
    def __init__(
        self,
        data_info: DataInfo,
        backbone: dict | None = None,
        loss: object | None = None,
        view: int | None = None,
        per_view: bool = False,
        view_selection: ViewSelection = "best_acc",
        n_init: int = 10,
        max_iter: int = 300,
    ) -> None:
        super().__init__(data_info, view, per_view, view_selection)
        self.n_init = n_init
        self.max_iter = max_iter

    def fit_predict(self, x: np.ndarray, seed: int) -> np.ndarray:
        return SKKMeans(self.n_clusters, n_init=self.n_init, max_iter=self.max_iter, random_state=seed).fit(x).labels_
