"""SiMVC: simple multi-view clustering (Trosten, Løkse, Jenssen, Kampffmeyer, CVPR 2021, Sec. 3.2).

One MLP encoder per view (512-512-256, ReLU), the views' representations fused by a weighted
mean with learned softmax weights (Eq. 2), and the DDC clustering module on the fused
representation: a hidden layer (Linear-ReLU-BatchNorm, 100 units) and Linear + softmax to the
K clusters. The loss is DDC's three terms (losses/ddc.py); the clusters are the argmax of the
module's output. No alignment of the views' representations: that is the paper's point
(CoMVC, methods/comvc.py, adds the contrastive alignment).

The released code (DanielTrosten/mvc) is the paper here: same network, loss, optimiser (Adam
1e-3, gradient norm clipped at 5) and batch 100; docs/simvc_comvc.md lists the protocol
differences (its per-run model selection and its best-of-20-runs rule).
"""

from __future__ import annotations

import torch
from torch import nn

from clusterbench.errors import ConfigError
from clusterbench.losses.ddc import ddc_terms
from clusterbench.methods.base import ClusteringMethod, DataInfo, StepContext, term_weights
from clusterbench.nn.multiview import ViewEncoders, ViewFusion, check_multiview, he_normal_init

DDC_TERMS = ("ddc_1", "ddc_2", "ddc_3")


class DDCObjective:
    """L_cluster = w_1 L_1 + w_2 L_2 + w_3 L_3 (DDC; every weight 1 in the paper)."""

    terms: tuple[str, ...] = DDC_TERMS

    def __init__(self, weights: dict[str, float] | None = None, rel_sigma: float = 0.15) -> None:
        self.weights = term_weights(weights, self.terms)
        if rel_sigma <= 0:
            raise ConfigError(f"loss.rel_sigma={rel_sigma}: must be positive")
        self.rel_sigma = float(rel_sigma)

    def cluster_terms(self, assignments: torch.Tensor, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        return ddc_terms(assignments, hidden, self.rel_sigma)

    def total(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = sum(self.weights[name] * terms[name] for name in self.terms)
        return {"loss": loss, **{name: value.detach() for name, value in terms.items()}}


class DDCModule(nn.Module):
    """DDC's clustering module: Linear-ReLU[-BatchNorm] hidden layer, then Linear + softmax."""

    def __init__(self, in_dim: int, n_clusters: int, hidden_dim: int = 100, batch_norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.ReLU()]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Sequential(nn.Linear(hidden_dim, n_clusters), nn.Softmax(dim=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden(x)
        return self.output(hidden), hidden


class SiMVC(ClusteringMethod):
    # the DDC terms need all pairs of the batch: not gathered across processes
    global_batch_losses = False
    name = "simvc"
    objective_type: type = DDCObjective

    def __init__(
        self,
        data_info: DataInfo,
        backbone=None,
        loss: DDCObjective | None = None,
        encoder_widths: list[int] = (512, 512, 256),
        encoder_batch_norm: bool = False,
        activation: str = "relu",
        fusion: str = "weighted_mean",
        cluster_hidden_dim: int = 100,
        cluster_batch_norm: bool = True,
        init: str = "he_normal",
    ) -> None:
        super().__init__()
        if type(loss) is not self.objective_type:
            raise ConfigError(f"model={self.name} needs loss={self.name}")
        check_multiview(data_info.n_views, self.name)
        if init not in ("he_normal", "torch"):
            raise ConfigError(f"model.init={init!r}: expected he_normal (the released code's) or torch (nn.Linear's default)")
        self.objective = loss
        self.encoders = ViewEncoders(data_info.dims, encoder_widths, batch_norm=encoder_batch_norm, activation=activation)
        self.fusion = ViewFusion(data_info.n_views, self.encoders.out_dim, fusion)
        self.cluster_module = DDCModule(self.fusion.out_dim, data_info.n_clusters, cluster_hidden_dim, cluster_batch_norm)
        if init == "he_normal":
            self.apply(he_normal_init)

    def forward_views(self, views: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-view representations, fused representation, assignments, DDC hidden)."""
        zs = self.encoders(views)
        fused = self.fusion(zs)
        assignments, hidden = self.cluster_module(fused)
        return zs, fused, assignments, hidden

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        _, _, assignments, hidden = self.forward_views(views)
        return self.objective.total(self.objective.cluster_terms(assignments, hidden))

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return self.forward_views(views)[2]

    def embed(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return self.forward_views(views)[1]
