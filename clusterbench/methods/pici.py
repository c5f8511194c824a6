"""PICI: deep image clustering via Partial Information discrimination and Cross-level
Interaction (Zhang, Huang et al.).

A ViT MAE encoder F (nn/vit.py) sees two views of every image, a weak one (resize + normalise)
and a strong one, each with `mask_ratio` of its patches removed at random; an MAE decoder D
reconstructs the masked patches; CC's instance head G_I (MLP -> 128) and cluster head G_C
(MLP -> K, softmax) read the [CLS] token. Three stages, by epoch (`stage_epochs`, Alg. 1):

1. pre-training: L_PISD (Eq. 1, masked-patch MSE of both views);
2. training: L_PISD + L_PICD (Eq. 2: CC's instance + cluster losses, Eq. 3-11);
3. boosting: L_PICD + L_CLI. At the start of every boosting epoch, k-means on the instance
   features of ALL samples (Eq. 12-13) gives pseudo-labels, matched to the cluster head's
   argmax over all samples by the Hungarian method (Eq. 14-15); L_CLI is the cross-entropy of
   the matched one-hot pseudo-labels against log C of both views (Eq. 16).

Test: the cluster head's argmax on the unmasked, unaugmented image. The engine has no notion of
stages: the stage is read from the epoch number in `on_epoch_start`, and `stage_epochs` must
sum to trainer.max_epochs. `variant: official` switches to the released code's behaviours
(docs/vit_methods.md): masked test inference, softmax applied twice in L_CLI, pseudo-labels
computed once at the start of boosting from masked views (per-batch min-max scaled features,
k-means n_init 100) and matched per batch. `norm_pix_loss: true` reconstructs each masked
patch normalised by its own mean and variance (the released MAE; the paper: pixels). (The
released views are an augmentation setting; +experiment=pici_official sets all of these.) Nothing here reads the labels: the boosting result is the last
epoch's, whatever trainer.selection the run uses.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

from clusterbench.collectives import broadcast_, gather_nograd, is_main_process, own_rows
from clusterbench.errors import ConfigError
from clusterbench.losses.pici import cli_loss, masked_patch_mse, match_pseudo_labels, pisd_loss
from clusterbench.methods.base import ClusteringMethod, DataInfo, StageSchedule, StepContext, check_views, term_weights
from clusterbench.methods.cc import CCObjective
from clusterbench.nn.heads import mlp_head
from clusterbench.nn.vit import MAEDecoder, MAEEncoder, patchify
from clusterbench.nn.vit import vit_size as vit_size_of

TERMS = ("pisd", "instance", "cluster", "cli")
STAGES = ("pretrain", "train", "boost")
# the terms each stage optimises (Alg. 1)
STAGE_TERMS = {"pretrain": ("pisd",), "train": ("pisd", "instance", "cluster"), "boost": ("instance", "cluster", "cli")}


class PICIObjective:
    """PICI's four loss terms, each with a multiplier (`loss.weights.cli=0`: Table 7's ablation)."""

    def __init__(
        self,
        weights: dict[str, float],
        instance_temperature: float = 0.5,
        cluster_temperature: float = 1.0,
        entropy_weight: float = 1.0,
    ) -> None:
        self.weights = term_weights(weights, TERMS, "PICI ")
        # PICD is CC's pair of losses: CC's objective computes them (and whatever it does across
        # processes), PICI only weights them
        self.picd = CCObjective({}, instance_temperature, cluster_temperature, entropy_weight)

    def instance(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return self.picd.instance(z_a, z_b)

    def cluster(self, c_a: torch.Tensor, c_b: torch.Tensor) -> torch.Tensor:
        return self.picd.cluster(c_a, c_b)

    def combine(self, terms: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        """The stage's weighted sum as "loss"; every term is logged (0 where the stage has none,
        so metrics.csv keeps the same columns across stages)."""
        zero = next(iter(terms.values())).new_zeros(())
        loss = sum(self.weights[name] * terms[name] for name in STAGE_TERMS[stage])
        return {"loss": loss, **{name: terms.get(name, zero).detach() for name in TERMS}}


class PICI(ClusteringMethod):
    def __init__(
        self,
        data_info: DataInfo,
        backbone=None,
        loss: PICIObjective | None = None,
        vit_size: str | None = "small",
        embed_dim: int | None = None,
        num_heads: int | None = None,
        depth: int = 6,
        patch_size: int = 16,
        mlp_ratio: float = 4.0,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        mask_ratio: float = 0.5,
        stage_epochs: list[int] | None = None,
        max_epochs: int | None = None,
        variant: str = "paper",
        kmeans_n_init: int = 10,
        feature_dim: int = 128,
        head_hidden_dim: int | None = None,
        norm_pix_loss: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(loss, PICIObjective):
            raise ConfigError("model=pici needs loss=pici")
        if data_info.image_shape is None:
            raise ConfigError("model=pici trains on augmented image views: use an image dataset with augment=pici")
        if variant not in ("paper", "official"):
            raise ConfigError(f"model.variant={variant!r}: expected paper or official")
        if not 0 < mask_ratio < 1:
            raise ConfigError(f"model.mask_ratio={mask_ratio}: must be in (0, 1)")
        self.schedule = StageSchedule(STAGES, stage_epochs, max_epochs)
        c, h, w = data_info.image_shape
        if h != w:
            raise ConfigError(f"model=pici: the ViT needs square images, the views are {h} x {w} (set augment.size)")
        dim, heads = vit_size_of(vit_size, embed_dim, num_heads)
        self.objective = loss
        self.variant = variant
        self.mask_ratio = float(mask_ratio)
        self.norm_pix_loss = bool(norm_pix_loss)
        self.patch_size = int(patch_size)
        self.kmeans_n_init = int(kmeans_n_init)
        self.n_clusters = data_info.n_clusters
        self.stage = STAGES[0]
        self.encoder = MAEEncoder(h, c, patch_size, dim, depth, heads, mlp_ratio)
        self.decoder = MAEDecoder(self.encoder.num_patches, patch_size, c, dim, decoder_dim, decoder_depth, decoder_heads, mlp_ratio)
        hidden = head_hidden_dim or dim
        self.instance_head = mlp_head(dim, hidden, feature_dim)
        self.cluster_head = nn.Sequential(mlp_head(dim, hidden, data_info.n_clusters), nn.Softmax(dim=1))
        # CLI's pseudo-labels of every sample (paper: already matched to the cluster head; official:
        # unmatched, matched per batch); buffers, so a resumed boosting stage keeps them
        self.register_buffer("cli_targets", torch.zeros(data_info.n_samples, dtype=torch.long))
        self.register_buffer("cli_ready", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ stages
    def stage_of(self, epoch: int) -> str:
        return self.schedule.stage_of(epoch)

    def on_epoch_start(self, epoch: int, ctx: StepContext) -> None:
        self.stage = self.stage_of(epoch)
        if self.stage != "boost":
            return
        if self.variant == "official" and bool(self.cli_ready):
            return  # the released code computes its pseudo-labels once, at the start of boosting
        out = ctx.predict_all(self._cli_features)
        # the k-means seed comes from torch's RNG: seeded by the run, restored on resume
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        # DDP: every process predicted all samples, but each draws its seed from its own stream:
        # rank 0 clusters (as one process with its stream would) and its pseudo-labels go to all
        if is_main_process():
            self.cli_targets.copy_(self._pseudo_labels(out, seed))
        broadcast_(self.cli_targets)
        self.cli_ready.fill_(True)

    def _pseudo_labels(self, out: torch.Tensor, seed: int) -> torch.Tensor:
        """Eq. 12-15: k-means on the features of `_cli_features` rows, matched to the cluster
        head's argmax over all samples (paper; official: unmatched, matched per batch)."""
        features, assigned = out[:, :-1].cpu().numpy(), out[:, -1].long()
        km = KMeans(self.n_clusters, n_init=self.kmeans_n_init, random_state=seed).fit(features.astype(np.float64))
        pseudo = torch.as_tensor(km.labels_, dtype=torch.long, device=self.cli_targets.device)
        if self.variant == "paper":
            pseudo = match_pseudo_labels(pseudo, assigned.to(pseudo.device), self.n_clusters)  # Eq. 15 over all samples
        return pseudo

    def _cli_features(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """Per sample: the instance features Z (paper: L2-normalised, the space of the instance
        loss; official: min-max scaled per batch) and the cluster head's argmax q, as one row."""
        h = self._cls(views[0])
        z = self.instance_head(h)
        if self.variant == "official":
            lo, hi = z.min(dim=0).values, z.max(dim=0).values
            z = (z - lo) / (hi - lo).clamp_min(1e-12)
        else:
            z = nn.functional.normalize(z, dim=1)
        q = self.cluster_head(h).argmax(dim=1, keepdim=True)
        return torch.cat([z.float(), q.float()], dim=1)

    # ------------------------------------------------------------------ steps
    def _cls(self, x: torch.Tensor) -> torch.Tensor:
        """[CLS] at test time: no masking (paper), or 50% masked as the released evaluation."""
        ratio = self.mask_ratio if self.variant == "official" else 0.0
        return self.encoder(x, ratio)[0][:, 0]

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        check_views(views, 2, "pici")
        stage = self.stage
        wanted = STAGE_TERMS[stage]
        terms: dict[str, torch.Tensor] = {}
        encoded = [self.encoder(x, self.mask_ratio) for x in views]
        if "pisd" in wanted:
            recon = [
                masked_patch_mse(self.decoder(tokens, restore), patchify(x, self.patch_size), mask, self.norm_pix_loss)
                for x, (tokens, mask, restore) in zip(views, encoded)
            ]
            # Eq. 1; DDP: every sample has the same number of masked patches, so the per-process
            # means average to the global batch's
            terms["pisd"] = pisd_loss(*recon)
        if "instance" in wanted:
            h_a, h_b = (tokens[:, 0] for tokens, _, _ in encoded)
            c_a, c_b = self.cluster_head(h_a), self.cluster_head(h_b)
            terms["instance"] = self.objective.instance(self.instance_head(h_a), self.instance_head(h_b))
            terms["cluster"] = self.objective.cluster(c_a, c_b)
            if "cli" in wanted:
                terms["cli"] = self._cli(c_a, c_b, index)
        return self.objective.combine(terms, stage)

    def _cli(self, c_a: torch.Tensor, c_b: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        targets = self.cli_targets[index]
        if self.variant == "paper":
            return cli_loss(c_a, c_b, targets, targets)  # Eq. 16 with the epoch's matched labels (a per-sample mean)
        # released code: Hungarian matching per batch and view (a host sync, official variant
        # only); DDP: matched on the global batch, this share's rows kept
        targets = gather_nograd(targets)
        t_a = own_rows(match_pseudo_labels(targets, gather_nograd(c_a.detach().argmax(dim=1)), self.n_clusters))
        t_b = own_rows(match_pseudo_labels(targets, gather_nograd(c_b.detach().argmax(dim=1)), self.n_clusters))
        return cli_loss(c_a, c_b, t_a, t_b, softmax_twice=True)

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return self.cluster_head(self._cls(views[0]))

    def embed(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.instance_head(self._cls(views[0])), dim=1)
