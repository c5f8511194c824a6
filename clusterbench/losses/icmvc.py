"""ICMVC's own loss term (Chao, Jiang, Chu: "Incomplete Contrastive Multi-View Clustering with
High-Confidence Guiding", AAAI 2024): high-confidence guiding. Its view-level instance and
cluster-level contrast are CC's (losses/contrastive.py: instance_contrastive_loss,
cluster_contrastive_loss).

The paper's text is not in this checkout; the term is written from the method's description and
checked against the released code (liunian-Jay/ICMVC, models/ICMCH.py, utils/util.py target_l2);
docs/icmvc_divide.md.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor

# the released code clamps the fused assignment at Python's float epsilon before the log
EPS = sys.float_info.epsilon


def sharpened_target(q: Tensor) -> Tensor:
    """Row-wise squared and renormalised assignments: t_ik = q_ik^2 / sum_j q_ij^2 (a sharper
    distribution with the same argmax; no cluster-frequency division, unlike DEC's target)."""
    sq = q * q
    return sq / sq.sum(dim=1, keepdim=True)


def high_confidence_loss(fused: Tensor, views: list[Tensor]) -> Tensor:
    """High-confidence guiding: the fused assignment Y is pulled towards the sharpened
    element-wise maximum of all assignments (each view's and the fused one):

        Q = max(Y^1, ..., Y^V, Y)  (element-wise),   T = sharpened_target(Q)  (no gradient)
        L_hc = (1/N) sum_i KL(T_i || Y_i) = (1/N) sum_i sum_k T_ik (log T_ik - log Y_ik)

    Y is clamped at EPS before the log, as in the released code."""
    q = fused
    for y in views:
        q = torch.maximum(q, y)
    target = sharpened_target(q).detach()
    log_y = fused.clamp_min(EPS).log()
    kl = torch.where(target > 0, target * (target.clamp_min(1e-45).log() - log_y), torch.zeros_like(target))
    return kl.sum() / fused.shape[0]
