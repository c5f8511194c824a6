"""Contrastive (InfoNCE / NT-Xent) losses used by Contrastive Clustering and its descendants.

Reference: Y. Li, P. Hu, Z. Liu, D. Peng, J. T. Zhou, X. Peng, "Contrastive
Clustering", AAAI 2021 (CC).

Both losses are pure functions.  The similarity matrix and the
softmax / cross-entropy are computed in float32 (float64 inputs stay float64)
with autocast disabled locally, so they are safe to call inside
``torch.autocast`` on CPU or CUDA; the returned scalar is float32 (or float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .entropy import EPS, entropy

__all__ = ["instance_contrastive_loss", "cluster_contrastive_loss", "nt_xent", "pairwise_nt_xent", "cross_view_contrastive_loss"]


def _as_float(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()


def nt_xent(u: Tensor, v: Tensor, temperature: float) -> Tensor:
    """Symmetric NT-Xent between the rows of ``u`` and ``v`` (both ``M x D``).

    The ``2M`` rows of ``cat(u, v)`` are L2-normalised; row ``i`` of ``u`` and
    row ``i`` of ``v`` form a positive pair, every other of the ``2M - 2``
    rows is a negative.  Returns the cross-entropy averaged over the ``2M``
    anchors::

        l_i = -log( exp(s(i, pos(i)) / t) / sum_{k != i} exp(s(i, k) / t) )

    Implemented with one ``2M x 2M`` cosine-similarity matrix whose diagonal is
    set to ``-inf`` and ``F.cross_entropy`` with the index of the positive.
    """
    if u.shape != v.shape or u.dim() != 2:
        raise ValueError(f"expected two M x D tensors of equal shape, got {tuple(u.shape)} and {tuple(v.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    m = u.shape[0]
    with torch.autocast(device_type=u.device.type, enabled=False):
        z = F.normalize(torch.cat([_as_float(u), _as_float(v)], dim=0), dim=1)
        logits = (z @ z.t()) / temperature
        self_mask = torch.eye(2 * m, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        idx = torch.arange(m, device=z.device)
        target = torch.cat([idx + m, idx])
        return F.cross_entropy(logits, target, reduction="mean")


def instance_contrastive_loss(z_a: Tensor, z_b: Tensor, temperature: float = 0.5) -> Tensor:
    """Instance-level contrastive loss of Contrastive Clustering (Li et al., AAAI 2021, Eq. 2-3).

    ``z_a``, ``z_b``: ``N x D`` embeddings of two augmented views of the same
    batch (need not be normalised; rows are L2-normalised here, so the loss is
    invariant to positive rescaling of each row).  NT-Xent with cosine
    similarity over the ``2N`` embeddings: for each anchor the positive is its
    other view and the negatives are the remaining ``2N - 2`` embeddings; the
    result is the mean over the ``2N`` anchors (Eq. 3).

    Equal to the released CC ``InstanceLoss`` (cross-entropy with
    ``reduction='sum'`` divided by ``2N``, applied to already-normalised ``z``).
    """
    return nt_xent(z_a, z_b, temperature)


def cluster_contrastive_loss(
    c_a: Tensor,
    c_b: Tensor,
    temperature: float = 1.0,
    entropy_weight: float = 1.0,
) -> Tensor:
    """Cluster-level contrastive loss of Contrastive Clustering (Li et al., AAAI 2021, Eq. 5-6).

    ``c_a``, ``c_b``: ``N x K`` soft cluster assignments of two views (rows sum
    to one).  The ``2K`` columns (cluster representations) are contrasted with
    the same NT-Xent as the instance loss, using cosine similarity between
    columns: column ``k`` of view a is positive with column ``k`` of view b,
    the other ``2K - 2`` columns are negatives; mean over the ``2K`` anchors
    (Eq. 5).  The cluster-size entropy of each view is then subtracted (Eq. 6)::

        loss = mean_anchor CE  -  entropy_weight * (H(P_a) + H(P_b)),
        P_k  = sum_n c_nk / sum_{n,k} c_nk,   H(P) = -sum_k P_k log P_k.

    Note: the released CC ``ClusterLoss`` adds ``log K + sum_k P_k log P_k`` per
    view, i.e. it equals this value plus the constant ``2 log K`` (for
    ``entropy_weight = 1``); the gradients are identical.
    """
    if c_a.shape != c_b.shape or c_a.dim() != 2:
        raise ValueError(f"expected two N x K tensors of equal shape, got {tuple(c_a.shape)} and {tuple(c_b.shape)}")
    contrast = nt_xent(c_a.t(), c_b.t(), temperature)
    if entropy_weight == 0:
        return contrast
    with torch.autocast(device_type=c_a.device.type, enabled=False):
        p_a = _as_float(c_a).sum(dim=0)
        p_b = _as_float(c_b).sum(dim=0)
        p_a = p_a / p_a.sum().clamp_min(EPS)
        p_b = p_b / p_b.sum().clamp_min(EPS)
        return contrast - entropy_weight * (entropy(p_a) + entropy(p_b))


def pairwise_nt_xent(z: Tensor, temperature: float) -> Tensor:
    """NT-Xent between every ordered pair of M views at once: ``z`` is ``... x M x N x D``.

    Returns the ``... x M x M`` matrix ``L`` with ``L[i, j]`` the mean over the N anchors of
    view i of the NT-Xent term of the pair (i, j): positive ``z[j, n]``, negatives the other
    ``2N - 2`` rows of ``z[i]`` and ``z[j]``. The diagonal is 0. For two views,
    ``nt_xent(u, v) == (L[0, 1] + L[1, 0]) / 2``. One batched similarity instead of
    M(M-1)/2 calls: multi-view methods (SDCIB) contrast all modality pairs every step. Leading
    dimensions (members of a vectorised sweep) are independent problems.
    """
    if z.dim() < 3:
        raise ValueError(f"expected an M x N x D tensor (with optional leading dimensions), got shape {tuple(z.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    m, n = z.shape[-3], z.shape[-2]
    with torch.autocast(device_type=z.device.type, enabled=False):
        z = F.normalize(_as_float(z), dim=-1)
        sim = torch.einsum("...ind,...jmd->...ijnm", z, z) / temperature  # ... x M x M x N x N
        positives = torch.diagonal(sim, dim1=-2, dim2=-1)  # ... x M x M x N
        # an anchor never contrasts with itself (masked_fill: cheap and deterministic backward)
        eye_m = torch.eye(m, dtype=torch.bool, device=z.device)
        eye_n = torch.eye(n, dtype=torch.bool, device=z.device)
        sim = sim.masked_fill(eye_m[:, :, None, None] & eye_n, float("-inf"))
        lse = torch.logsumexp(sim, dim=-1)  # ... x M x M x N
        own = torch.diagonal(lse, dim1=-3, dim2=-2).transpose(-1, -2)  # ... x M x N: the anchor's own view
        per_anchor = torch.logaddexp(own.unsqueeze(-2), lse) - positives
        losses = per_anchor.mean(dim=-1)
        return losses * (1 - torch.eye(m, dtype=losses.dtype, device=losses.device))


def _draw_other_cluster(cluster: Tensor, anchor: Tensor, count: int, generator: torch.Generator | None) -> Tensor:
    """``count`` indices per anchor, uniform with replacement among the candidates whose
    ``cluster`` differs from the anchor's (all candidates where none does). With the candidates
    sorted by cluster, the allowed ones are everything but one contiguous block, so a uniform
    draw over the allowed count maps to an index by skipping that block: O(anchors x count),
    where a multinomial over an anchors x candidates weight matrix is O(anchors x candidates)."""
    order = torch.argsort(cluster, stable=True)
    start = torch.searchsorted(cluster[order], cluster[anchor])
    size = torch.searchsorted(cluster[order], cluster[anchor], right=True) - start
    allowed = len(cluster) - size
    skip = torch.where(allowed > 0, size, torch.zeros_like(size))
    allowed = torch.where(allowed > 0, allowed, torch.full_like(allowed, len(cluster)))
    u = torch.rand(len(anchor), count, generator=generator, device=cluster.device)
    j = (u * allowed[:, None]).long().clamp_max(allowed[:, None] - 1)
    j = j + skip[:, None] * (j >= start[:, None])
    return order[j]


def cross_view_contrastive_loss(
    z: Tensor,
    clusters: Tensor | None,
    temperature: float = 0.1,
    negatives_ratio: float | None = 0.25,
    generator: torch.Generator | None = None,
) -> Tensor:
    """CoMVC's contrastive alignment loss (Trosten et al., CVPR 2021, Eq. 6-7), over all ordered
    pairs of V views.

    ``z``: ``V x N x D`` view representations (cosine similarity, scaled by 1 / temperature).
    For every ordered pair of views (u, v), u != v, anchor ``z[u, n]`` has the positive
    ``z[v, n]``; the loss is the mean over the V(V-1)N anchors of
    ``-log(e^{s_pos} / (e^{s_pos} + sum_{neg} e^{s_neg}))``.

    Negatives (Sec. 3.3, "we only use samples from different clusters as negatives"): with
    ``negatives_ratio`` r, each anchor draws ``int(r * V * N)`` negatives with replacement,
    uniformly among the V*N representations whose sample's cluster (``clusters``, N hard labels)
    differs from the anchor sample's; an anchor with no such sample (one cluster in the batch)
    draws among all others. ``negatives_ratio=None`` uses every other representation in the
    batch as a negative (SimCLR-style; the released code allows it for 2 views only).
    """
    if z.dim() != 3 or z.shape[0] < 2:
        raise ValueError(f"expected a V x N x D tensor with V >= 2 views, got shape {tuple(z.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    v, n, _ = z.shape
    with torch.autocast(device_type=z.device.type, enabled=False):
        flat = F.normalize(_as_float(z).reshape(v * n, -1), dim=1)
        logits = flat @ flat.t() / temperature  # (VN x VN); row u*N + i is view u, sample i
        view = torch.arange(v, device=z.device).repeat_interleave(n)
        sample = torch.arange(n, device=z.device).repeat(v)
        # anchors and positives: every (u*N + i, w*N + i) with u != w
        pair = (sample[:, None] == sample[None, :]) & (view[:, None] != view[None, :])
        anchor, positive = pair.nonzero(as_tuple=True)
        flat_logits = logits.reshape(-1)  # take() on the flat matrix: a cheaper backward than 2-d indexing
        pos = flat_logits.take(anchor * (v * n) + positive)
        if negatives_ratio is None:
            candidates = ~torch.eye(v * n, dtype=torch.bool, device=z.device)
            candidates[anchor, positive] = False
            neg_logits = logits[anchor].masked_fill(~candidates[anchor], float("-inf"))
        else:
            if clusters is None:
                raise ValueError("negative sampling by cluster needs the samples' cluster labels")
            count = max(int(negatives_ratio * v * n), 1)
            drawn = _draw_other_cluster(clusters.reshape(-1)[sample], anchor, count, generator)
            neg_logits = flat_logits.take(anchor[:, None] * (v * n) + drawn)
        scores = torch.cat([pos[:, None], neg_logits], dim=1)
        return F.cross_entropy(scores, torch.zeros(len(anchor), dtype=torch.long, device=z.device))
