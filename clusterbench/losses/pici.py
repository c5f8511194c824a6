"""PICI's own loss terms (Zhang, Huang et al., "Deep image clustering via partial information
discrimination and cross-level interaction"), as pure functions. PICD is CC's instance and
cluster losses (losses/contrastive.py, Eq. 3-11 of PICI).

- `masked_patch_mse`: one view's PISD reconstruction loss l_re (MAE's: mean squared pixel error
  over the masked patches only); `pisd_loss` averages the two views (Eq. 1).
- `match_pseudo_labels`: CLI's Hungarian matching of k-means pseudo-labels p to the cluster
  head's labels q (Eq. 12-15), returning p expressed in the cluster head's indices.
- `cli_loss`: cross-entropy between the matched one-hot pseudo-labels and log C^k of both views
  (Eq. 16), or the released code's form (softmax applied to the probabilities again).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clusterbench.metrics import hungarian_match

__all__ = ["masked_patch_mse", "normalize_patches", "pisd_loss", "match_pseudo_labels", "cli_loss"]

EPS = 1e-8


def normalize_patches(target: Tensor, eps: float = 1e-6) -> Tensor:
    """MAE's `norm_pix_loss` target: each patch (last dim, D pixels) minus its own mean, divided
    by sqrt(its unbiased variance + eps)."""
    target = target.float()
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)  # unbiased (D - 1), as MAE's torch .var()
    return (target - mean) / (var + eps).sqrt()


def masked_patch_mse(pred: Tensor, target: Tensor, mask: Tensor, norm_pix: bool = False) -> Tensor:
    """l_re of one view: ``pred``, ``target`` (B, L, D) patch pixels, ``mask`` (B, L) with 1 on
    masked patches. Mean over each patch's D pixels of the squared error, then the mean over the
    masked patches only (visible patches do not count, as in MAE). ``norm_pix``: the target is
    `normalize_patches(target)` (the released PICI MAE is built with norm_pix_loss=True)."""
    if norm_pix:
        target = normalize_patches(target)
    per_patch = (pred.float() - target.float()).pow(2).mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


def pisd_loss(l_a: Tensor, l_b: Tensor) -> Tensor:
    """Eq. 1: L_PISD = (l_re^a + l_re^b) / 2."""
    return 0.5 * (l_a + l_b)


def match_pseudo_labels(pseudo: Tensor, assigned: Tensor, n_clusters: int) -> Tensor:
    """Eq. 15: the permutation W maximising the agreement sum_n 1[q_n = m] 1[p_n = s] w_ms
    between the k-means pseudo-labels p (``pseudo``) and the cluster head's argmax q
    (``assigned``); returns p~ as class indices: p~_n = m where w_ms = 1 and p_n = s.
    Solved on the host (scipy's Hungarian method on the K x K contingency table)."""
    mapping = hungarian_match(assigned.cpu(), pseudo.cpu(), n_clusters)
    return torch.as_tensor(mapping, device=pseudo.device)[pseudo]


def cli_loss(c_a: Tensor, c_b: Tensor, targets_a: Tensor, targets_b: Tensor, softmax_twice: bool = False) -> Tensor:
    """Eq. 16: L_CLI = -1/2 sum_{k in a,b} mean_n log C^k[n, p~^k_n], with ``c_a``, ``c_b`` (N, K)
    cluster probabilities and ``targets_a``, ``targets_b`` (N,) the matched pseudo-labels of each
    view. (The paper writes the sum over samples; the mean keeps the term's scale independent of
    the batch size, as the released CrossEntropyLoss does.) ``softmax_twice``: the released code
    passes the probabilities to CrossEntropyLoss, i.e. -log softmax(C)[p~]: since C is in [0, 1]
    this loss can fall only from log K (uniform C) to log(e + K - 1) - 1 (C one-hot on the
    target; 1.274 for K = 8), a much weaker pull."""
    with torch.autocast(device_type=c_a.device.type, enabled=False):
        terms = []
        for c, t in ((c_a.float(), targets_a), (c_b.float(), targets_b)):
            log_c = F.log_softmax(c, dim=1) if softmax_twice else c.clamp_min(EPS).log()
            terms.append(F.nll_loss(log_c, t))
        return 0.5 * (terms[0] + terms[1])
