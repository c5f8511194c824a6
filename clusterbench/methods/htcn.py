"""HTCN: Heterogeneous Tri-stream Clustering Network (X. Deng, D. Huang, C.-D. Wang et al.).

Three augmented views a, b, c of every image. Two online streams (a and c) share the weights
theta: backbone f, projector g, instance predictor p and cluster predictor q. The target stream
(b) has weights xi, an exponential moving average of theta (Eq. 14), and no instance predictor;
no gradient reaches it (stop-gradient). Losses:

- instance (Eq. 1-5): 2 - 2 cos(p(z_online), z_target) per online/target pair;
- cluster (Eq. 6-11): CC's cluster-column InfoNCE minus the cluster-size entropies, per pair.

`loss.pairs` says which pairs: "exchanged" (default; the paper's text, "the exchange of the
online and target views is performed during each training step", and the released loop) runs
the online network on all three views and uses (a, b), (b, a), (c, b), (b, c), the instance
terms SUMMED and the cluster terms AVERAGED (4:1 per pair, as the released code); "printed" is
Eq. 5 and 11 as printed: (a, b) and (c, b), both summed.

Only theta is optimised (Eq. 13); the clusters are the target's cluster predictor on the
unaugmented image. docs/cc_htcn.md maps the paper to this file and lists the open points.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from clusterbench.collectives import gather, gather_nograd
from clusterbench.errors import ConfigError
from clusterbench.losses import bootstrap_loss, cluster_contrastive_loss
from clusterbench.methods.base import ClusteringMethod, DataInfo, StepContext, build_backbone, check_views, term_weights
from clusterbench.nn.heads import mlp_head

TERMS = ("instance", "cluster")
# (online view, target view) pairs, views a, b, c = 0, 1, 2 (b is the target stream of Eq. 5)
PAIRINGS = {"exchanged": ((0, 1), (1, 0), (2, 1), (1, 2)), "printed": ((0, 1), (2, 1))}


class HTCNObjective:
    """HTCN's two loss terms (Eq. 12: their sum), each with a multiplier (Table 6 ablations).

    `pairs`: "exchanged" (default) or "printed"; see the module docstring and
    `reduce_pairs`, which combines the per-pair losses.
    """

    def __init__(
        self,
        weights: dict[str, float],
        cluster_temperature: float = 1.0,
        entropy_weight: float = 1.0,
        pairs: str = "exchanged",
    ) -> None:
        self.weights = term_weights(weights, TERMS)
        if cluster_temperature <= 0:
            raise ConfigError(f"loss.cluster_temperature={cluster_temperature}: must be positive")
        self.cluster_temperature = float(cluster_temperature)
        self.entropy_weight = float(entropy_weight)
        if pairs not in PAIRINGS:
            raise ConfigError(f"loss.pairs={pairs!r}: expected {' or '.join(PAIRINGS)}")
        self.pairs = pairs

    def pair(self, y_online, q_online, z_target, q_target) -> tuple[torch.Tensor, torch.Tensor]:
        """(instance, cluster) loss of one online/target view pair: Eq. 2 and Eq. 8 (under DDP
        the cluster predictions `q_*` are the global batch's, the instance ones this share's)."""
        instance = bootstrap_loss(y_online, z_target)
        cluster = cluster_contrastive_loss(q_online, q_target.detach(), self.cluster_temperature, self.entropy_weight)
        return instance, cluster

    def reduce_pairs(self, instance: list[torch.Tensor], cluster: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-pair losses (in PAIRINGS[pairs] order) -> (instance, cluster): "printed" sums
        both (Eq. 5, Eq. 11); "exchanged" sums the instance terms and averages the cluster
        terms, the released loop's weighting (instance : cluster = 4 : 1 per pair)."""
        if self.pairs == "printed":
            return torch.stack(instance).sum(), torch.stack(cluster).sum()
        return torch.stack(instance).sum(), torch.stack(cluster).mean()

    def combine(self, instance: torch.Tensor, cluster: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = self.weights["instance"] * instance + self.weights["cluster"] * cluster
        return {"loss": loss, "instance": instance.detach(), "cluster": cluster.detach()}


class HTCN(ClusteringMethod):
    """Online streams: backbone, projector, instance_predictor, cluster_predictor; target
    stream: target_backbone, target_projector, target_cluster_predictor (EMA copies)."""

    def __init__(
        self,
        data_info: DataInfo,
        backbone,
        loss: HTCNObjective | None,
        projection_dim: int = 256,
        projector_hidden_dim: int = 4096,
        cluster_hidden_dim: int | None = None,
        momentum: float = 0.99,
    ) -> None:
        super().__init__()
        if not isinstance(loss, HTCNObjective):
            raise ConfigError("model=htcn needs loss=htcn")
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"model.momentum={momentum}: expected a number in [0, 1]")
        self.objective = loss
        self.momentum = float(momentum)
        self.backbone = build_backbone(backbone, data_info, "htcn")
        width = self.backbone.out_dim
        # projector and instance predictor: the same MLP shape, 256-d output (Sec. 3.5)
        self.projector = mlp_head(width, projector_hidden_dim, projection_dim, batch_norm=True)
        self.instance_predictor = mlp_head(projection_dim, projector_hidden_dim, projection_dim, batch_norm=True)
        # the cluster predictor: a two-layer MLP on the projection, softmax over K clusters
        hidden = cluster_hidden_dim or projection_dim
        self.cluster_predictor = nn.Sequential(mlp_head(projection_dim, hidden, data_info.n_clusters), nn.Softmax(dim=1))
        # target stream xi: starts equal to theta, then follows it by EMA; never optimised
        self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.target_cluster_predictor = copy.deepcopy(self.cluster_predictor).requires_grad_(False)

    def online_modules(self) -> list[nn.Module]:
        return [self.backbone, self.projector, self.cluster_predictor]

    def target_modules(self) -> list[nn.Module]:
        return [self.target_backbone, self.target_projector, self.target_cluster_predictor]

    def _online(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projector(self.backbone(x))
        return self.instance_predictor(z), self.cluster_predictor(z)

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.target_projector(self.target_backbone(x))
        return z, self.target_cluster_predictor(z)

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        check_views(views, 3, "htcn")
        pairs = PAIRINGS[self.objective.pairs]
        # one online / target pass per view that a pair reads (BatchNorm sees each view alone)
        online = {v: self._online(views[v]) for v in sorted({o for o, _ in pairs})}
        target = {v: self._target(views[v]) for v in sorted({t for _, t in pairs})}
        # DDP: the cluster columns contrast the global batch (each view gathered once, the online
        # side with gradients); the instance term is a per-sample mean and stays on this share
        online = {v: (y, gather(q)) for v, (y, q) in online.items()}
        target = {v: (z, gather_nograd(q)) for v, (z, q) in target.items()}
        per_pair = [self.objective.pair(*online[o], *target[t]) for o, t in pairs]
        instance, cluster = self.objective.reduce_pairs([p[0] for p in per_pair], [p[1] for p in per_pair])
        return self.objective.combine(instance, cluster)

    @torch.no_grad()
    def on_train_batch_end(self, ctx: StepContext) -> None:
        """Eq. 14: xi <- alpha xi + (1 - alpha) theta, for the parameters. The target's
        BatchNorm statistics come from its own forward passes (train mode), as in BYOL."""
        targets = [p for m in self.target_modules() for p in m.parameters()]
        onlines = [p for m in self.online_modules() for p in m.parameters()]
        torch._foreach_lerp_(targets, onlines, 1.0 - self.momentum)

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return self._target(views[0])[1]

    def embed(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self._target(views[0])[0], dim=1)
