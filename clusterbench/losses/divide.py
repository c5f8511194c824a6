"""DIVIDE's two pieces (Lu, Lin, Yang, Peng, Hu, Peng: "Decoupled Contrastive Multi-View
Clustering with High-Order Random Walks", AAAI 2024, arXiv 2308.11164): the random-walk
targets that decide which pairs are positives, and the contrastive loss with those soft targets.

The paper's text is not in this checkout (../shared/papers has no copy); the equations below are
written from the method's description and checked term by term against the released code
(XLearning-SCU/2024-AAAI-DIVIDE, model.py); the section names, not equation numbers, are the
reference (docs/icmvc_divide.md).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def random_walk_targets(z: Tensor, temperature: float = 0.1, steps: int = 5, alpha: float = 0.5) -> Tensor:
    """High-order random-walk affinities of one view's batch (Sec. "Random walk"), N x N:

        z_hat = z / ||z||,  W_ij = exp(-||z_hat_i - z_hat_j||^2 / sigma)       (Gaussian kernel)
        P = D^-1 W  (row-stochastic transition matrix),  D = diag(sum_j W_ij)
        T = alpha I + (1 - alpha) P^t                                        (t-step walk, restart)

    sigma = `temperature`, t = `steps`, alpha = `alpha`. Row i of T sums to one: how much each
    j counts as a positive of i (global neighbours reached by the walk, not only i itself).
    Computed without gradient (targets, not predictions)."""
    z = F.normalize(z.float(), dim=1)
    distance = (2 - 2 * (z @ z.t())).clamp_min(0.0)  # ||z_i - z_j||^2 of unit vectors
    w = torch.exp(-distance / temperature)
    p = w / w.sum(dim=1, keepdim=True)
    p = torch.linalg.matrix_power(p, steps)
    eye = torch.eye(z.shape[0], dtype=p.dtype, device=p.device)
    return alpha * eye + (1 - alpha) * p


def soft_target_contrastive(
    query: Tensor,
    key: Tensor,
    targets: Tensor,
    temperature: float = 0.5,
    reduction: Literal["anchor_mean", "pair_mean"] = "anchor_mean",
) -> Tensor:
    """Contrastive loss of queries against keys with soft positive weights (Sec. "Decoupled
    contrastive learning"; the intra-view and inter-view terms are this function):

        l_i = - sum_j (T_ij / sum_k T_ik) log( exp(s_ij / tau) / sum_k exp(s_ik / tau) ),
        s_ij = cos(query_i, key_j)

    `reduction`: "anchor_mean" = (1/N) sum_i l_i (identity targets: InfoNCE over the N keys);
    "pair_mean" = (1/N^2) sum_i l_i, the released code's `.mean()` over the N x N matrix (the
    same gradient direction, 1/N the size)."""
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    log_prob = F.log_softmax(q @ k.t() / temperature, dim=1)
    weights = targets / targets.sum(dim=1, keepdim=True)
    per_anchor = -(weights * log_prob).sum(dim=1)
    loss = per_anchor.mean()
    if reduction == "pair_mean":
        loss = loss / q.shape[0]
    return loss
