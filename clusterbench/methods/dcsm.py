"""DCSM (F. Peng, K. Li, "Deep Image Clustering Based on Label Similarity and Maximizing Mutual
Information across Views", Applied Sciences 13(1):674, 2023) on the losses of
clusterbench/losses/dcsm.py.

A shared conv backbone (VGG in the paper; SmallCNN for the quick CPU setting) gives a feature
map C (last conv stage) and, after global pooling (and SmallCNN's projection), a global feature
h.  Two fully connected heads on h: the C-block (K outputs -> label features l, Eq. 3: unit L2
norm, entries in [0, 1]) and the IR-block (30-d instance features z).  Two 1x1-conv
discriminators (DIM-style, JSD estimator): T_g scores (global z, one location of a feature map)
for L_LMI / L_LMIT, T_l scores (location of C~, same location of C) for L_LMIC.

Every training step gets two views of the batch: view 0 the original image, view 1 the
transformed one (configs/augment/dcsm.yaml).  Per step (docs/dcsm.md lists the choices):

- targets r_ij (Eq. 2): k-means (K clusters, `kmeans_iters` Lloyd iterations, deterministic
  farthest-point init, in torch on the training device, no host syncs) on the detached label
  features of the ORIGINAL view of the batch, recomputed every batch;
- L_DT (Eq. 1) on the label features of the TRANSFORMED view against r;
- L_FT (Eq. 4-5) and L_E (Eq. 11) on the label features of the original view;
- L_LMI(z~, C), L_LMIT(z~, C~), L_LMIC(C~, C) (Eq. 7-9): z~ the IR features of the transformed
  view; for every pair (i, j) of the batch the discriminator scores z~_i against every location
  of sample j's map; positives: same k-means cluster (`mi_pair_masks`, i = j always positive),
  negatives: all other samples of the batch, from the same map as the positive;
- total (Eq. 12) through `dcsm_objective`.

`predict`: the label features of the unaugmented image (argmax = cluster); `embed`: the IR
features.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from clusterbench.collectives import gather, gather_nograd
from clusterbench.errors import ConfigError
from clusterbench.losses.dcsm import (
    cluster_entropy_loss,
    confident_pair_targets,
    dac_thresholds,
    dcsm_objective,
    dt_loss,
    ft_loss,
    label_features,
    local_mi_jsd,
    mi_pair_masks,
    similarity_targets,
    threshold_similarity_targets,
)
from clusterbench.methods.base import ClusteringMethod, DataInfo, StepContext, build_backbone, check_views, term_weights
from clusterbench.nn.heads import mlp_head

TERMS = ("dt", "ft", "lmi", "lmit", "lmic", "e")
MI_TERMS = ("lmi", "lmit", "lmic")


# --------------------------------------------------------------------------- k-means targets
def batch_kmeans(x: torch.Tensor, k: int, iters: int = 10) -> torch.Tensor:
    """Hard k-means of the rows of ``x`` (N x D) into ``min(k, N)`` clusters -> (N,) int64.

    Deterministic farthest-point initialisation (first centre: row 0; each next centre: the
    row farthest from the centres so far), then ``iters`` Lloyd steps; an empty cluster keeps
    its centre.  Pure tensor ops with fixed shapes (argmin / argmax / one-hot matmuls): no
    host-device synchronisation.  ``x`` is detached (the clusters are pseudo-labels).
    """
    x = x.detach().float()
    n = x.shape[0]
    k = min(int(k), n)
    centers = x[:1]
    d_min = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        nxt = x[d_min.argmax()].unsqueeze(0)
        centers = torch.cat([centers, nxt])
        d_min = torch.minimum(d_min, ((x - nxt) ** 2).sum(1))
    assign = torch.cdist(x, centers).argmin(1)
    for _ in range(iters):
        onehot = nn.functional.one_hot(assign, k).to(x.dtype)  # N x k
        counts = onehot.sum(0)
        means = (onehot.t() @ x) / counts.clamp_min(1).unsqueeze(1)
        centers = torch.where(counts.unsqueeze(1) > 0, means, centers)
        assign = torch.cdist(x, centers).argmin(1)
    return assign


# --------------------------------------------------------------------------- discriminator
class PairDiscriminator(nn.Module):
    """DIM's local discriminator: 1x1 conv on [a ; b(location)] -> ReLU -> 1x1 conv -> 1 score.

    ``a`` is either a global vector (N x A, broadcast to every location: the global-local
    terms) or a map (N x A x h x w, matched location by location: the local-local term).
    ``forward(a, b)`` scores sample i's a with sample i's map b (N x h x w); ``pairwise(a, b)``
    scores every pair (i, j): a of sample i with the map of sample j -> N x N x h x w.  The first
    layer is linear in the concatenation, so pairwise splits it into the a part and the b part
    and adds them (no N^2 concatenated copies).
    """

    def __init__(self, a_dim: int, b_dim: int, hidden_dim: int = 64) -> None:
        super().__init__()
        self.a_dim, self.b_dim = a_dim, b_dim
        self.conv1 = nn.Conv2d(a_dim + b_dim, hidden_dim, kernel_size=1)
        self.conv2 = nn.Conv2d(hidden_dim, 1, kernel_size=1)

    @staticmethod
    def _as_map(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return a[:, :, None, None].expand(-1, -1, *like.shape[-2:]) if a.dim() == 2 else a

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self._as_map(a, b), b], dim=1)
        return self.conv2(torch.relu(self.conv1(x))).squeeze(1)

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        w = self.conv1.weight.flatten(1)  # hidden x (A + B)
        w_a, w_b = w[:, : self.a_dim], w[:, self.a_dim :]
        ha = torch.einsum("ka,na...->nk...", w_a, a)  # N x H (x h x w)
        hb = torch.einsum("kb,nbyx->nkyx", w_b, b) + self.conv1.bias[None, :, None, None]  # N x H x h x w
        if ha.dim() == 2:
            ha = ha[:, :, None, None]
        hidden = torch.relu(ha[:, None] + hb[None])  # N(a) x N(b) x H x h x w
        v = self.conv2.weight.flatten()  # H
        return torch.einsum("ijkyx,k->ijyx", hidden, v) + self.conv2.bias


# --------------------------------------------------------------------------- objective
class DCSMObjective:
    """DCSM's loss settings: Eq. 12 ``eps L_DT + L_FT + L_MI + lam L_E`` with Eq. 10
    ``L_MI = alpha L_LMI + beta L_LMIT + delta L_LMIC``, and per-term multipliers `weights`
    (keys dt, ft, lmi, lmit, lmic, e; 1 by default).  A term with weight 0 is not computed and
    is logged as 0: DCSM-oc (class-level block only) is ``loss.weights.lmi=0
    loss.weights.lmit=0 loss.weights.lmic=0``; Table 5 (L_ZC = L_LMI + L_LMIT vs L_LMIC) and
    Table 6 (without L_FT / L_MI) are such overrides too.

    - `targets`: "kmeans" (the paper's Eq. 2, k-means on the original view's label features
      every batch, `kmeans_iters` iterations) or "threshold" (the DAC / DCCM baseline of Table
      4: ``l_i . l_j >= target_threshold``, on the original view).
    - `kmeans_scope`: "batch" (k-means on each batch's original view, every step) or "dataset"
      (k-means on every sample's unaugmented label features at the start of each epoch; a
      batch reads its samples' clusters). Also the MI pairs' clusters with `mi_pairs=kmeans`.
    - `mi_pairs`: "kmeans" (positives = same k-means cluster, the recommended reading) or
      "predicted" (same argmax of the original view's label features).
    - `ft_threshold`: Eq. 4's threshold on the L2-normalised label features (0.99).
    - `dt_reduction`, `ft_reduction`: "mean" (default, see losses/dcsm.py) or "sum" (literal).
    - `entropy_normalize`: Eq. 11 with q rescaled to sum to 1 (default) or literal.
    - `pair_mask` (clusterbench options, not in the paper): "none" (every pair of Eq. 1 is
      trained) or "confidence" (`confident_pair_targets`: a same-cluster pair only where
      l_i . l_j >= u, a different-cluster pair only where l_i . l_j <= l, with DAC's moving
      thresholds u, l from `pair_mask_upper`, `pair_mask_lower`, `pair_mask_step` per epoch).
    - `warmup_epochs` (clusterbench option): the first epochs train the MI terms alone, with
      DIM's positives (the two views of one image), before any k-means target is read.
    - `kmeans_features` (clusterbench option): what k-means clusters, "label" (the paper: the
      label features l of the original view) or "backbone" (the L2-normalised global feature
      h of the original view, DeepCluster's choice: informative before the C-block is trained).
    """

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        eps: float = 1.0,
        lam: float = 1.0,
        alpha: float = 0.2,
        beta: float = 1.0,
        delta: float = 0.1,
        ft_threshold: float = 0.99,
        targets: Literal["kmeans", "threshold"] = "kmeans",
        target_threshold: float = 0.95,
        kmeans_iters: int = 10,
        kmeans_scope: Literal["batch", "dataset"] = "batch",
        mi_pairs: Literal["kmeans", "predicted"] = "kmeans",
        dt_reduction: Literal["mean", "sum"] = "mean",
        ft_reduction: Literal["mean", "sum"] = "mean",
        entropy_normalize: bool = True,
        pair_mask: Literal["none", "confidence"] = "none",
        pair_mask_upper: float = 0.95,
        pair_mask_lower: float = 0.455,
        pair_mask_step: float = 0.0099,
        warmup_epochs: int = 0,
        kmeans_features: Literal["label", "backbone"] = "label",
    ) -> None:
        self.weights = term_weights(weights, TERMS)
        if kmeans_features not in ("label", "backbone"):
            raise ConfigError(f"loss.kmeans_features={kmeans_features!r}: expected label or backbone")
        self.kmeans_features = kmeans_features
        if pair_mask not in ("none", "confidence"):
            raise ConfigError(f"loss.pair_mask={pair_mask!r}: expected none or confidence")
        if not 0 <= pair_mask_lower <= pair_mask_upper <= 1:
            raise ConfigError(
                f"loss.pair_mask_lower={pair_mask_lower}, loss.pair_mask_upper={pair_mask_upper}: expected 0 <= lower <= upper <= 1"
            )
        if pair_mask_step < 0 or warmup_epochs < 0:
            raise ConfigError(f"loss.pair_mask_step={pair_mask_step}, loss.warmup_epochs={warmup_epochs}: must be >= 0")
        self.pair_mask = pair_mask
        self.pair_mask_upper, self.pair_mask_lower = float(pair_mask_upper), float(pair_mask_lower)
        self.pair_mask_step = float(pair_mask_step)
        self.warmup_epochs = int(warmup_epochs)
        for key, value in self.weights.items():
            if float(value) < 0:
                raise ConfigError(f"loss.weights.{key}={value}: must be >= 0")
        if targets not in ("kmeans", "threshold"):
            raise ConfigError(f"loss.targets={targets!r}: expected kmeans or threshold")
        if kmeans_scope not in ("batch", "dataset"):
            raise ConfigError(f"loss.kmeans_scope={kmeans_scope!r}: expected batch or dataset")
        if mi_pairs not in ("kmeans", "predicted"):
            raise ConfigError(f"loss.mi_pairs={mi_pairs!r}: expected kmeans or predicted")
        for key, value in (("ft_threshold", ft_threshold), ("target_threshold", target_threshold)):
            if not 0 < value <= 1:
                raise ConfigError(f"loss.{key}={value}: must lie in (0, 1]")
        for key, value in (("dt_reduction", dt_reduction), ("ft_reduction", ft_reduction)):
            if value not in ("mean", "sum"):
                raise ConfigError(f"loss.{key}={value!r}: expected mean or sum")
        if kmeans_iters < 0:
            raise ConfigError(f"loss.kmeans_iters={kmeans_iters}: must be >= 0")
        self.eps, self.lam = float(eps), float(lam)
        self.alpha, self.beta, self.delta = float(alpha), float(beta), float(delta)
        self.ft_threshold = float(ft_threshold)
        self.targets = targets
        self.target_threshold = float(target_threshold)
        self.kmeans_iters = int(kmeans_iters)
        self.kmeans_scope = kmeans_scope
        self.mi_pairs = mi_pairs
        self.dt_reduction, self.ft_reduction = dt_reduction, ft_reduction
        self.entropy_normalize = bool(entropy_normalize)

    def uses(self, term: str) -> bool:
        return self.weights[term] != 0.0

    @property
    def uses_mi(self) -> bool:
        return any(self.uses(t) for t in MI_TERMS)

    def combine(self, terms: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        """Eq. 10 + 12 via dcsm_objective, with the per-term multipliers folded into its
        coefficients (L_FT's own multiplier is added outside, it has no coefficient there)."""
        w = self.weights
        out = dcsm_objective(
            **terms,
            eps=self.eps * w["dt"],
            lam=self.lam * w["e"],
            alpha=self.alpha * w["lmi"],
            beta=self.beta * w["lmit"],
            delta=self.delta * w["lmic"],
        )
        loss = out["total"] + (w["ft"] - 1.0) * out["ft"]
        logged = {name: out[name].detach() for name in (*TERMS, "mi")}
        return {"loss": loss, **logged}


# --------------------------------------------------------------------------- method
class DCSM(ClusteringMethod):
    """DCSM: backbone + C-block (label features) + IR-block (30-d) + two 1x1-conv
    discriminators; see the module docstring for what one training step computes."""

    def __init__(
        self,
        data_info: DataInfo,
        backbone,
        loss: DCSMObjective | None,
        instance_dim: int = 30,
        head_hidden_dim: int | None = None,
        discriminator_hidden_dim: int = 64,
        kmeans_clusters: int | None = None,
        map_after_pool: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(loss, DCSMObjective):
            raise ConfigError("model=dcsm needs loss=dcsm")
        self.objective = loss
        self.backbone = build_backbone(backbone, data_info, "dcsm")
        features = getattr(self.backbone, "features", None)
        if not isinstance(features, nn.Sequential):
            raise ConfigError("model=dcsm needs the feature map: use backbone=small_cnn | vgg16 | vgg_small (an nn.Sequential .features)")
        # C for the local MI: the map after the k-th pooling layer (DIM reads an intermediate
        # map; a VGG's last map is 1x1 at 28-32 px), or the last conv stage's output (null)
        self.map_cut = len(features)
        if map_after_pool is not None:
            pools = [i for i, m in enumerate(features) if "Pool" in type(m).__name__]
            if not isinstance(map_after_pool, int) or isinstance(map_after_pool, bool) or not 1 <= map_after_pool <= len(pools):
                raise ConfigError(
                    f"model.map_after_pool={map_after_pool!r}: expected null or 1..{len(pools)} (the backbone's pooling layers)"
                )
            self.map_cut = pools[map_after_pool - 1] + 1
        convs = [m for m in features[: self.map_cut].modules() if isinstance(m, nn.Conv2d)]
        self.map_dim = convs[-1].out_channels
        width = self.backbone.out_dim
        hidden = head_hidden_dim or width
        self.n_clusters = data_info.n_clusters
        self.kmeans_clusters = int(kmeans_clusters or data_info.n_clusters)
        self.c_block = mlp_head(width, hidden, data_info.n_clusters)  # logits -> label features (Eq. 3)
        self.ir_block = mlp_head(width, hidden, instance_dim)
        self.global_disc = PairDiscriminator(instance_dim, self.map_dim, discriminator_hidden_dim)
        # kmeans_scope=dataset: every sample's cluster, refreshed at each epoch's start (saved in
        # checkpoints, so a resumed run reads the same targets)
        self.register_buffer("dataset_clusters", torch.zeros(data_info.n_samples, dtype=torch.long))
        self.local_disc = PairDiscriminator(self.map_dim, self.map_dim, discriminator_hidden_dim)

    # ------------------------------------------------------------------ forward parts
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(feature map C: N x map_dim x h x w, global feature: N x out_dim); the global feature
        equals backbone(x) for SmallCNN and VGG (pooling, then SmallCNN's projection)."""
        features = self.backbone.features
        fmap = features[: self.map_cut](x)
        rest = features[self.map_cut :](fmap) if self.map_cut < len(features) else fmap
        h = torch.flatten(self.backbone.avgpool(rest), 1)
        head = getattr(self.backbone, "head", None)
        if head is not None:
            h = head(h)
        return fmap, h

    def label_features(self, h: torch.Tensor) -> torch.Tensor:
        return label_features(self.c_block(h))

    def kmeans_input(self, l: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """What k-means clusters (`loss.kmeans_features`): the label features l, or the
        L2-normalised global feature h, of the original view."""
        return nn.functional.normalize(h, dim=1) if self.objective.kmeans_features == "backbone" else l

    def cluster_targets(self, features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The batch's k-means clusters: of the original view's `kmeans_input`, recomputed every
        batch (kmeans_scope=batch), or read from the epoch's k-means over all samples (dataset)."""
        if self.objective.kmeans_scope == "dataset":
            return self.dataset_clusters[index]
        return batch_kmeans(features, self.kmeans_clusters, self.objective.kmeans_iters)

    def _kmeans_input_of(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        h = self.encode(views[0])[1]
        return self.kmeans_input(self.label_features(h), h)

    def on_epoch_start(self, epoch: int, ctx: StepContext) -> None:
        self.epoch = int(epoch)
        if self.objective.kmeans_scope == "dataset":
            features = ctx.predict_all(self._kmeans_input_of)
            self.dataset_clusters.copy_(batch_kmeans(features, self.kmeans_clusters, self.objective.kmeans_iters))

    # ------------------------------------------------------------------ engine contract
    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        check_views(views, 2, "dcsm")
        obj = self.objective
        c_map, h = self.encode(views[0])  # original
        ct_map, ht = self.encode(views[1])  # transformed
        # DDP: every term below pairs, clusters or pools the batch's samples, so all of them see
        # the global batch: the backbone's outputs are gathered (with gradients to this share)
        # and the heads, k-means and discriminators run on the whole batch on every process
        c_map, h, ct_map, ht = (gather(x) for x in (c_map, h, ct_map, ht))
        index = gather_nograd(index)
        l, lt = self.label_features(h), self.label_features(ht)

        epoch = getattr(self, "epoch", 0)
        warmup = epoch < obj.warmup_epochs  # MI terms only, DIM's same-image positives
        # k-means only where its clusters are read (not for threshold targets with predicted pairs)
        needs_clusters = not warmup and ((obj.uses("dt") and obj.targets == "kmeans") or (obj.uses_mi and obj.mi_pairs == "kmeans"))
        assign = self.cluster_targets(self.kmeans_input(l, h), index) if needs_clusters else None
        terms: dict[str, torch.Tensor | None] = dict.fromkeys(TERMS)
        if warmup:
            if not obj.uses_mi:
                raise ConfigError("loss.warmup_epochs trains the MI terms alone: their weights are 0")
            assign = torch.arange(l.shape[0], device=l.device)
        elif obj.uses("dt"):
            if obj.targets == "kmeans" and obj.pair_mask == "confidence":
                upper, lower = dac_thresholds(epoch - obj.warmup_epochs, obj.pair_mask_upper, obj.pair_mask_lower, obj.pair_mask_step)
                r, mask = confident_pair_targets(assign, l, upper, lower)
                terms["dt"] = dt_loss(lt, r, mask, reduction=obj.dt_reduction)
            elif obj.targets == "kmeans":
                terms["dt"] = dt_loss(lt, similarity_targets(assign), reduction=obj.dt_reduction)
            else:
                r, mask = threshold_similarity_targets(l, upper=obj.target_threshold)
                terms["dt"] = dt_loss(lt, r, mask, reduction=obj.dt_reduction)
        if obj.uses("ft") and not warmup:
            terms["ft"] = ft_loss(l, obj.ft_threshold, reduction=obj.ft_reduction)
        if obj.uses("e") and not warmup:
            terms["e"] = cluster_entropy_loss(l, normalize=obj.entropy_normalize)
        if obj.uses_mi:
            pair_source = assign if (warmup or obj.mi_pairs == "kmeans") else l.detach().argmax(1)
            pos, neg = mi_pair_masks(pair_source)
            zt = self.ir_block(ht)
            if obj.uses("lmi"):
                terms["lmi"] = local_mi_jsd(self.global_disc.pairwise(zt, c_map), pos, neg)
            if obj.uses("lmit"):
                terms["lmit"] = local_mi_jsd(self.global_disc.pairwise(zt, ct_map), pos, neg)
            if obj.uses("lmic"):
                terms["lmic"] = local_mi_jsd(self.local_disc.pairwise(ct_map, c_map), pos, neg)
        if all(v is None for v in terms.values()):
            raise ConfigError("loss.weights: every DCSM term has weight 0")
        return obj.combine(terms)

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return self.label_features(self.encode(views[0])[1])

    def embed(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return self.ir_block(self.encode(views[0])[1])
