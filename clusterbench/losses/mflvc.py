"""MFLVC's loss terms over M views (Xu, Tang, Ren, Peng, Zhu, He; CVPR 2022, "Multi-level
Feature Learning for Contrastive Multi-view Clustering"). Pure functions; DealMVC builds on them.

- Eq. 2 (L_Z): reconstruction of every view by its autoencoder;
- Eq. 3-5 (L_H): NT-Xent of the high-level features between every pair of views;
- Eq. 6-8 (L_Q): NT-Xent of the cluster-assignment columns between every pair of views, plus the
  (negative) cluster-size entropy of every view;
- Eq. 13-14 (L_P): cross-entropy of each view's assignments against its matched k-means
  pseudo-labels (the matching, Eq. 12, is losses/pici.py's ``match_pseudo_labels``).
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor

from .contrastive import cluster_contrastive_loss, nt_xent
from .entropy import EPS, entropy

__all__ = ["reconstruction_loss", "feature_contrastive_loss", "label_contrastive_loss", "pseudo_label_loss"]


def reconstruction_loss(xs: Sequence[Tensor], recons: Sequence[Tensor]) -> Tensor:
    """Eq. 2: L_Z = sum_m ||X^m - D^m(E^m(X^m))||^2, each view's squared error averaged over
    its samples and features (the paper writes the sum; the released code, as here, takes
    ``MSELoss`` per view, which keeps the term on the contrastive terms' scale) and summed over
    the views."""
    return sum(F.mse_loss(r.float(), x.float()) for x, r in zip(xs, recons))


def feature_contrastive_loss(hs: Sequence[Tensor], temperature: float = 0.5) -> Tensor:
    """Eq. 5: L_H = 1/2 sum_m sum_{n != m} l^(mn), l^(mn) (Eq. 4) the NT-Xent of anchor view m
    against view n with cosine similarity / tau_F: positive h_i^n, negatives the other 2N - 2
    rows of H^m and H^n. The two directions of a pair averaged are ``nt_xent``, so L_H is the sum
    of ``nt_xent`` over the M(M-1)/2 unordered pairs."""
    return sum(nt_xent(hs[m], hs[n], temperature) for m, n in combinations(range(len(hs)), 2))


def label_contrastive_loss(
    qs: Sequence[Tensor], temperature: float = 1.0, entropy_per_pair: bool = False, log_k_offset: bool = False
) -> Tensor:
    """Eq. 8: L_Q = 1/2 sum_m sum_{n != m} l^(mn) + sum_m sum_j s_j^m log s_j^m, l^(mn) (Eq. 7)
    the NT-Xent of the K assignment columns of view m against those of view n (tau_L), s^m the
    view's mean assignment (cluster sizes): each view's entropy H(s^m) enters once.

    ``entropy_per_pair``: the released code adds both views' negative entropy to every pair's
    term, so with M views each entropy enters M - 1 times (identical for two views).
    ``log_k_offset``: the released code's value, which adds log K per view and pair (the
    constant of CC's ClusterLoss; no gradient)."""
    m = len(qs)
    pairs = list(combinations(range(m), 2))
    if entropy_per_pair:
        total = sum(cluster_contrastive_loss(qs[a], qs[b], temperature, 1.0) for a, b in pairs)
    else:
        total = sum(cluster_contrastive_loss(qs[a], qs[b], temperature, 0.0) for a, b in pairs)
        for q in qs:
            sizes = q.float().sum(dim=0)
            total = total - entropy(sizes / sizes.sum().clamp_min(EPS))
    if log_k_offset:
        total = total + 2 * len(pairs) * math.log(qs[0].shape[1])
    return total


def pseudo_label_loss(qs: Sequence[Tensor], targets: Sequence[Tensor], softmax_twice: bool = False) -> Tensor:
    """Eq. 14: L_P = -sum_m mean_i log q^m_{i, p^m_i}, ``qs`` each view's (N, K) assignment
    probabilities, ``targets`` each view's matched pseudo-labels (N,) (the paper writes the sum
    over samples; the mean as the released CrossEntropyLoss). ``softmax_twice``: the released
    code gives the probabilities to CrossEntropyLoss, i.e. -log softmax(q)[p]: a much weaker
    pull, since q is in [0, 1]."""
    total = 0.0
    for q, t in zip(qs, targets):
        q = q.float()
        log_q = F.log_softmax(q, dim=1) if softmax_twice else q.clamp_min(EPS).log()
        total = total + F.nll_loss(log_q, t)
    return total
