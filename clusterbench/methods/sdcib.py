"""SDCIB: Super Deep Contrastive Information Bottleneck (Lou, Zhang, Wu, Hu; ICML 2025).

Paper variant (../shared/papers/sdcib_icml2025.txt):
- one variational IB encoder per modality, a Gaussian p(h_l|x) at every layer, a clustering
  layer (Linear + softmax) on H_L giving Y^i;
- Eq. 5: L = alpha * sum_i sum_l [I(X^i;H_l^i) - beta I(Y^i;H_l^i)]
           - (1 - alpha) * sum_{i != j} [I(Y^i;Y^j) + sum_l I(H_l^i;H_l^j)];
  I(X;H_l) by the Gaussian KL bound (Eq. 10), I(H^i;H^j) and I(Y^i;Y^j) by InfoNCE (Eq. 11,
  instance level on features, cluster level on assignment columns), I(Y;H_l) by MINE (Eq. 12)
  with one critic per (modality, layer), trained to maximise its bound before each encoder
  step (Algorithm 1);
- final partition: cluster indices of every modality aligned to the first by Hungarian
  matching, then a per-sample vote (Eq. 2), ties broken by the summed aligned probabilities.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from clusterbench.errors import ConfigError
from clusterbench.losses.contrastive import pairwise_nt_xent
from clusterbench.losses.entropy import entropy
from clusterbench.losses.information import gaussian_kl_to_standard_normal, mine_lower_bound
from clusterbench.methods.base import ClusteringMethod, DataInfo, StepContext
from clusterbench.metrics import hungarian_match
from clusterbench.nn.mlp import BatchedMLP

TERMS = ("compression", "relevance", "instance", "cluster")


class SDCIBObjective:
    """The named terms of Eq. 5 with on/off multipliers (ablations are config changes)."""

    def __init__(
        self,
        weights: dict[str, float],
        layers: Literal["all", "last"] = "all",
        instance_temperature: float = 0.1,
        cluster_temperature: float = 0.1,
        cluster_entropy_weight: float = 0.0,
    ) -> None:
        unknown = set(weights) - set(TERMS)
        if unknown:
            raise ConfigError(f"loss.weights.{sorted(unknown)[0]}: unknown SDCIB term (terms: {', '.join(TERMS)})")
        self.weights = {name: float(weights.get(name, 1.0)) for name in TERMS}
        self.layers = layers
        self.instance_temperature = instance_temperature
        self.cluster_temperature = cluster_temperature
        self.cluster_entropy_weight = cluster_entropy_weight


class SDCIB(ClusteringMethod):
    def __init__(
        self,
        data_info: DataInfo,
        backbone: dict,
        loss: SDCIBObjective,
        alpha: float = 0.1,
        beta: float = 1.0,
        critic_hidden_dims: list[int] = (256,),
        critic_steps: int = 1,
    ) -> None:
        super().__init__()
        if backbone is None or not isinstance(loss, SDCIBObjective):
            raise ConfigError("model=sdcib needs backbone=vib_mlp and loss=sdcib")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"model.alpha={alpha}: expected a value in [0, 1]")
        if critic_steps < 1:
            raise ConfigError(f"model.critic_steps={critic_steps}: expected at least 1")
        self.objective = loss
        self.alpha = alpha
        self.beta = beta
        self.critic_steps = critic_steps
        self.n_clusters = data_info.n_clusters
        self.encoders = nn.ModuleList(instantiate(backbone, in_dim=d) for d in data_info.dims)
        widths = self.encoders[0].out_dims
        self.cluster_heads = nn.ModuleList(nn.Linear(widths[-1], self.n_clusters) for _ in data_info.dims)
        self.layer_ids = list(range(len(widths))) if loss.layers == "all" else [len(widths) - 1]
        # critics[j] holds one MINE critic per modality for layer layer_ids[j], batched
        self.critics = nn.ModuleList(
            BatchedMLP(data_info.n_views, widths[l] + self.n_clusters, list(critic_hidden_dims), 1) for l in self.layer_ids
        )

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "main": [*self.encoders.parameters(), *self.cluster_heads.parameters()],
            "critic": list(self.critics.parameters()),
        }

    def _forward(self, views: list[torch.Tensor]):
        layers = [encoder(x) for encoder, x in zip(self.encoders, views)]
        probs = torch.stack([F.softmax(head(out[-1].sample), dim=-1) for head, out in zip(self.cluster_heads, layers)])
        return layers, probs  # probs: modalities x batch x clusters

    def _relevance(self, hidden: list[torch.Tensor], probs: torch.Tensor, detach: bool) -> torch.Tensor:
        """Sum over modalities and layers of the MINE (Donsker-Varadhan) bound on I(Y; H_l), Eq. 12.

        `hidden[j]`: modalities x batch x width samples of layer layer_ids[j]."""
        y = probs.detach() if detach else probs
        n = y.shape[1]
        # product of marginals: pair each h with the assignment of another sample
        y_pairs = torch.cat([y, y[:, torch.randperm(n, device=y.device)]], dim=1)
        total = y.new_zeros(())
        for critic, h in zip(self.critics, hidden):
            h = h.detach() if detach else h
            scores = critic(torch.cat([torch.cat([h, h], dim=1), y_pairs], dim=-1)).squeeze(-1)
            total = total + mine_lower_bound(scores[:, :n], scores[:, n:], dim=1).sum()
        return total

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        obj = self.objective
        w = obj.weights
        layers, probs = self._forward(views)
        hidden = [torch.stack([out[l].sample for out in layers]) for l in self.layer_ids]
        zero = probs.new_zeros((), dtype=torch.float32)
        if w["relevance"] != 0.0:
            # Algorithm 1: the critics first maximise their bound, then the encoders take a step
            for _ in range(self.critic_steps):
                ctx.optimize("critic", -self._relevance(hidden, probs, detach=True))
        m, n, k = probs.shape
        off_diagonal = 1 - torch.eye(m, device=probs.device)
        compression = sum(gaussian_kl_to_standard_normal(out[l].mean.float(), out[l].std.float()) for out in layers for l in self.layer_ids)
        relevance = self._relevance(hidden, probs, detach=False) if w["relevance"] != 0.0 else zero
        instance = zero
        if w["instance"] != 0.0:
            # Eq. 4 sums over ordered pairs i != j; InfoNCE estimate = log(#candidates) - NT-Xent
            for h in hidden:
                nce = pairwise_nt_xent(h, obj.instance_temperature)
                instance = instance + ((math.log(2 * n - 1) - nce) * off_diagonal).sum()
        cluster = zero
        if w["cluster"] != 0.0:
            nce = pairwise_nt_xent(probs.transpose(1, 2), obj.cluster_temperature)
            cluster = ((math.log(2 * k - 1) - nce) * off_diagonal).sum()
            if obj.cluster_entropy_weight != 0.0:
                # each modality's cluster-size entropy enters the 2 (M - 1) ordered pairs it is in
                sizes = probs.float().mean(dim=1)
                cluster = cluster + obj.cluster_entropy_weight * 2 * (m - 1) * entropy(sizes).sum()
        total = self.alpha * (w["compression"] * compression - self.beta * w["relevance"] * relevance) - (1 - self.alpha) * (
            w["cluster"] * cluster + w["instance"] * instance
        )
        return {"loss": total, "compression": compression, "relevance": relevance, "instance": instance, "cluster": cluster}

    def predict(self, views: list[torch.Tensor], index: torch.Tensor | None = None) -> torch.Tensor:
        _, probs = self._forward(views)
        return probs.transpose(0, 1)  # batch x modalities x clusters

    def assign(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Aligns every modality's cluster indices to the first, then votes (Eq. 2)."""
        n_views, k = outputs.shape[1], outputs.shape[2]
        hard = outputs.argmax(dim=-1).cpu()
        aligned = [outputs[:, 0]]
        for v in range(1, n_views):
            mapping = torch.as_tensor(hungarian_match(hard[:, 0].numpy(), hard[:, v].numpy(), k), device=outputs.device)
            # column k of modality v becomes column mapping[k]
            aligned.append(outputs[:, v][:, torch.argsort(mapping)])
        aligned_probs = torch.stack(aligned, dim=1)
        votes = F.one_hot(aligned_probs.argmax(dim=-1), k).sum(dim=1).float()
        score = votes + aligned_probs.sum(dim=1) / (n_views + 1)  # < 1: only breaks ties
        return score.argmax(dim=-1), aligned_probs.mean(dim=1)
