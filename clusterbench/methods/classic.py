"""What the classic baselines share (k-means, normalised cuts): a scikit-learn clusterer fitted
once, in `on_fit_start`, on all samples, and the partition it gave looked up per evaluation batch.

Which features are clustered:
- the concatenated views (`view: null`, `per_view: false`): SDCIB Table 2's "all-modal" AmKM and
  AmNcuts;
- one view (`view: i`);
- every view separately (`per_view: true`): Table 2's single-modal KM and Ncuts. Each view's
  partition is a candidate (`view_0`, `view_1`, ...); the engine evaluates all of them, writes
  each one's metrics into results.json and keeps one by `view_selection`:
  `best_acc` (the paper's "best-performing modality": chosen with the labels, flagged
  `uses_labels` in results.json), an int (that view, fixed before the run: label-free) or
  `silhouette` (the view whose partition has the highest mean silhouette coefficient on that
  view's own features, Euclidean: label-free; the coefficient lies in [-1, 1] whatever the
  feature scale and dimension, which is what makes views comparable; it costs O(N^2 d) per view).

The partition is transductive: `predict(views, index)` returns what the fit assigned to the
samples `index`, so k-means gives scikit-learn's `labels_` exactly and spectral clustering,
which has no out-of-sample rule, works at all.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from clusterbench.errors import ConfigError
from clusterbench.methods.base import ClusteringMethod, DataInfo

ViewSelection = Literal["best_acc", "silhouette"] | int


def sklearn_seed() -> int:
    """A scikit-learn random_state derived from the run's seed (torch's generator, seeded by the engine)."""
    return int(torch.randint(0, 2**31 - 1, (1,)).item())


class ClassicClustering(ClusteringMethod):
    """Subclasses give `fit_predict(x, seed) -> labels` for one (N, d) float64 feature matrix."""

    def __init__(self, data_info: DataInfo, view: int | None, per_view: bool, view_selection: ViewSelection) -> None:
        super().__init__()
        n_views = data_info.n_views
        if view is not None and not 0 <= view < n_views:
            raise ConfigError(f"model.view={view}: the dataset has {n_views} views (0..{n_views - 1})")
        if per_view and view is not None:
            raise ConfigError(f"model.view={view} with model.per_view=true: to fix the view label-free use model.view_selection={view}")
        if isinstance(view_selection, int) and not 0 <= view_selection < n_views:
            raise ConfigError(f"model.view_selection={view_selection}: the dataset has {n_views} views (0..{n_views - 1})")
        self.view = view
        self.per_view = per_view
        self.candidate_selection = view_selection
        self.n_clusters = data_info.n_clusters
        self.names: list[str] = []
        self.scores: dict[str, float] = {}
        # (N, number of partitions): the label each fit gave each sample
        self.register_buffer("assignments", torch.zeros(0, dtype=torch.long))

    def fit_predict(self, x: np.ndarray, seed: int) -> np.ndarray:
        raise NotImplementedError

    def feature_sets(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.per_view:
            return {f"view_{i}": v for i, v in enumerate(views)}
        if self.view is not None:
            return {f"view_{self.view}": views[self.view]}
        return {"concat": torch.cat(views, dim=1)}

    def on_fit_start(self, views: list[torch.Tensor]) -> None:
        seed = sklearn_seed()  # one random_state for every feature set
        sets = self.feature_sets(views)
        self.names = list(sets)
        labels, self.scores = [], {}
        # scikit-learn's OpenMP/BLAS pools follow hardware.num_threads (set on torch by the engine)
        with threadpool_limits(limits=torch.get_num_threads()):
            for name, features in sets.items():
                x = features.detach().double().cpu().numpy()
                y = np.asarray(self.fit_predict(x, seed), dtype=np.int64)
                labels.append(y)
                if self.per_view and self.candidate_selection == "silhouette":
                    self.scores[name] = float(silhouette_score(x, y)) if len(np.unique(y)) > 1 else -1.0
        self.assignments = torch.as_tensor(np.stack(labels, axis=1), device=views[0].device)

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        if self.assignments.numel() == 0:
            raise RuntimeError("predict before on_fit_start: the partition is computed on all samples at fit time")
        return self.assignments[index.to(self.assignments.device)]

    def assign(self, outputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The one partition; with several candidates, the label-free choice (the engine uses `candidates`)."""
        column = 0
        if outputs.shape[1] > 1:
            if self.candidate_selection == "best_acc":
                raise RuntimeError("view_selection=best_acc needs the labels: the engine chooses among `candidates`")
            if isinstance(self.candidate_selection, int):
                column = self.candidate_selection
            else:
                column = self.names.index(max(self.scores, key=self.scores.get))
        return outputs[:, column].long(), None

    def candidates(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.per_view:
            return {}
        return {name: outputs[:, i].long() for i, name in enumerate(self.names)}

    def candidate_scores(self) -> dict[str, float]:
        return dict(self.scores)
