"""ICMVC: Incomplete Contrastive Multi-View Clustering with High-Confidence Guiding (Chao,
Jiang, Chu; AAAI 2024). Complete data only (missing rate 0): the missing-view path (similarity
transfer between the views' graphs) is not built.

Per view v: a k-nearest-neighbour graph A_v of the view's samples (built once, on all samples),
a graph convolutional encoder h_v = GCN_v(x_v, A_v) (d_v -> 1024 -> 1024 -> 1024 -> L, residual
middle layers, the last layer linear), an instance projector z_v = normalise(ReLU(BN(W h_v))).
Shared by the views: a cluster head y = softmax(W2 ReLU(BN(W1 h))) and an attention fusion
h = sum_v a_v(h_1..h_V) h_v (per-sample view weights, a softmax over V logits). Loss:

    L = L_cluster + L_instance + L_hc
    L_cluster  = CC's cluster-level contrast of (y_u, y_v) minus the assignment entropies
                 (tau 0.5), mean over view pairs u < v
    L_instance = CC's instance NT-Xent of (z_u, z_v) (tau 1.0), summed over mini-batches of
                 `instance_batch_size` rows of a random permutation, mean over view pairs
    L_hc       = high_confidence_loss(y(h), [y_1..y_V]) (losses/icmvc.py)

One optimiser step per epoch on the whole graph (trainer.batch_size >= N, the released code's
full-batch training); with smaller batches each step uses the graph induced on its batch.
Clusters: argmax of the cluster head on the fused representation.

`variant: official` is the released code where it differs from the paper's GCN (docs/icmvc_divide.md):
the heat-kernel graph in float32 with its ties (exp(-d^2/2) underflows to 0 on unscaled features,
and np.argpartition then picks neighbours among the zeros), rows of A + I scaled to unit L2 norm
(sklearn.preprocessing.normalize) instead of D^-1/2 (A + I) D^-1/2, the cluster loss with CC's
released "+ log K" form, and prediction with BatchNorm batch statistics over all samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clusterbench.errors import ConfigError
from clusterbench.losses.contrastive import cluster_contrastive_loss, instance_contrastive_loss
from clusterbench.losses.icmvc import high_confidence_loss
from clusterbench.methods.base import ClusteringMethod, DataInfo, StepContext, term_weights
from clusterbench.nn.multiview import check_multiview

TERMS = ("cluster", "instance", "high_confidence")


class ICMVCObjective:
    """The three named terms (`loss.weights.high_confidence=0` is the ablation without
    high-confidence guiding; the released code also drops the attention fusion for a mean when
    its instance weight is 0)."""

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        instance_temperature: float = 1.0,
        cluster_temperature: float = 0.5,
        entropy_weight: float = 1.0,
        instance_batch_size: int = 256,
    ) -> None:
        self.weights = term_weights(weights, TERMS, "ICMVC ")
        for key, value in (("instance_temperature", instance_temperature), ("cluster_temperature", cluster_temperature)):
            if value <= 0:
                raise ConfigError(f"loss.{key}={value}: must be positive")
        if not isinstance(instance_batch_size, int) or instance_batch_size < 2:
            raise ConfigError(f"loss.instance_batch_size={instance_batch_size}: expected an integer >= 2")
        self.instance_temperature = float(instance_temperature)
        self.cluster_temperature = float(cluster_temperature)
        self.entropy_weight = float(entropy_weight)
        self.instance_batch_size = instance_batch_size


# --- the graph -------------------------------------------------------------------------------


def knn_edges(x: np.ndarray, k: int, how: Literal["distance", "heat_float32"]) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges i -> j to the k nearest other samples of each row of x (n, d).

    "distance": by Euclidean distance (float64): the ranking of the heat kernel exp(-d^2/2)
    without its underflow. "heat_float32": the released code: the heat kernel in float32 and the
    k + 1 largest entries per row by np.argpartition, the row's own index dropped (so a row whose
    kernel underflowed to zeros gets k or k + 1 arbitrary neighbours)."""
    from sklearn.metrics import pairwise_distances

    n = x.shape[0]
    k = min(k, n - 1)
    if how == "distance":
        d = pairwise_distances(x.astype(np.float64))
        np.fill_diagonal(d, np.inf)
        cols = np.argpartition(d, k - 1, axis=1)[:, :k] if k < n - 1 else np.argsort(d, axis=1)[:, :k]
        rows = np.repeat(np.arange(n), k)
        return rows, cols.reshape(-1)
    sim = np.exp(-0.5 * pairwise_distances(x.astype(np.float32)) ** 2)
    rows, cols = [], []
    for i in range(n):
        nb = np.argpartition(sim[i], -(k + 1))[-(k + 1) :]
        nb = nb[nb != i]
        rows.append(np.full(len(nb), i))
        cols.append(nb)
    return np.concatenate(rows), np.concatenate(cols)


def normalized_adjacency(
    rows: np.ndarray, cols: np.ndarray, n: int, how: Literal["symmetric", "row_l2"]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The propagation matrix of a kNN graph, made symmetric (an edge either way) with self
    loops, A_hat = A + I, as (row, col, value) arrays:

    "symmetric": D^-1/2 A_hat D^-1/2 (the GCN rule, Kipf and Welling); "row_l2": each row of
    A_hat divided by its L2 norm, 1 / sqrt(deg_i) (the released code's sklearn normalize)."""
    a = np.zeros((n, n), dtype=np.float64)
    a[rows, cols] = 1.0
    a = np.maximum(a, a.T)
    np.fill_diagonal(a, 1.0)
    deg = a.sum(axis=1)
    if how == "symmetric":
        scale = 1.0 / np.sqrt(deg)
        a = a * scale[:, None] * scale[None, :]
    else:
        a = a / np.sqrt(deg)[:, None]
    r, c = np.nonzero(a)
    return torch.as_tensor(r), torch.as_tensor(c), torch.as_tensor(a[r, c], dtype=torch.float32)


class GraphConv(nn.Module):
    """A_hat (x W) + b [-BatchNorm -ReLU]: Xavier-uniform W, zero b (the released GNNLayer)."""

    def __init__(self, in_dim: int, out_dim: int, last: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_uniform_(self.weight)
        self.norm = None if last else nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        xw = x @ self.weight  # the dense product, in bf16 under bf16 autocast (most of the work)
        # the sparse product in float32: it has no autocast rule, and a bf16 x W against the
        # float32 A_hat fails ("expected scalar type Float but found BFloat16")
        with torch.autocast(x.device.type, enabled=False):
            out = torch.sparse.mm(adj, xw.float()) + self.bias
        return out if self.norm is None else F.relu(self.norm(out))


class GraphEncoder(nn.Module):
    """First layer, residual middle layers (h <- layer(h) + h), linear last layer."""

    def __init__(self, in_dim: int, widths: list[int]) -> None:
        super().__init__()
        dims = [in_dim, *widths]
        self.layers = nn.ModuleList(GraphConv(a, b, last=i == len(widths) - 1) for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        h = self.layers[0](x, adj)
        for layer in self.layers[1:-1]:
            h = layer(h, adj) + h
        return self.layers[-1](h, adj)


class AttentionFusion(nn.Module):
    """Per-sample view weights from the concatenated representations:
    a = softmax(sigmoid(W3 ReLU(BN(W2 ReLU(BN(W1 [h_1..h_V]))))) / tau), h = sum_v a_v h_v (tau 10)."""

    def __init__(self, n_views: int, width: int, tau: float = 10.0) -> None:
        super().__init__()
        wide = n_views * width
        self.mlp = nn.Sequential(
            nn.Linear(wide, wide),
            nn.BatchNorm1d(wide),
            nn.ReLU(),
            nn.Linear(wide, wide),
            nn.BatchNorm1d(wide),
            nn.ReLU(),
            nn.Linear(wide, n_views),
        )
        self.tau = tau

    def forward(self, hs: list[torch.Tensor]) -> torch.Tensor:
        a = F.softmax(torch.sigmoid(self.mlp(torch.cat(hs, dim=1))) / self.tau, dim=1)
        return torch.einsum("nv,vnd->nd", a, torch.stack(hs))


@dataclass(frozen=True)
class Variant:
    neighbours: Literal["distance", "heat_float32"]
    propagation: Literal["symmetric", "row_l2"]
    cluster_log_k: bool  # CC's released ClusterLoss: + log K per view (a constant)
    predict_batch_stats: bool  # BatchNorm with the statistics of all samples when predicting


VARIANTS = {
    "paper": Variant(neighbours="distance", propagation="symmetric", cluster_log_k=False, predict_batch_stats=False),
    "official": Variant(neighbours="heat_float32", propagation="row_l2", cluster_log_k=True, predict_batch_stats=True),
}


class ICMVC(ClusteringMethod):
    global_batch_losses = False  # one process's graph and batch
    full_batch_predict = True  # the encoders propagate over the whole graph

    def __init__(
        self,
        data_info: DataInfo,
        backbone=None,
        loss: ICMVCObjective | None = None,
        encoder_widths: list[int] = (1024, 1024, 1024, 512),
        topk: int = 10,
        fusion_tau: float = 10.0,
        variant: Literal["paper", "official"] = "paper",
    ) -> None:
        super().__init__()
        if not isinstance(loss, ICMVCObjective):
            raise ConfigError("model=icmvc needs loss=icmvc")
        check_multiview(data_info.n_views, "icmvc")
        if variant not in VARIANTS:
            raise ConfigError(f"model.variant={variant!r}: expected one of {', '.join(VARIANTS)}")
        widths = list(encoder_widths)
        if len(widths) < 2 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ConfigError(f"model.encoder_widths={widths}: expected at least two positive layer widths")
        if len(set(widths[:-1])) != 1:
            raise ConfigError(f"model.encoder_widths={widths}: the hidden layers are residual and need one width")
        if not isinstance(topk, int) or topk < 1:
            raise ConfigError(f"model.topk={topk}: expected a positive integer")
        self.variant = VARIANTS[variant]
        self.objective = loss
        self.topk = topk
        self.n_clusters = data_info.n_clusters
        width = widths[-1]
        self.encoders = nn.ModuleList(GraphEncoder(d, widths) for d in data_info.dims)
        self.instance_projectors = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()) for _ in data_info.dims
        )
        self.cluster_head = nn.Sequential(
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, self.n_clusters), nn.Softmax(dim=1)
        )
        self.fusion = AttentionFusion(data_info.n_views, width, fusion_tau)
        self._graphs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._n = data_info.n_samples

    # --- graph ---------------------------------------------------------------------------------

    def on_fit_start(self, views: list[torch.Tensor]) -> None:
        """Each view's normalised kNN graph over all samples (transductive, built once)."""
        self._n = views[0].shape[0]
        self._graphs = []
        for x in views:
            rows, cols = knn_edges(x.detach().cpu().float().numpy(), self.topk, self.variant.neighbours)
            r, c, v = normalized_adjacency(rows, cols, self._n, self.variant.propagation)
            self._graphs.append((r.to(x.device), c.to(x.device), v.to(x.device)))

    def _adjacency(self, view: int, index: torch.Tensor) -> torch.Tensor:
        """The propagation matrix among the samples `index` (in that order), sparse."""
        r, c, v = self._graphs[view]
        position = torch.full((self._n,), -1, dtype=torch.long, device=index.device)
        position[index] = torch.arange(len(index), device=index.device)
        pr, pc = position[r], position[c]
        keep = (pr >= 0) & (pc >= 0)
        indices = torch.stack([pr[keep], pc[keep]])
        return torch.sparse_coo_tensor(indices, v[keep], (len(index), len(index)), check_invariants=False).coalesce()

    # --- forward and loss ----------------------------------------------------------------------

    def _forward(self, views: list[torch.Tensor], index: torch.Tensor):
        hs = [enc(x, self._adjacency(v, index)) for v, (enc, x) in enumerate(zip(self.encoders, views))]
        zs = [F.normalize(proj(h), dim=1) for proj, h in zip(self.instance_projectors, hs)]
        ys = [self.cluster_head(h) for h in hs]
        return hs, zs, ys

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        obj, w = self.objective, self.objective.weights
        hs, zs, ys = self._forward(views, index)
        n_views, n = len(hs), hs[0].shape[0]
        pairs = [(u, v) for u in range(n_views) for v in range(u + 1, n_views)]
        cluster = sum(cluster_contrastive_loss(ys[u], ys[v], obj.cluster_temperature, obj.entropy_weight) for u, v in pairs) / len(pairs)
        if self.variant.cluster_log_k:
            cluster = cluster + 2 * obj.entropy_weight * math.log(self.n_clusters)
        # instance contrast over mini-batches of one random permutation (the last partial
        # batch dropped unless it is the only one), summed over the mini-batches
        b = min(obj.instance_batch_size, n)
        order = torch.randperm(n, device=hs[0].device)
        instance = hs[0].new_zeros(())
        for start in range(0, n - b + 1, b):
            rows = order[start : start + b]
            instance = instance + sum(
                instance_contrastive_loss(zs[u][rows], zs[v][rows], obj.instance_temperature) for u, v in pairs
            ) / len(pairs)
        fused = self.cluster_head(self.fusion(hs))
        high_confidence = high_confidence_loss(fused, ys)
        loss = w["cluster"] * cluster + w["instance"] * instance + w["high_confidence"] * high_confidence
        return {"loss": loss, "cluster": cluster.detach(), "instance": instance.detach(), "high_confidence": high_confidence.detach()}

    def _fused(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        if not self._graphs:  # a model loaded from a checkpoint: the graphs of the data it sees (all samples)
            self.on_fit_start([x[torch.argsort(index)] for x in views])
        hs = [enc(x, self._adjacency(v, index)) for v, (enc, x) in enumerate(zip(self.encoders, views))]
        return self.fusion(hs)

    def _batch_stats(self):
        """Official: BatchNorm with the batch's statistics, running statistics left as they were."""
        buffers = {k: b.clone() for k, b in self.named_buffers()}
        was_training = self.training
        self.train()
        return buffers, was_training

    def _restore(self, buffers, was_training) -> None:
        for k, b in self.named_buffers():
            b.copy_(buffers[k])
        self.train(was_training)

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """The cluster head's soft assignment of the fused representation (N, K)."""
        if not self.variant.predict_batch_stats:
            return self.cluster_head(self._fused(views, index))
        state = self._batch_stats()
        try:
            return self.cluster_head(self._fused(views, index))
        finally:
            self._restore(*state)

    def embed(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        if not self.variant.predict_batch_stats:
            return self._fused(views, index)
        state = self._batch_stats()
        try:
            return self._fused(views, index)
        finally:
            self._restore(*state)
