"""DealMVC: Dual Contrastive Calibration for Multi-View Clustering (Yang, Jin, Wang, Liang, Liu,
Wen, Liu, Zhou, Liu, Zhu; ACM MM 2023).

DealMVC is built on MFLVC's network and schedule (methods/mflvc.py: per-view autoencoders, the
shared heads W_H and W_Q, reconstruction pre-training, pseudo-label fine-tuning, prediction by
the views' mean assignment). Its contrastive stage replaces MFLVC's L_H and L_Q with:

- fusion: per view a token (the per-sample mean of H^v over its features, one value per sample
  of the batch), a multi-head attention network scores each view, a small feed-forward network
  turns the view sampling distribution p (uniform) into a second score; the fusion weights are
  w = softmax_v(score_att * score_p) and the global feature F = sum_v w_v H^v;
- global contrastive calibration: the similarity graph of F (row-softmax of F F^T) against the
  high-confidence pseudo-label graph of W_Q(F) (losses/dealmvc.py);
- local contrastive calibration: for every view pair (v, w) the similarity graph of H^v against
  H^w against the pseudo-label graph of Q^v Q^w^T;
- consistency: the global pseudo-label graph against the local ones (mean squared difference);
- plus MFLVC's reconstruction L_Z.

`variant: official` is the released code (docs/mflvc.md lists every difference): the fusion
networks are never trained and the fusion weights are detached and multiplied batch after batch
(w_b = softmax(...)_b * w_{b-1}, from 1/V at each epoch's start), each view token attends only to
itself, the consistency term reads the first V local graphs (the first one for two views), and
the tune stage is MFLVC's official one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from clusterbench.errors import ConfigError
from clusterbench.losses.dealmvc import calibrated_contrastive_loss, graph_consistency_loss, pseudo_label_graph
from clusterbench.methods.base import DataInfo, StepContext, term_weights
from clusterbench.methods.mflvc import MFLVC, MFLVCObjective
from clusterbench.methods.mflvc import VARIANTS as MFLVC_VARIANTS

TERMS = ("reconstruction", "local", "global", "consistency", "pseudo")
STAGE_TERMS = {"pretrain": ("reconstruction",), "contrastive": ("reconstruction", "local", "global", "consistency"), "tune": ("pseudo",)}


class DealMVCObjective(MFLVCObjective):
    """DealMVC's named terms with multipliers (`loss.weights.global=0` drops the global
    calibration, ...) and the pseudo-label graph's confidence threshold."""

    terms = TERMS
    stage_terms = STAGE_TERMS
    label = "DealMVC "

    def __init__(self, weights: dict[str, float] | None = None, threshold: float = 0.8, temperature: float = 1.0) -> None:
        self.weights = term_weights(weights, self.terms, self.label)
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"loss.threshold={threshold}: expected a value in (0, 1]")
        if temperature <= 0:
            raise ConfigError(f"loss.temperature={temperature}: must be positive")
        self.threshold = float(threshold)
        self.temperature = float(temperature)


@dataclass(frozen=True)
class Variant:
    kmeans_features: str
    softmax_twice: bool
    full_batch_tune: bool
    entropy_per_pair: bool
    log_k_offset: bool
    train_fusion: bool  # the fusion networks learn with the main loss (gradients through w)
    compound_weights: bool  # w_b = r_b * w_{b-1} within an epoch (released), else w_b = r_b
    cross_view_attention: bool  # the V view tokens attend to each other (else each only to itself)
    consistency_pairs: str  # "all": every local graph; "first": the released code's first V (first 1 for V = 2)


def _extend(base, **kw) -> Variant:
    return Variant(**{f: getattr(base, f) for f in base.__dataclass_fields__}, **kw)


VARIANTS = {
    "paper": _extend(
        MFLVC_VARIANTS["paper"], train_fusion=True, compound_weights=False, cross_view_attention=True, consistency_pairs="all"
    ),
    "official": _extend(
        MFLVC_VARIANTS["official"], train_fusion=False, compound_weights=True, cross_view_attention=False, consistency_pairs="first"
    ),
}


class ViewAttention(nn.Module):
    """Multi-head attention over V view tokens of width `width` (the batch size: a token holds
    one value per sample) -> one score per view. `cross_view`: the tokens form one sequence of
    length V; otherwise each token is its own sequence of length 1 (the released code), so the
    attention weight is 1 (0 or 2 where dropout hits it) and the score a linear map of the token."""

    def __init__(self, width: int, heads: int = 8, dropout: float = 0.5, cross_view: bool = True) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(f"model.attention_heads={heads}: must divide the attention width {width} (trainer.batch_size)")
        self.heads, self.head_dim, self.cross_view = heads, width // heads, cross_view
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (V, width) -> (V,)
        n_views = tokens.shape[0]
        shape = (1, n_views, self.heads, self.head_dim) if self.cross_view else (n_views, 1, self.heads, self.head_dim)
        q, k, v = (proj(tokens).view(shape).transpose(1, 2) for proj in (self.q, self.k, self.v))  # (S, h, L, d)
        weights = self.dropout(torch.softmax(q @ k.transpose(-1, -2) * self.head_dim**-0.5, dim=-1))
        x = (weights @ v).transpose(1, 2).reshape(n_views, -1)
        return self.out(x).squeeze(-1)


class DealMVC(MFLVC):
    name = "dealmvc"
    objective_class = DealMVCObjective
    variants = VARIANTS

    def __init__(
        self,
        data_info: DataInfo,
        backbone=None,
        loss: DealMVCObjective | None = None,
        encoder_widths: list[int] = (500, 500, 2000, 512),
        high_feature_dim: int = 512,
        high_hidden_dims: list[int] = (),
        stage_epochs: list[int] = (300, 100, 50),
        max_epochs: int | None = None,
        kmeans_n_init: int = 100,
        variant: str = "paper",
        batch_size: int = 256,
        attention_heads: int = 8,
        attention_dropout: float = 0.5,
        ffn_size: int = 32,
    ) -> None:
        super().__init__(
            data_info, backbone, loss, encoder_widths, high_feature_dim, high_hidden_dims, stage_epochs, max_epochs, kmeans_n_init, variant
        )
        if int(high_feature_dim) != int(list(encoder_widths)[-1]):
            raise ConfigError(
                f"model.high_feature_dim={high_feature_dim}: DealMVC's cluster head reads both Z and the fused H, so it must equal "
                f"the last of model.encoder_widths ({list(encoder_widths)[-1]})"
            )
        self.attention_width = int(batch_size)
        if data_info.n_samples < self.attention_width:
            # said before training: otherwise the first contrastive epoch, after pre-training, fails
            raise ConfigError(
                f"model=dealmvc: the attention reads one value per sample of a batch of {self.attention_width} "
                f"(model.batch_size = trainer.batch_size), more than the {data_info.n_samples} samples of the data; "
                f"set trainer.batch_size to at most {data_info.n_samples}"
            )
        v = self.n_views
        self.attention = ViewAttention(self.attention_width, attention_heads, attention_dropout, self.variant.cross_view_attention)
        self.sampling = nn.Sequential(nn.Linear(v, ffn_size), nn.GELU(), nn.Linear(ffn_size, v))
        self.register_buffer("view_distribution", torch.full((v,), 1.0 / v))
        # the released code's running product of the fusion weights within an epoch
        self.register_buffer("running_weights", torch.full((v,), 1.0 / v))
        if not self.variant.train_fusion:
            for p in [*self.attention.parameters(), *self.sampling.parameters()]:
                p.requires_grad_(False)

    def on_epoch_start(self, epoch: int, ctx: StepContext) -> None:
        super().on_epoch_start(epoch, ctx)
        self.running_weights.fill_(1.0 / self.n_views)

    def fusion_weights(self, hs: list[torch.Tensor]) -> torch.Tensor:
        """(V,) weights of the views in the global feature."""
        tokens = torch.stack([h.mean(dim=1) for h in hs])  # (V, batch)
        if tokens.shape[1] != self.attention_width:
            raise ConfigError(
                f"model=dealmvc: the attention reads one value per sample of a batch of {self.attention_width} "
                f"(model.batch_size = trainer.batch_size), this batch has {tokens.shape[1]}; keep trainer.drop_last=true"
            )
        r = torch.softmax(self.attention(tokens) * self.sampling(self.view_distribution), dim=0)
        if not self.variant.compound_weights:
            return r
        w = (r * self.running_weights).detach()
        self.running_weights.copy_(w)
        return w

    def contrastive_terms(self, hs: list[torch.Tensor], qs: list[torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        obj, v = self.objective, self.variant
        pairs = [(a, b) for a in range(self.n_views) for b in range(a + 1, self.n_views)]
        local_graphs = [pseudo_label_graph(qs[a], qs[b], obj.threshold) for a, b in pairs]
        local = sum(calibrated_contrastive_loss(hs[a], hs[b], g, obj.temperature) for (a, b), g in zip(pairs, local_graphs))
        weights = self.fusion_weights(hs)
        fused = torch.einsum("v,vnd->nd", weights.to(hs[0].dtype), torch.stack(hs))
        global_graph = pseudo_label_graph(*(2 * [self.label_head(fused)]), obj.threshold)
        global_term = calibrated_contrastive_loss(fused, fused, global_graph, obj.temperature)
        compared = local_graphs if v.consistency_pairs == "all" else local_graphs[: 1 if self.n_views == 2 else self.n_views]
        consistency = sum(graph_consistency_loss(global_graph, g) for g in compared)
        return {"local": local, "global": global_term, "consistency": consistency}
