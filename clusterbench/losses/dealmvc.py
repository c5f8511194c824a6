"""DealMVC's calibration losses (Yang, Jin, Wang, Liang, Liu, Wen, Liu, Zhou, Liu, Zhu; ACM MM
2023, "Dual Contrastive Calibration for Multi-View Clustering"). Pure functions.

A contrastive "calibration" aligns a feature similarity graph with a high-confidence pseudo-label
graph: samples the cluster heads put in the same cluster with confidence count as positives,
not only the same sample in another view.

- ``pseudo_label_graph``: G = P_a P_b^T with the diagonal set to 1, entries below the threshold
  dropped, rows normalised to sum to 1;
- ``calibrated_contrastive_loss``: S = row-softmax(H_a H_b^T / t), loss = mean_i -sum_j G_ij
  log S_ij (the cross-entropy of each row of S against the graph's row);
- ``graph_consistency_loss``: mean squared difference of two graphs (the global graph against
  the local ones).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pseudo_label_graph", "calibrated_contrastive_loss", "graph_consistency_loss"]

# added inside the log of the similarity probabilities, as the released code does
LOG_EPS = 1e-7


def pseudo_label_graph(p_a: Tensor, p_b: Tensor, threshold: float = 0.8) -> Tensor:
    """High-confidence pseudo-label graph of two (N, K) assignment matrices (rows sum to 1):
    G_ij = p_a[i] . p_b[j] (the probability that i and j share a cluster), G_ii = 1, entries
    below ``threshold`` set to 0, each row divided by its sum. Differentiable in the kept
    entries (the released code does not detach the graph)."""
    g = p_a.float() @ p_b.float().t()
    eye = torch.eye(g.shape[0], dtype=torch.bool, device=g.device)
    g = g.masked_fill(eye, 1.0)
    g = g * (g >= threshold).to(g.dtype)
    return g / g.sum(dim=1, keepdim=True)


def calibrated_contrastive_loss(h_a: Tensor, h_b: Tensor, graph: Tensor, temperature: float = 1.0) -> Tensor:
    """mean_i -sum_j graph_ij log(S_ij + 1e-7), S = row-softmax(h_a h_b^T / temperature): the
    rows of ``h_a`` (anchors) against all rows of ``h_b``, positives weighted by the graph. With
    the identity as graph this is the one-directional InfoNCE of matching rows."""
    logits = (h_a.float() @ h_b.float().t()) / temperature
    probs = F.softmax(logits, dim=1)
    return -(graph * (probs + LOG_EPS).log()).sum(dim=1).mean()


def graph_consistency_loss(global_graph: Tensor, local_graph: Tensor) -> Tensor:
    """Mean squared difference between the global and one local pseudo-label graph."""
    return F.mse_loss(global_graph, local_graph)
