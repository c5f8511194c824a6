"""CoMVC: contrastive multi-view clustering (Trosten, Løkse, Jenssen, Kampffmeyer, CVPR 2021, Sec. 3.3).

SiMVC (methods/simvc.py) plus a contrastive alignment of the views' representations:

    L = L_cluster + delta * w_min * L_contrastive                      (Eq. 8)

L_contrastive aligns the representations of one sample across views (losses/contrastive.py
`cross_view_contrastive_loss`, Eq. 6-7: cosine similarity / tau, negatives drawn only among
samples the clustering module puts in another cluster); w_min = min_v of the fusion weights
(detached), the adaptive weight that lets the model discard an uninformative view. No projection
head (the paper's default; `projector_widths` adds one).
"""

from __future__ import annotations

import torch
from torch import nn

from clusterbench.errors import ConfigError
from clusterbench.losses.contrastive import cross_view_contrastive_loss
from clusterbench.methods.base import DataInfo, StepContext
from clusterbench.methods.simvc import DDC_TERMS, DDCObjective, SiMVC
from clusterbench.nn.multiview import feature_mlp


class CoMVCObjective(DDCObjective):
    """DDC's terms plus the contrastive term, weighted by delta (and by w_min when adaptive)."""

    terms = (*DDC_TERMS, "contrast")

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        rel_sigma: float = 0.15,
        temperature: float = 0.1,
        delta: float = 0.1,
        negatives_ratio: float | None = 0.25,
        adaptive_weight: bool = True,
    ) -> None:
        super().__init__(weights, rel_sigma)
        if temperature <= 0:
            raise ConfigError(f"loss.temperature={temperature}: must be positive")
        if negatives_ratio is not None and negatives_ratio <= 0:
            raise ConfigError(f"loss.negatives_ratio={negatives_ratio}: must be positive (or null: every other sample)")
        self.temperature = float(temperature)
        self.delta = float(delta)
        self.negatives_ratio = None if negatives_ratio is None else float(negatives_ratio)
        self.adaptive_weight = bool(adaptive_weight)

    def contrast(self, zs: list[torch.Tensor], assignments: torch.Tensor, fusion_weights: torch.Tensor) -> torch.Tensor:
        clusters = assignments.detach().argmax(dim=1)
        loss = cross_view_contrastive_loss(torch.stack(zs), clusters, self.temperature, self.negatives_ratio)
        scale = self.delta * (fusion_weights.detach().min() if self.adaptive_weight else 1.0)
        return scale * loss


class CoMVC(SiMVC):
    name = "comvc"
    objective_type = CoMVCObjective

    def __init__(
        self,
        data_info: DataInfo,
        backbone=None,
        loss: CoMVCObjective | None = None,
        projector_widths: list[int] | None = None,
        **simvc_options,
    ) -> None:
        super().__init__(data_info, backbone, loss, **simvc_options)
        width = self.encoders.out_dim
        self.projector = feature_mlp(width, projector_widths, key="model.projector_widths") if projector_widths else nn.Identity()

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        zs, _, assignments, hidden = self.forward_views(views)
        terms = self.objective.cluster_terms(assignments, hidden)
        terms["contrast"] = self.objective.contrast([self.projector(z) for z in zs], assignments, self.fusion.weights())
        return self.objective.total(terms)
