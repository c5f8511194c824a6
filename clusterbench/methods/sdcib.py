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

Both variants use the encoder the authors ran (nn/mlp.py VIBEncoder, layout=side_heads): a
deterministic trunk with a Gaussian head beside each layer; `backbone.layout=chained` feeds each
layer's sample to the next instead (docs/sdcib.md: it does not cluster).

`variant: official` reproduces the authors' released code instead (docs/sdcib.md lists every
difference): the VARIANTS table below holds each choice, so the training step has one path.

Every parameter and buffer (alpha and beta included) carries a leading member dimension:
`members=G` trains G grid members of one seed at once (engine/ensemble.py); a plain run is
G = 1. Every loss term is returned per member, shape (G,).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from clusterbench.collectives import gather
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


def _gaussian_kl(layer: GaussianLayerOutput, sample: torch.Tensor) -> torch.Tensor:
    return gaussian_kl_to_standard_normal(layer.mean.float(), layer.std.float(), dim=-2)


def _softmax_kl(layer: GaussianLayerOutput, sample: torch.Tensor) -> torch.Tensor:
    # the released code's F.kl_div(log softmax(h), softmax(e)) is KL(softmax(e) || softmax(h)),
    # e a standard-normal sample drawn with the batch's shape (shared by members, as the
    # reparameterisation noise is)
    reference = torch.randn(sample.shape[-2:], device=sample.device)
    return softmax_kl_term(reference.expand_as(sample), sample, dim=-2)


def _fresh_sample(layer: GaussianLayerOutput) -> torch.Tensor:
    # the released code draws a second sample of p(h_l|x) for its compression and relevance
    # terms (the forward's sample feeds InfoNCE and the clustering layer)
    return layer.mean + layer.std * torch.randn(layer.std.shape[-2:], dtype=layer.std.dtype, device=layer.std.device)


def _forward_sample(layer: GaussianLayerOutput) -> torch.Tensor:
    return layer.sample


def _half_width_twice(width: int) -> list[int]:
    return [width // 2, width // 2]


def _shuffled(y: torch.Tensor) -> torch.Tensor:
    return y[..., torch.randperm(y.shape[-2], device=y.device), :]


def _rolled(y: torch.Tensor) -> torch.Tensor:
    return y.roll(1, dims=-2)


@dataclass(frozen=True)
class Variant:
    head: Literal["paper", "official"]  # Gaussian layer layout (nn/mlp.py GaussianLayer)
    min_std: float | None  # None: backbone.min_std
    compression: Callable[[GaussianLayerOutput, torch.Tensor], torch.Tensor]  # I(X;H_l) per member, from (layer, sample)
    ib_sample: Callable[[GaussianLayerOutput], torch.Tensor]  # the h_l the compression and relevance terms read
    relevance_bound: Callable[..., torch.Tensor]  # (joint scores, marginal scores, dim)
    negatives: Callable[[torch.Tensor], torch.Tensor]  # product-of-marginals: applied to the critic's FIRST input
    critic_hidden: Callable[[int], list[int]] | None  # hidden widths from the layer width; None: model.critic_hidden_dims
    critic_batch_norm: bool  # BatchNorm after each hidden layer; joint and marginal pairs in separate passes
    critic_order_steps: Literal["hy", "yh"]  # input order (first, second) in the critic's own steps
    critic_order_loss: Literal["hy", "yh"]  # input order in the encoders' loss
    critic_on_main_loss: bool  # the critics also step on the main loss's gradient (no separate per-batch steps)
    relevance_sign: float  # +1: the encoders maximise I(Y;H) (paper); -1: minimise it
    critic_sign: float  # +1: the critics maximise their bound (paper); -1: minimise it
    first_batch_critic_steps: int  # extra critic steps at the first batch of each epoch
    nce_offset: Callable[[int], float]  # InfoNCE estimate = offset(#anchors' batch) - NT-Xent
    eval_train_mode: bool  # predict with BatchNorm batch statistics and sampling, on all samples
    alignment: Literal["first", "previous", "released"]  # see SDCIB.assign
    vote: bool  # per-sample vote of aligned modalities (else summed probabilities)


VARIANTS = {
    "paper": Variant(
        head="paper",
        min_std=None,
        compression=_gaussian_kl,
        ib_sample=_forward_sample,
        relevance_bound=mine_lower_bound,
        negatives=_shuffled,
        critic_hidden=None,
        critic_batch_norm=False,
        critic_order_steps="hy",
        critic_order_loss="hy",
        critic_on_main_loss=False,
        relevance_sign=1.0,
        critic_sign=1.0,
        first_batch_critic_steps=0,
        nce_offset=lambda n: math.log(2 * n - 1),  # 2N - 1 candidates per anchor
        eval_train_mode=False,
        alignment="first",
        vote=True,
    ),
    "official": Variant(
        head="official",
        min_std=1e-7,
        compression=_softmax_kl,
        ib_sample=_fresh_sample,
        relevance_bound=jsd_mine_term,
        negatives=_rolled,
        critic_hidden=_half_width_twice,  # MINEEstimator: (d + K) -> d/2 -> d/2 -> 1
        critic_batch_norm=True,
        critic_order_steps="hy",  # pre-steps call the critic as (h, y)
        critic_order_loss="yh",  # the encoder loss calls it as (y, h): y is rolled
        critic_on_main_loss=True,
        relevance_sign=-1.0,
        critic_sign=-1.0,
        first_batch_critic_steps=100,
        nce_offset=math.log,  # mean cross-entropy - log N (resp. log K)
        eval_train_mode=True,
        alignment="released",
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
        official_alignment: bool = True,
        members: int = 1,
    ) -> None:
        super().__init__()
        if backbone is None or not isinstance(loss, SDCIBObjective):
            raise ConfigError("model=sdcib needs backbone=vib_mlp and loss=sdcib")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"model.alpha={alpha}: expected a value in [0, 1]")
        if critic_steps < 1:
            raise ConfigError(f"model.critic_steps={critic_steps}: expected at least 1")
        if any(not isinstance(d, int) or d < 1 for d in critic_hidden_dims):
            raise ConfigError(f"model.critic_hidden_dims={list(critic_hidden_dims)}: every layer width must be a positive integer")
        if variant not in VARIANTS:
            raise ConfigError(f"model.variant={variant!r}: expected one of {', '.join(VARIANTS)}")
        self.variant = VARIANTS[variant]
        if self.variant.alignment == "released" and not official_alignment:
            # the released code's alignment without its quirk: each modality to the previous aligned one
            self.variant = replace(self.variant, alignment="previous")
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
        critic_hidden = self.variant.critic_hidden or (lambda width: list(critic_hidden_dims))
        self.critics = nn.ModuleList(
            BatchedMLP(
                members * self.n_views, widths[l] + self.n_clusters, critic_hidden(widths[l]), 1, batch_norm=self.variant.critic_batch_norm
            )
            for l in self.layer_ids
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

    def _relevance(self, hidden: list[torch.Tensor], probs: torch.Tensor, detach: bool, order: str) -> torch.Tensor:
        """Per member, the sum over modalities and layers of the critics' bound on I(Y; H_l)
        (Eq. 12: Donsker-Varadhan, or the released code's JSD form).

        `hidden[j]`: members x modalities x batch x width samples of layer layer_ids[j]. `order`
        ("hy" or "yh") is the critic's input order; the product-of-marginals pairs permute the
        first input. Joint and marginal pairs go through the critic in separate passes (each
        its own BatchNorm statistics, where the critic has BatchNorm)."""
        y = probs.detach() if detach else probs
        g, m, n, _ = y.shape
        total = y.new_zeros(g, dtype=torch.float32)
        for critic, h in zip(self.critics, hidden):
            h = h.detach() if detach else h
            first, second = (h, y) if order == "hy" else (y, h)
            joint = critic(torch.cat([first, second], dim=-1).flatten(0, 1)).squeeze(-1)
            marginal = critic(torch.cat([self.variant.negatives(first), second], dim=-1).flatten(0, 1)).squeeze(-1)
            bound = self.variant.relevance_bound(joint, marginal, dim=1)
            total = total + bound.view(g, m).sum(dim=1)
        return total

    def _critic_steps(self, hidden: list[torch.Tensor], probs: torch.Tensor, ctx: StepContext) -> None:
        """Algorithm 1: the critics take their steps before the encoders take one (the released
        code: 100 steps at each epoch's first batch, then only the main loss's gradient)."""
        variant = self.variant
        steps = 0 if variant.critic_on_main_loss else self.critic_steps
        steps += variant.first_batch_critic_steps if self._first_batch else 0
        for _ in range(steps):
            bound = self._relevance(hidden, probs, detach=True, order=variant.critic_order_steps)
            ctx.optimize("critic", -variant.critic_sign * bound.sum())
        if variant.critic_on_main_loss:
            # the critics' gradient is the main loss's alone (the released code zeroes both
            # optimisers before its backward)
            for p in self.critics.parameters():
                p.grad = None

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        obj, variant = self.objective, self.variant
        w = obj.weights
        layers, probs = self._forward(views)
        hidden = [torch.stack([out[l].sample for out in layers], dim=1) for l in self.layer_ids]
        ib_samples = [[variant.ib_sample(out[l]) for out in layers] for l in self.layer_ids]
        # DDP: the batch-level terms (critics, NT-Xent, cluster sizes) see the global batch, gathered
        # with gradients; the compression term stays a per-rank mean. Identity in one process.
        hidden, probs = [gather(h, dim=-2) for h in hidden], gather(probs, dim=-2)
        # the paper's IB terms read the forward's samples: no second stack and gather of them
        relevance_inputs = (
            hidden if variant.ib_sample is _forward_sample else [gather(torch.stack(samples, dim=1), dim=-2) for samples in ib_samples]
        )
        g, m, n, k = probs.shape
        zero = probs.new_zeros(g, dtype=torch.float32)
        if w["relevance"] != 0.0:
            self._critic_steps(hidden, probs, ctx)
        self._first_batch = False
        off_diagonal = 1 - torch.eye(m, device=probs.device)
        compression = sum(
            variant.compression(out[l], samples[v]) for l, samples in zip(self.layer_ids, ib_samples) for v, out in enumerate(layers)
        )
        relevance = zero
        if w["relevance"] != 0.0:
            relevance = self._relevance(relevance_inputs, probs, detach=False, order=variant.critic_order_loss)
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

    def on_train_batch_end(self, ctx: StepContext) -> None:
        if self.variant.critic_on_main_loss and self.objective.weights["relevance"] != 0.0:
            ctx.apply_gradients("critic")

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
        modality's cluster indices aligned, then a vote (Eq. 2) or the summed probabilities.

        Alignment by Hungarian matching of argmax co-occurrences: "first" aligns modality v to
        modality 0, "previous" to the aligned modality v-1; "released" is the released code's
        Cluster.py: matched to the UNALIGNED modality v-1 and the inverse permutation applied
        (cluster j takes column mapping[j] instead of giving its column to mapping[j])."""
        n_views, k = outputs.shape[1], outputs.shape[2]
        alignment = self.variant.alignment
        aligned = [outputs[:, 0]]
        for v in range(1, n_views):
            target = {"first": aligned[0], "previous": aligned[-1], "released": outputs[:, v - 1]}[alignment]
            mapping = torch.as_tensor(
                hungarian_match(target.argmax(dim=-1).cpu().numpy(), outputs[:, v].argmax(dim=-1).cpu().numpy(), k),
                device=outputs.device,
            )
            # column j of modality v becomes column mapping[j] (released: column mapping[j] becomes j)
            aligned.append(outputs[:, v][:, mapping if alignment == "released" else torch.argsort(mapping)])
        aligned_probs = torch.stack(aligned, dim=1)
        score = aligned_probs.sum(dim=1)
        if self.variant.vote:
            votes = F.one_hot(aligned_probs.argmax(dim=-1), k).sum(dim=1).float()
            score = votes + score / (n_views + 1)  # < 1: the probabilities only break ties
        return score.argmax(dim=-1), aligned_probs.mean(dim=1)
