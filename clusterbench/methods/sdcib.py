"""SDCIB: Super Deep Contrastive Information Bottleneck (Lou, Zhang, Wu, Hu; ICML 2025).

Paper variant (../shared/papers/sdcib_icml2025.txt), the default:
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

`variant: official` reproduces the authors' released code instead (docs/sdcib.md lists every
difference): the VARIANTS table below holds each choice, so the training step has one path.

Every parameter and buffer (alpha and beta included) carries a leading member dimension:
`members=G` trains G grid members of one seed at once (engine/ensemble.py); a plain run is
G = 1. Every loss term is returned per member, shape (G,).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from clusterbench.engine.distributed import gather
from clusterbench.errors import ConfigError
from clusterbench.losses.contrastive import pairwise_nt_xent
from clusterbench.losses.entropy import entropy
from clusterbench.losses.information import gaussian_kl_to_standard_normal, jsd_mine_term, mine_lower_bound, softmax_kl_term
from clusterbench.methods.base import ClusteringMethod, DataInfo, StepContext, term_weights
from clusterbench.metrics import hungarian_match
from clusterbench.nn.mlp import BatchedMLP, EnsembleLinear, GaussianLayerOutput

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
        self.weights = term_weights(weights, TERMS, "SDCIB ")
        self.layers = layers
        self.instance_temperature = instance_temperature
        self.cluster_temperature = cluster_temperature
        self.cluster_entropy_weight = cluster_entropy_weight


# --- the choices that differ between the paper and the released code ------------------------


def _gaussian_kl(layer: GaussianLayerOutput) -> torch.Tensor:
    return gaussian_kl_to_standard_normal(layer.mean.float(), layer.std.float(), dim=-2)


def _softmax_kl(layer: GaussianLayerOutput) -> torch.Tensor:
    # the released code compares softmax(h) with softmax of a standard-normal sample, drawn
    # with the batch's shape (shared by members, as the reparameterisation noise is)
    reference = torch.randn(layer.sample.shape[-2:], device=layer.sample.device)
    return softmax_kl_term(layer.sample, reference.expand_as(layer.sample), dim=-2)


def _shuffled(y: torch.Tensor) -> torch.Tensor:
    return y[..., torch.randperm(y.shape[-2], device=y.device), :]


def _rolled(y: torch.Tensor) -> torch.Tensor:
    return y.roll(1, dims=-2)


@dataclass(frozen=True)
class Variant:
    head: Literal["paper", "official"]  # Gaussian layer layout (nn/mlp.py GaussianLayer)
    min_std: float | None  # None: backbone.min_std
    compression: Callable[[GaussianLayerOutput], torch.Tensor]  # I(X;H_l) per member
    relevance_bound: Callable[..., torch.Tensor]  # (joint scores, marginal scores, dim)
    negatives: Callable[[torch.Tensor], torch.Tensor]  # product-of-marginals partners of y
    relevance_sign: float  # +1: the encoders maximise I(Y;H) (paper); -1: minimise it
    critic_sign: float  # +1: the critics maximise their bound (paper); -1: minimise it
    first_batch_critic_steps: int  # extra critic steps at the first batch of each epoch
    nce_offset: Callable[[int], float]  # InfoNCE estimate = offset(#anchors' batch) - NT-Xent
    eval_train_mode: bool  # predict with BatchNorm batch statistics and sampling, on all samples
    align_to_previous: bool  # align modality v to v-1 (else to modality 0)
    vote: bool  # per-sample vote of aligned modalities (else summed probabilities)


VARIANTS = {
    "paper": Variant(
        head="paper",
        min_std=None,
        compression=_gaussian_kl,
        relevance_bound=mine_lower_bound,
        negatives=_shuffled,
        relevance_sign=1.0,
        critic_sign=1.0,
        first_batch_critic_steps=0,
        nce_offset=lambda n: math.log(2 * n - 1),  # 2N - 1 candidates per anchor
        eval_train_mode=False,
        align_to_previous=False,
        vote=True,
    ),
    "official": Variant(
        head="official",
        min_std=1e-7,
        compression=_softmax_kl,
        relevance_bound=jsd_mine_term,
        negatives=_rolled,
        relevance_sign=-1.0,
        critic_sign=-1.0,
        first_batch_critic_steps=100,
        nce_offset=math.log,  # mean cross-entropy - log N (resp. log K)
        eval_train_mode=True,
        align_to_previous=True,
        vote=False,
    ),
}


class SDCIB(ClusteringMethod):
    # model keys that may differ between the members of one vectorised sweep
    member_keys = ("alpha", "beta")

    def __init__(
        self,
        data_info: DataInfo,
        backbone: dict,
        loss: SDCIBObjective,
        alpha: float = 0.1,
        beta: float = 1.0,
        critic_hidden_dims: list[int] = (256,),
        critic_steps: int = 1,
        variant: Literal["paper", "official"] = "paper",
        members: int = 1,
    ) -> None:
        super().__init__()
        if backbone is None or not isinstance(loss, SDCIBObjective):
            raise ConfigError("model=sdcib needs backbone=vib_mlp and loss=sdcib")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"model.alpha={alpha}: expected a value in [0, 1]")
        if critic_steps < 1:
            raise ConfigError(f"model.critic_steps={critic_steps}: expected at least 1")
        self.variant = VARIANTS[variant]
        self.objective = loss
        self.critic_steps = critic_steps
        self.members = members
        self.n_clusters = data_info.n_clusters
        self.n_views = data_info.n_views
        self.register_buffer("alpha", torch.full((members,), float(alpha)))
        self.register_buffer("beta", torch.full((members,), float(beta)))
        head = {"members": members, "head": self.variant.head}
        if self.variant.min_std is not None:
            head["min_std"] = self.variant.min_std
        self.encoders = nn.ModuleList(instantiate(backbone, in_dim=d, **head) for d in data_info.dims)
        widths = self.encoders[0].out_dims
        self.cluster_heads = nn.ModuleList(EnsembleLinear(members, widths[-1], self.n_clusters) for _ in data_info.dims)
        self.layer_ids = list(range(len(widths))) if loss.layers == "all" else [len(widths) - 1]
        # critics[j]: one MINE critic per (member, modality) for layer layer_ids[j], batched
        # member-major, so member g owns rows g*M .. (g+1)*M - 1
        self.critics = nn.ModuleList(
            BatchedMLP(members * self.n_views, widths[l] + self.n_clusters, list(critic_hidden_dims), 1) for l in self.layer_ids
        )
        self._first_batch = False
        # the released code evaluates the train-mode network on all samples in one batch
        self.full_batch_predict = self.variant.eval_train_mode

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "main": [*self.encoders.parameters(), *self.cluster_heads.parameters()],
            "critic": list(self.critics.parameters()),
        }

    def on_epoch_start(self, epoch: int, ctx) -> None:
        self._first_batch = True

    def _forward(self, views: list[torch.Tensor]):
        layers = [encoder(x) for encoder, x in zip(self.encoders, views)]
        logits = torch.stack([head(out[-1].sample) for head, out in zip(self.cluster_heads, layers)], dim=1)
        return layers, F.softmax(logits, dim=-1)  # probs: members x modalities x batch x clusters

    def _relevance(self, hidden: list[torch.Tensor], probs: torch.Tensor, detach: bool) -> torch.Tensor:
        """Per member, the sum over modalities and layers of the critics' bound on I(Y; H_l)
        (Eq. 12: Donsker-Varadhan, or the released code's JSD form).

        `hidden[j]`: members x modalities x batch x width samples of layer layer_ids[j]."""
        y = probs.detach() if detach else probs
        g, m, n, _ = y.shape
        y_pairs = torch.cat([y, self.variant.negatives(y)], dim=2)
        total = y.new_zeros(g, dtype=torch.float32)
        for critic, h in zip(self.critics, hidden):
            h = h.detach() if detach else h
            pairs = torch.cat([torch.cat([h, h], dim=2), y_pairs], dim=-1).flatten(0, 1)
            scores = critic(pairs).squeeze(-1)
            bound = self.variant.relevance_bound(scores[:, :n], scores[:, n:], dim=1)
            total = total + bound.view(g, m).sum(dim=1)
        return total

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        obj, variant = self.objective, self.variant
        w = obj.weights
        layers, probs = self._forward(views)
        hidden = [torch.stack([out[l].sample for out in layers], dim=1) for l in self.layer_ids]
        # DDP: the batch-level terms (critics, NT-Xent, cluster sizes) see the global batch, gathered
        # with gradients; the compression term stays a per-rank mean. Identity in one process.
        hidden, probs = [gather(h, dim=-2) for h in hidden], gather(probs, dim=-2)
        g, m, n, k = probs.shape
        zero = probs.new_zeros(g, dtype=torch.float32)
        if w["relevance"] != 0.0:
            # Algorithm 1: the critics take their steps first, then the encoders take one
            steps = self.critic_steps + (variant.first_batch_critic_steps if self._first_batch else 0)
            for _ in range(steps):
                ctx.optimize("critic", -variant.critic_sign * self._relevance(hidden, probs, detach=True).sum())
        self._first_batch = False
        off_diagonal = 1 - torch.eye(m, device=probs.device)
        compression = sum(variant.compression(out[l]) for out in layers for l in self.layer_ids)
        relevance = self._relevance(hidden, probs, detach=False) if w["relevance"] != 0.0 else zero
        instance = zero
        if w["instance"] != 0.0:
            # Eq. 4 sums over ordered pairs i != j
            for h in hidden:
                nce = pairwise_nt_xent(h, obj.instance_temperature)
                instance = instance + ((variant.nce_offset(n) - nce) * off_diagonal).sum(dim=(-2, -1))
        cluster = zero
        if w["cluster"] != 0.0:
            nce = pairwise_nt_xent(probs.transpose(-2, -1), obj.cluster_temperature)
            cluster = ((variant.nce_offset(k) - nce) * off_diagonal).sum(dim=(-2, -1))
            if obj.cluster_entropy_weight != 0.0:
                # each modality's cluster-size entropy enters the 2 (M - 1) ordered pairs it is in
                sizes = probs.float().mean(dim=-2)
                cluster = cluster + obj.cluster_entropy_weight * 2 * (m - 1) * entropy(sizes).sum(dim=-1)
        sib = w["compression"] * compression - variant.relevance_sign * self.beta * w["relevance"] * relevance
        total = self.alpha * sib - (1 - self.alpha) * (w["cluster"] * cluster + w["instance"] * instance)
        return {"loss": total, "compression": compression, "relevance": relevance, "instance": instance, "cluster": cluster}

    @contextmanager
    def _prediction_mode(self):
        """Eval mode (paper), or the train-mode network of the released code's evaluation."""
        if not self.variant.eval_train_mode:
            yield
            return
        was_training = self.training
        self.train()
        try:
            yield
        finally:
            self.train(was_training)

    def predict(self, views: list[torch.Tensor], index: torch.Tensor | None = None) -> torch.Tensor:
        with self._prediction_mode():
            _, probs = self._forward(views)
        return probs.permute(2, 0, 1, 3)  # batch x members x modalities x clusters

    def embed(self, views: list[torch.Tensor], index: torch.Tensor | None = None) -> torch.Tensor:
        """H_L of every modality (the mean of p(h_L | x)), concatenated: batch x members x M*width.

        Leaves no trace: the RNG and the BatchNorm statistics (which the released code's
        train-mode evaluation draws and updates) are as before, so saving it changes nothing."""
        buffers = {k: v.clone() for k, v in self.named_buffers()}
        devices = [views[0].device] if views[0].device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), self._prediction_mode():
            last = [encoder(x)[-1].mean for encoder, x in zip(self.encoders, views)]
        for name, value in self.named_buffers():
            value.copy_(buffers[name])
        return torch.cat(last, dim=-1).transpose(0, 1)

    def member_outputs(self, outputs: torch.Tensor) -> list[torch.Tensor]:
        return list(outputs.unbind(dim=1))

    def assign(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One member's partition from its batch x modalities x clusters probabilities: every
        modality's cluster indices aligned (to the first, or to the previous one), then a vote
        (Eq. 2) or the summed probabilities."""
        n_views, k = outputs.shape[1], outputs.shape[2]
        aligned = [outputs[:, 0]]
        for v in range(1, n_views):
            target = aligned[-1] if self.variant.align_to_previous else aligned[0]
            mapping = torch.as_tensor(
                hungarian_match(target.argmax(dim=-1).cpu().numpy(), outputs[:, v].argmax(dim=-1).cpu().numpy(), k),
                device=outputs.device,
            )
            # column k of modality v becomes column mapping[k]
            aligned.append(outputs[:, v][:, torch.argsort(mapping)])
        aligned_probs = torch.stack(aligned, dim=1)
        score = aligned_probs.sum(dim=1)
        if self.variant.vote:
            votes = F.one_hot(aligned_probs.argmax(dim=-1), k).sum(dim=1).float()
            score = votes + score / (n_views + 1)  # < 1: the probabilities only break ties
        return score.argmax(dim=-1), aligned_probs.mean(dim=1)
