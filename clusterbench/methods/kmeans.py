"""k-means on the concatenated preprocessed views, or on one view: the floor every table needs."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans as SKKMeans

from clusterbench.errors import ConfigError
from clusterbench.methods.base import ClusteringMethod, DataInfo


class KMeans(ClusteringMethod):
    def __init__(
        self,
        data_info: DataInfo,
        backbone: dict | None = None,
        loss: object | None = None,
        view: int | None = None,
        n_init: int = 10,
        max_iter: int = 300,
    ) -> None:
        super().__init__()
        if view is not None and not 0 <= view < data_info.n_views:
            raise ConfigError(f"model.view={view}: the dataset has {data_info.n_views} views (0..{data_info.n_views - 1})")
        self.view = view
        self.n_clusters = data_info.n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.register_buffer("centers", torch.zeros(0))

    def _features(self, views: list[torch.Tensor]) -> torch.Tensor:
        return views[self.view] if self.view is not None else torch.cat(views, dim=1)

    def on_fit_start(self, views: list[torch.Tensor]) -> None:
        x = self._features(views).double().cpu().numpy()
        # derived from the run's seed through torch's generator (seeded by the engine)
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        model = SKKMeans(self.n_clusters, n_init=self.n_init, max_iter=self.max_iter, random_state=seed).fit(x)
        self.centers = torch.as_tensor(model.cluster_centers_, dtype=torch.float32, device=views[0].device)

    def predict(self, views: list[torch.Tensor]) -> torch.Tensor:
        return torch.cdist(self._features(views).float(), self.centers).argmin(dim=1)
