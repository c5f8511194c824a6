"""Contrastive Clustering (Y. Li, P. Hu, Z. Liu, D. Peng, J. T. Zhou, X. Peng, AAAI 2021).

A shared backbone f, an instance head g_I (two-layer MLP -> 128, L2-normalised inside the loss)
and a cluster head g_C (two-layer MLP -> K, softmax) on two augmented views of every image.
The loss is the instance NT-Xent (tau_I = 0.5, Eq. 2-3) plus the cluster-column NT-Xent minus
the cluster-size entropy of each view (tau_C = 1.0, Eq. 5-6); the clusters are the argmax of
g_C on the unaugmented image. docs/cc_htcn.md maps the paper to this file.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from clusterbench.collectives import gather
from clusterbench.errors import ConfigError
from clusterbench.losses import cluster_contrastive_loss, instance_contrastive_loss
from clusterbench.methods.base import ClusteringMethod, DataInfo, StepContext, build_backbone, check_views, term_weights
from clusterbench.nn.heads import mlp_head

TERMS = ("instance", "cluster")


class CCObjective:
    """CC's two loss terms (weighted, so `loss.weights.cluster=0` is an ablation).

    `entropy`: "paper" subtracts H(P_a) + H(P_b) (Eq. 6); "official" is the released code's
    ClusterLoss, which adds log K + sum_k P_k log P_k per view: the paper's value plus the
    constant 2 log K (same gradients, same training; only the logged cluster loss differs).
    """

    def __init__(
        self,
        weights: dict[str, float],
        instance_temperature: float = 0.5,
        cluster_temperature: float = 1.0,
        entropy_weight: float = 1.0,
        entropy: Literal["paper", "official"] = "paper",
    ) -> None:
        self.weights = term_weights(weights, TERMS)
        if entropy not in ("paper", "official"):
            raise ConfigError(f"loss.entropy={entropy!r}: expected paper or official")
        for key, value in (("instance_temperature", instance_temperature), ("cluster_temperature", cluster_temperature)):
            if value <= 0:
                raise ConfigError(f"loss.{key}={value}: must be positive")
        self.instance_temperature = float(instance_temperature)
        self.cluster_temperature = float(cluster_temperature)
        self.entropy_weight = float(entropy_weight)
        self.entropy = entropy

    def instance(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        # DDP: over the global batch (rows of every rank, with gradients); identity in one process
        z_a, z_b = gather(z_a), gather(z_b)
        return instance_contrastive_loss(z_a, z_b, self.instance_temperature)

    def cluster(self, c_a: torch.Tensor, c_b: torch.Tensor) -> torch.Tensor:
        c_a, c_b = gather(c_a), gather(c_b)  # DDP: cluster columns over the global batch
        loss = cluster_contrastive_loss(c_a, c_b, self.cluster_temperature, self.entropy_weight)
        if self.entropy == "official":
            loss = loss + 2 * self.entropy_weight * math.log(c_a.shape[1])
        return loss

    def __call__(self, z_a, z_b, c_a, c_b) -> dict[str, torch.Tensor]:
        instance = self.instance(z_a, z_b)
        cluster = self.cluster(c_a, c_b)
        loss = self.weights["instance"] * instance + self.weights["cluster"] * cluster
        return {"loss": loss, "instance": instance.detach(), "cluster": cluster.detach()}


class ContrastiveClustering(ClusteringMethod):
    """CC: `predict` gives the cluster head's soft assignments of the unaugmented images."""

    def __init__(
        self,
        data_info: DataInfo,
        backbone,
        loss: CCObjective | None,
        feature_dim: int = 128,
        head_hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(loss, CCObjective):
            raise ConfigError("model=cc needs loss=cc")
        self.objective = loss
        self.backbone = build_backbone(backbone, data_info, "cc")
        width = self.backbone.out_dim
        hidden = head_hidden_dim or width  # the released heads keep the backbone's width
        self.instance_head = mlp_head(width, hidden, feature_dim)
        self.cluster_head = nn.Sequential(mlp_head(width, hidden, data_info.n_clusters), nn.Softmax(dim=1))

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x)
        return self.instance_head(h), self.cluster_head(h)

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        check_views(views, 2, "cc")
        # one backbone call per view, as the released code: BatchNorm sees each view's own batch
        z_a, c_a = self._heads(views[0])
        z_b, c_b = self._heads(views[1])
        return self.objective(z_a, z_b, c_a, c_b)

    def unlabeled_step(self, views: list[torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        """Instance loss only (CC's STL-10 script trains on the unlabeled split this way)."""
        check_views(views, 2, "cc")
        instance = self.objective.instance(self.instance_head(self.backbone(views[0])), self.instance_head(self.backbone(views[1])))
        return {"loss": self.objective.weights["instance"] * instance}

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return self.cluster_head(self.backbone(views[0]))

    def embed(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.instance_head(self.backbone(views[0])), dim=1)
