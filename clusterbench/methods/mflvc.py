"""MFLVC: Multi-level Feature Learning for Contrastive Multi-view Clustering (Xu, Tang, Ren,
Peng, Zhu, He; CVPR 2022).

Per view m an autoencoder E^m / D^m (d_m-500-500-2000-feature_dim and mirrored, nn/multiview.py)
gives the low-level features Z^m; two heads shared by all views read them: W_H (Linear to
high_feature_dim, rows L2-normalised) the high-level features H^m, W_Q (Linear + softmax) the
cluster assignments Q^m. Three stages, by epoch (`stage_epochs`, sum = trainer.max_epochs):

1. pretrain: L_Z (Eq. 2, reconstruction);
2. contrastive: L_Z + L_H + L_Q (Eq. 9: Eq. 5 over all view pairs with tau_F, Eq. 8 with tau_L
   and the cluster-size entropy);
3. tune: at the stage's start k-means on each view's H^m gives pseudo-labels (Eq. 10-11); at the
   start of every tune epoch they are matched to the current argmax of Q^m over all samples by
   the Hungarian method (Eq. 12), and L_P (Eq. 14, cross-entropy) trains the assignments.

Prediction (Eq. 15): argmax of the views' mean assignment (1/M) sum_m q^m.

`variant: official` switches to the released code's behaviour (docs/mflvc.md): k-means on
min-max scaled H^m, L_P on the probabilities given to CrossEntropyLoss (softmax twice), one
full-batch step per tune epoch, each view's entropy in L_Q once per pair, and the loss value
with CC's log K constants. Nothing here reads the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn

from clusterbench.errors import ConfigError
from clusterbench.losses.mflvc import feature_contrastive_loss, label_contrastive_loss, pseudo_label_loss, reconstruction_loss
from clusterbench.losses.pici import match_pseudo_labels
from clusterbench.methods.base import ClusteringMethod, DataInfo, StageSchedule, StepContext, term_weights
from clusterbench.nn.multiview import ViewDecoders, ViewEncoders, check_multiview, feature_mlp

TERMS = ("reconstruction", "feature", "label", "pseudo")
STAGES = ("pretrain", "contrastive", "tune")
STAGE_TERMS = {"pretrain": ("reconstruction",), "contrastive": ("reconstruction", "feature", "label"), "tune": ("pseudo",)}


class MFLVCObjective:
    """MFLVC's named terms with multipliers (`loss.weights.label=0` drops L_Q, ...)."""

    terms = TERMS
    stage_terms = STAGE_TERMS
    label = "MFLVC "

    def __init__(self, weights: dict[str, float] | None = None, feature_temperature: float = 0.5, label_temperature: float = 1.0) -> None:
        self.weights = term_weights(weights, self.terms, self.label)
        if feature_temperature <= 0 or label_temperature <= 0:
            raise ConfigError(
                f"loss.feature_temperature={feature_temperature}, loss.label_temperature={label_temperature}: must be positive"
            )
        self.feature_temperature = float(feature_temperature)
        self.label_temperature = float(label_temperature)

    def combine(self, terms: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        """The stage's weighted sum as "loss"; every term logged (0 outside its stage)."""
        zero = next(iter(terms.values())).new_zeros(())
        loss = sum(self.weights[name] * terms[name] for name in self.stage_terms[stage])
        return {"loss": loss, **{name: terms.get(name, zero).detach() for name in self.terms}}


@dataclass(frozen=True)
class Variant:
    kmeans_features: str  # "normalized": H^m as the contrastive loss sees it; "minmax": min-max scaled per feature
    softmax_twice: bool  # L_P on CrossEntropyLoss(probabilities)
    full_batch_tune: bool  # one optimiser step per tune epoch on all samples
    entropy_per_pair: bool  # each view's entropy once per pair it is in (M - 1 times)
    log_k_offset: bool  # L_Q's value with CC's + log K per view and pair


VARIANTS = {
    "paper": Variant("normalized", False, False, False, False),
    "official": Variant("minmax", True, True, True, True),
}


class MFLVC(ClusteringMethod):
    global_batch_losses = False  # the NT-Xent terms see the local batch: hardware=ddp refuses it
    name = "mflvc"
    objective_class = MFLVCObjective
    variants = VARIANTS

    def __init__(
        self,
        data_info: DataInfo,
        backbone=None,
        loss: MFLVCObjective | None = None,
        encoder_widths: list[int] = (500, 500, 2000, 512),
        high_feature_dim: int = 128,
        high_hidden_dims: list[int] = (),
        stage_epochs: list[int] = (200, 50, 50),
        max_epochs: int | None = None,
        kmeans_n_init: int = 100,
        variant: str = "paper",
    ) -> None:
        super().__init__()
        if not isinstance(loss, self.objective_class):
            raise ConfigError(f"model={self.name} needs loss={self.name}")
        check_multiview(data_info.n_views, self.name)
        if variant not in self.variants:
            raise ConfigError(f"model.variant={variant!r}: expected one of {', '.join(self.variants)}")
        self.schedule = StageSchedule(STAGES, stage_epochs, max_epochs)
        if int(kmeans_n_init) < 1:
            raise ConfigError(f"model.kmeans_n_init={kmeans_n_init}: expected at least 1")
        self.objective = loss
        self.variant_name = variant
        self.variant = self.variants[variant]
        self.kmeans_n_init = int(kmeans_n_init)
        self.n_clusters = data_info.n_clusters
        self.n_views = data_info.n_views
        self.dims = [int(d) for d in data_info.dims]
        widths = [int(w) for w in encoder_widths]
        self.encoders = ViewEncoders(data_info.dims, widths, final_activation=False, key="model.encoder_widths")
        self.decoders = ViewDecoders(data_info.dims, widths, key="model.encoder_widths")
        feature_dim = widths[-1]
        # W_H and W_Q are shared by the views (Sec. 3.2-3.3)
        self.feature_head = feature_mlp(
            feature_dim, [*map(int, high_hidden_dims), int(high_feature_dim)], final_activation=False, key="model.high_hidden_dims"
        )
        self.label_head = nn.Sequential(nn.Linear(feature_dim, data_info.n_clusters), nn.Softmax(dim=1))
        self.stage = STAGES[0]
        # k-means pseudo-labels per view (computed once, at the tune stage's start) and their
        # matching to the assignments (every tune epoch); buffers, so a resumed run keeps them
        self.register_buffer("pseudo", torch.zeros(self.n_views, data_info.n_samples, dtype=torch.long))
        self.register_buffer("targets", torch.zeros(self.n_views, data_info.n_samples, dtype=torch.long))
        self.register_buffer("pseudo_ready", torch.zeros((), dtype=torch.bool))
        self._full_batch_terms: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ network
    def forward_views(self, views: list[torch.Tensor]):
        """Per view: Z^m (low-level), H^m (normalised high-level), Q^m (assignments)."""
        zs = self.encoders(views)
        hs = [F.normalize(self.feature_head(z), dim=1) for z in zs]
        qs = [self.label_head(z) for z in zs]
        return zs, hs, qs

    # ------------------------------------------------------------------ stages
    def stage_of(self, epoch: int) -> str:
        return self.schedule.stage_of(epoch)

    def on_epoch_start(self, epoch: int, ctx: StepContext) -> None:
        self.stage = self.stage_of(epoch)
        self._full_batch_terms = None
        if self.stage != "tune":
            return
        if not bool(self.pseudo_ready):
            self._make_pseudo_labels(ctx)
        assigned = ctx.predict_all(self._assigned).long()  # N x M argmax of each view's Q
        for v in range(self.n_views):
            self.targets[v] = match_pseudo_labels(self.pseudo[v], assigned[:, v].to(self.pseudo.device), self.n_clusters)
        if self.variant.full_batch_tune and self.objective.weights["pseudo"] != 0.0:
            # every sample's views, gathered through the evaluation pass (works on resume too)
            x = ctx.predict_all(lambda views, index: torch.cat(views, dim=1))
            views = list(x.split(self.dims, dim=1))
            index = torch.arange(x.shape[0], device=x.device)
            terms = self._tune_terms(views, index)
            out = self.objective.combine(terms, "tune")
            ctx.optimize("main", out["loss"])
            self._full_batch_terms = {k: v.detach() for k, v in out.items()}

    def _assigned(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        _, _, qs = self.forward_views(views)
        return torch.stack([q.argmax(dim=1) for q in qs], dim=1).float()

    def _high_features(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        _, hs, _ = self.forward_views(views)
        return torch.cat(hs, dim=1)

    def _make_pseudo_labels(self, ctx: StepContext) -> None:
        """Eq. 10-11: k-means on each view's high-level features over all samples."""
        hs = ctx.predict_all(self._high_features).cpu().double().numpy()
        width = hs.shape[1] // self.n_views
        for v in range(self.n_views):
            h = hs[:, v * width : (v + 1) * width]
            if self.variant.kmeans_features == "minmax":
                lo, hi = h.min(axis=0), h.max(axis=0)
                span = hi - lo
                h = (h - lo) / np.where(span > 0, span, 1.0)
            # the k-means seed from torch's RNG: seeded by the run, restored on resume
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            km = KMeans(self.n_clusters, n_init=self.kmeans_n_init, random_state=seed).fit(h)
            self.pseudo[v] = torch.as_tensor(km.labels_, dtype=torch.long, device=self.pseudo.device)
        self.pseudo_ready.fill_(True)

    # ------------------------------------------------------------------ steps
    def _tune_terms(self, views: list[torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
        _, _, qs = self.forward_views(views)
        targets = [self.targets[v, index] for v in range(self.n_views)]
        return {"pseudo": pseudo_label_loss(qs, targets, softmax_twice=self.variant.softmax_twice)}

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        check_multiview(len(views), self.name)
        stage, obj = self.stage, self.objective
        if stage == "tune":
            if self._full_batch_terms is not None:
                # the epoch's one step was taken at its start: its value as a leaf of no
                # parameter, so the engine's step leaves every parameter's gradient unset and
                # Adam skips them
                out = dict(self._full_batch_terms)
                out["loss"] = out["loss"].clone().requires_grad_()
                return out
            return obj.combine(self._tune_terms(views, index), stage)
        zs = self.encoders(views)
        terms = {"reconstruction": reconstruction_loss(views, self.decoders(zs))}
        if stage == "contrastive":
            hs = [F.normalize(self.feature_head(z), dim=1) for z in zs]
            qs = [self.label_head(z) for z in zs]
            terms.update(self.contrastive_terms(hs, qs, ctx))
        return obj.combine(terms, stage)

    def contrastive_terms(self, hs: list[torch.Tensor], qs: list[torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        """The contrastive stage's terms besides L_Z: L_H (Eq. 5) and L_Q (Eq. 8)."""
        obj, w, v = self.objective, self.objective.weights, self.variant
        zero = hs[0].new_zeros((), dtype=torch.float32)
        return {
            "feature": feature_contrastive_loss(hs, obj.feature_temperature) if w["feature"] != 0 else zero,
            "label": label_contrastive_loss(qs, obj.label_temperature, v.entropy_per_pair, v.log_k_offset) if w["label"] != 0 else zero,
        }

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """Eq. 15: the views' mean assignment."""
        _, _, qs = self.forward_views(views)
        return torch.stack(qs).mean(dim=0)

    def embed(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """The views' high-level features H^m, concatenated (N x M * high_feature_dim)."""
        return self._high_features(views, index)
