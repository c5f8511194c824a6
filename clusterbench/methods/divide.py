"""DIVIDE: Decoupled Contrastive Multi-View Clustering with High-Order Random Walks (Lu, Lin,
Yang, Peng, Hu, Peng; AAAI 2024). SDCIB's Table 2 lists it as "DIVICE".

Per view v: an online encoder f_v (MLP with BatchNorm and dropout, last layer BatchNorm without
affine), a momentum target encoder f'_v (EMA of f_v, no gradient) and a cross-view predictor g_v
(MLP d -> 4d -> d). Each step:
- targets T_v = random_walk_targets(f'_v(x_v)) (losses/divide.py), or the identity during the
  first `start_rectify_epoch` epochs (warm-up: plain instance contrast);
- intra-view loss:  mean_v  L(f_v(x_v), f'_v(x_v); T_v)
- inter-view loss:  mean_{v != u}  L(g_v(f_v(x_v)), f'_u(x_u); T_u)
  with L = soft_target_contrastive (temperature tau); loss = intra + inter.
Clusters: k-means on the concatenation of the L2-normalised g_v(f'_v(x_v)) (eval mode),
L2-normalised again, as the released code evaluates.

The released code handles two views; with V > 2 views every ordered pair (v, u) enters the
inter-view mean (for V = 2 the two terms of the released code). Complete data only: the
missing-view path (a view recovered by the other view's predictor) is not built.

`variant: official` switches on the released code's behaviours that the description leaves
open or that differ (docs/icmvc_divide.md lists them): the loss as the mean over the N x N
matrix (1/N of the per-anchor mean), the same batches in every epoch (its sampler's epoch is
never advanced), k-means with scikit-learn's default n_init and random_state 0.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn

from clusterbench.errors import ConfigError
from clusterbench.losses.divide import random_walk_targets, soft_target_contrastive
from clusterbench.methods.base import ClusteringMethod, DataInfo, StepContext, term_weights
from clusterbench.nn.multiview import check_multiview

TERMS = ("intra", "inter")


class DIVIDEObjective:
    """The two named terms; `weights.inter=0` is the intra-view-only ablation."""

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        temperature: float = 0.5,
        walk_temperature: float = 0.1,
        walk_steps: int = 5,
        walk_alpha: float = 0.5,
    ) -> None:
        self.weights = term_weights(weights, TERMS, "DIVIDE ")
        for key, value in (("temperature", temperature), ("walk_temperature", walk_temperature)):
            if value <= 0:
                raise ConfigError(f"loss.{key}={value}: must be positive")
        if not isinstance(walk_steps, int) or walk_steps < 1:
            raise ConfigError(f"loss.walk_steps={walk_steps}: expected a positive integer")
        if not 0.0 <= walk_alpha <= 1.0:
            raise ConfigError(f"loss.walk_alpha={walk_alpha}: expected a value in [0, 1]")
        self.temperature = float(temperature)
        self.walk_temperature = float(walk_temperature)
        self.walk_steps = walk_steps
        self.walk_alpha = float(walk_alpha)


@dataclass(frozen=True)
class Variant:
    reduction: Literal["anchor_mean", "pair_mean"]  # soft_target_contrastive's reduction
    fixed_batches: bool  # the same batches (one permutation drawn at the start) in every epoch
    kmeans_n_init: int | None  # None: model.kmeans_n_init
    kmeans_seed: int | None  # None: drawn from the run's seed


VARIANTS = {
    "paper": Variant(reduction="anchor_mean", fixed_batches=False, kmeans_n_init=None, kmeans_seed=None),
    "official": Variant(reduction="pair_mean", fixed_batches=True, kmeans_n_init=1, kmeans_seed=0),
}


def divide_encoder(in_dim: int, widths: list[int], dropout: float) -> nn.Sequential:
    """The released FCN: Linear (no bias) - BatchNorm - ReLU per hidden layer, dropout after
    every hidden layer but the last one, then Linear (no bias) - BatchNorm without affine."""
    layers: list[nn.Module] = []
    dims = [in_dim, *widths]
    hidden = len(widths) - 1
    for i in range(hidden):
        layers += [nn.Linear(dims[i], dims[i + 1], bias=False), nn.BatchNorm1d(dims[i + 1]), nn.ReLU()]
        if dropout > 0 and i < hidden - 1:
            layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(dims[-2], dims[-1], bias=False), nn.BatchNorm1d(dims[-1], affine=False)]
    return nn.Sequential(*layers)


class DIVIDE(ClusteringMethod):
    global_batch_losses = False  # the random walk and the contrast see one process's batch

    def __init__(
        self,
        data_info: DataInfo,
        backbone=None,
        loss: DIVIDEObjective | None = None,
        encoder_widths: list[int] = (1024, 1024, 1024, 128),
        dropout: float = 0.2,
        predictor_ratio: float = 4.0,
        momentum: float = 0.98,
        start_rectify_epoch: int = 100,
        kmeans_n_init: int = 10,
        variant: Literal["paper", "official"] = "paper",
    ) -> None:
        super().__init__()
        if not isinstance(loss, DIVIDEObjective):
            raise ConfigError("model=divide needs loss=divide")
        check_multiview(data_info.n_views, "divide")
        if variant not in VARIANTS:
            raise ConfigError(f"model.variant={variant!r}: expected one of {', '.join(VARIANTS)}")
        widths = list(encoder_widths)
        if len(widths) < 2 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ConfigError(f"model.encoder_widths={widths}: expected at least two positive layer widths")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.dropout={dropout}: expected a value in [0, 1)")
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"model.momentum={momentum}: expected a value in [0, 1]")
        if kmeans_n_init < 1:
            raise ConfigError(f"model.kmeans_n_init={kmeans_n_init}: expected at least 1")
        self.variant = VARIANTS[variant]
        self.objective = loss
        self.n_clusters = data_info.n_clusters
        self.momentum = float(momentum)
        self.start_rectify_epoch = int(start_rectify_epoch)
        self.kmeans_n_init = self.variant.kmeans_n_init or int(kmeans_n_init)
        self.online = nn.ModuleList(divide_encoder(d, widths, dropout) for d in data_info.dims)
        self.target = copy.deepcopy(self.online)
        for p in self.target.parameters():
            p.requires_grad_(False)
        d, hidden = widths[-1], int(widths[-1] * predictor_ratio)
        self.predictors = nn.ModuleList(nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d)) for _ in data_info.dims)
        self.register_buffer("kmeans_seed", torch.zeros((), dtype=torch.long))
        self._all_views: list[torch.Tensor] | None = None
        # official: the run's one batch order (not saved: a resumed run draws a new one)
        self.register_buffer("batch_order", torch.zeros(0, dtype=torch.long), persistent=False)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"main": [*self.online.parameters(), *self.predictors.parameters()]}

    def on_fit_start(self, views: list[torch.Tensor]) -> None:
        # one k-means seed per run, drawn now, so evaluations never move the training RNG
        seed = self.variant.kmeans_seed
        self.kmeans_seed.fill_(int(torch.randint(0, 2**31 - 1, (1,)).item()) if seed is None else seed)
        if self.variant.fixed_batches:
            self._all_views = views
            self.batch_order = torch.randperm(views[0].shape[0]).to(views[0].device)

    @torch.no_grad()
    def _update_target(self) -> None:
        m = self.momentum
        for online, target in zip(self.online.parameters(), self.target.parameters()):
            target.mul_(m).add_(online.detach(), alpha=1 - m)

    def _fixed_batch(self, views: list[torch.Tensor], ctx: StepContext) -> list[torch.Tensor]:
        """The released sampler: one permutation for the whole run, batch b of it at the b-th
        step of every epoch (drop_last, as the engine's batches)."""
        size = views[0].shape[0]
        n_batches = self.batch_order.numel() // size
        b = ctx.step % n_batches
        index = self.batch_order[b * size : (b + 1) * size]
        return [x[index] for x in self._all_views]

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        obj, w = self.objective, self.objective.weights
        if self.variant.fixed_batches and self._all_views is not None:
            views = self._fixed_batch(views, ctx)
        # the released code moves the target before the forward pass (the first call copies)
        self._update_target()
        z = [net(x) for net, x in zip(self.online, views)]
        p = [g(zv) for g, zv in zip(self.predictors, z)]
        with torch.no_grad():
            zt = [net(x) for net, x in zip(self.target, views)]
        n = z[0].shape[0]
        if ctx.epoch <= self.start_rectify_epoch:  # warm-up: every sample its own only positive
            eye = torch.eye(n, device=z[0].device)
            targets = [eye] * len(z)
        else:
            targets = [random_walk_targets(t, obj.walk_temperature, obj.walk_steps, obj.walk_alpha) for t in zt]

        def contrast(q, k, t):
            return soft_target_contrastive(q, k, t, obj.temperature, self.variant.reduction)

        n_views = len(z)
        intra = sum(contrast(z[v], zt[v], targets[v]) for v in range(n_views)) / n_views
        inter = sum(contrast(p[v], zt[u], targets[u]) for v in range(n_views) for u in range(n_views) if u != v)
        inter = inter / (n_views * (n_views - 1))
        loss = w["intra"] * intra + w["inter"] * inter
        return {"loss": loss, "intra": intra.detach(), "inter": inter.detach()}

    def embed(self, views: list[torch.Tensor], index: torch.Tensor | None = None) -> torch.Tensor:
        """[g_1(f'_1(x_1)) / ||.||, ..., g_V(f'_V(x_V)) / ||.||], batch x V*d."""
        return torch.cat([F.normalize(g(net(x)), dim=1) for net, g, x in zip(self.target, self.predictors, views)], dim=1)

    def predict(self, views: list[torch.Tensor], index: torch.Tensor | None = None) -> torch.Tensor:
        """The features k-means clusters (assign runs it on all samples at once)."""
        return self.embed(views, index)

    def assign(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """k-means (scikit-learn, k-means++ seeding) on the L2-normalised concatenation; no soft
        assignment (k-means gives none)."""
        x = F.normalize(outputs.float(), dim=1).cpu().numpy().astype(np.float64)
        km = KMeans(self.n_clusters, n_init=self.kmeans_n_init, random_state=int(self.kmeans_seed)).fit(x)
        return torch.as_tensor(km.labels_, dtype=torch.long, device=outputs.device), None
