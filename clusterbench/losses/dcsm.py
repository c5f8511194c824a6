"""Losses of DCSM (Peng & Li, "Deep Image Clustering Based on Label Similarity and Maximizing
Mutual Information across Views", Applied Sciences 13(1):674, 2023).

The paper has no released code; everything here is written from the paper's Eq. 1-12.  Pure
functions: tensors in, a scalar tensor (or masks / targets) out.  The arithmetic is done in float32
(float64 stays float64) with autocast disabled locally, so every function can be called inside
``torch.autocast`` on CPU or CUDA.  Targets, masks and sample weights built from the network's
own outputs are detached: they are pseudo-labels, not paths for gradients.

Notation (paper, Section 3): ``l`` is the ``N x K`` matrix of label features (class-level
representations, Eq. 3: every row has unit L2 norm and entries in [0, 1]); ``r`` the ``N x N``
pseudo-similarity targets (Eq. 2); ``T`` the discriminator scores of the local mutual information
(Eq. 6-9).  Choices the paper leaves open are keyword arguments; their defaults are argued in the
docstrings and listed in ``docs/dcsm.md``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .entropy import EPS, entropy
from .information import jsd_mine_term

__all__ = [
    "DCSM_TABLE2",
    "label_features",
    "similarity_targets",
    "threshold_similarity_targets",
    "dac_thresholds",
    "confident_pair_targets",
    "dt_loss",
    "cluster_standard_weights",
    "ft_loss",
    "mi_pair_masks",
    "jsd_mi_loss",
    "local_mi_jsd",
    "cluster_entropy_loss",
    "dcsm_objective",
]

#: Table 2 of the paper: (alpha, beta, delta) of Eq. 10 per dataset.
DCSM_TABLE2 = {
    "cifar10": (0.1, 0.5, 0.2),
    "mnist": (0.2, 1.0, 0.1),
    "stl10": (0.1, 1.0, 0.1),
    "imagenet10": (0.3, 1.0, 0.3),
}

#: Clamp of the probabilities inside the logs of the cross-entropies (Eq. 1 and Eq. 5).
LOG_CLAMP = 1e-7


def _as_float(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()


def _check_matrix(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be an N x K matrix, got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_pair_matrix(x: Tensor, n: int, name: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape) != (n, n):
        raise ValueError(f"{name} must be {n} x {n} (one entry per pair of the batch), got shape {tuple(x.shape)}")


def _check_assignments(a: Tensor, name: str = "assignments") -> None:
    if not isinstance(a, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(a).__name__}")
    if a.dim() != 1 or a.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor of cluster indices, got shape {tuple(a.shape)}")
    if a.is_floating_point() or a.is_complex():
        raise ValueError(f"{name} must be an integer tensor of cluster indices, got dtype {a.dtype}")


def _check_unit_interval(value: float, name: str, *, open_left: bool = True) -> None:
    ok = (0.0 < value <= 1.0) if open_left else (0.0 <= value <= 1.0)
    if not ok:
        raise ValueError(f"{name} must lie in {'(0, 1]' if open_left else '[0, 1]'}, got {value}")


# ---------------------------------------------------------------------------------------------
# Eq. 3: label features
# ---------------------------------------------------------------------------------------------


def label_features(logits: Tensor, activation: str = "softmax") -> Tensor:
    """Label features of Eq. 3: ``||l_i||_2 = 1`` and ``0 <= l_ih <= 1`` for ``h = 1..K``.

    Paper, Eq. 3::

        g(x_i, x_j; w_l) = f_l(x_i; w_l) . f_l(x_j; w_l) = l_i . l_j
        s.t. for all i  ||l_i||_2 = 1,  0 <= l_ih <= 1,  h = 1, ..., k.

    The paper states only the constraint, not the layer that enforces it.  Default
    ``activation="softmax"``: ``l_i = softmax(logits_i) / ||softmax(logits_i)||_2``.  Why: a
    non-negative vector of unit L2 norm automatically has every entry in [0, 1], and softmax
    followed by L2 normalisation is, to our knowledge, how DAC (Chang et al. 2017, the paper's
    ref. [26] for Eq. 1-3) meets the same constraint.  ``activation="none"``: the input is already non-negative (e.g.
    probabilities) and is only L2-normalised (a ValueError if any entry is negative; an all-zero
    row stays zero).  ``logits``: ``N x K``; returns ``N x K`` (float32, or float64 for float64).
    """
    _check_matrix(logits, "logits")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = _as_float(logits)
        if activation == "softmax":
            x = torch.softmax(x, dim=1)
        elif activation == "none":
            if bool((x < 0).any()):
                raise ValueError("activation='none' needs non-negative inputs (Eq. 3: 0 <= l_ih <= 1)")
        else:
            raise ValueError(f"activation must be 'softmax' or 'none', got {activation!r}")
        return F.normalize(x, p=2.0, dim=1, eps=EPS)


# ---------------------------------------------------------------------------------------------
# Eq. 2: pseudo-similarity targets r_ij
# ---------------------------------------------------------------------------------------------


def similarity_targets(assignments: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Eq. 2: ``r_ij = 1`` if ``c_i = c_j`` or ``i = j``, else ``0`` (an ``N x N`` matrix).

    ``assignments``: 1-D integer tensor of cluster indices ``c_i``.  In DCSM they come from
    k-means on the class-level features (label features ``l``) of the *original* images
    (Figure 1), and the targets supervise the similarities of the *transformed* images
    (:func:`dt_loss`).  Running k-means is left to the model; this is the pure part.  The result
    is a target, so it carries no gradient; ``dtype`` is the floating dtype of the matrix.
    """
    _check_assignments(assignments)
    same = assignments[:, None] == assignments[None, :]
    same |= torch.eye(assignments.numel(), dtype=torch.bool, device=assignments.device)
    return same.to(dtype)


def threshold_similarity_targets(
    l: Tensor,
    upper: float = 0.95,
    lower: Optional[float] = None,
) -> tuple[Tensor, Tensor]:
    """Threshold targets of DAC / DCCM, the baseline of the paper's Table 4 ablation.

    Section 3.1: "Previous methods used a high threshold to select pairwise similar (dissimilar)
    samples to assign r_ij" ([26] DAC, [27] DCCM).  With ``s_ij = l_i . l_j`` (Eq. 3)::

        r_ij = 1 if s_ij >= upper (or i = j),   r_ij = 0 otherwise,

    and, with ``lower`` given (DAC's two thresholds), pairs with ``lower <= s_ij < upper`` are
    left out: the returned ``mask`` is False there (True everywhere when ``lower`` is None).
    Default ``upper=0.95``, ``lower=None``: one high threshold, as Section 3.1 describes it
    ("a high threshold"); the paper does not give its value for Table 4.  Returns
    ``(targets, mask)``, both ``N x N``, detached; ``targets`` has ``l``'s float dtype.
    """
    _check_matrix(l, "l")
    _check_unit_interval(upper, "upper")
    if lower is not None:
        _check_unit_interval(lower, "lower", open_left=False)
        if lower > upper:
            raise ValueError(f"lower ({lower}) must not exceed upper ({upper})")
    with torch.autocast(device_type=l.device.type, enabled=False):
        x = _as_float(l.detach())
        sim = x @ x.t()
        eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
        similar = (sim >= upper) | eye
        mask = torch.ones_like(similar) if lower is None else similar | (sim < lower)
        return similar.to(x.dtype), mask


def dac_thresholds(epoch: int, upper: float = 0.95, lower: float = 0.455, step: float = 0.0099) -> tuple[float, float]:
    """DAC's moving thresholds (Chang et al. 2017): after ``epoch`` epochs the upper threshold is
    ``upper - step * epoch`` and the lower ``lower + 0.1 * step * epoch`` (DAC: lambda grows by
    1.1 x 0.009 per epoch); once they would cross, both stay at the crossing point."""
    u = upper - step * epoch
    lo = lower + 0.1 * step * epoch
    if u < lo:
        u = lo = upper - (upper - lower) / 1.1  # where u = lo: lambda = (upper - lower) / 1.1
    return float(u), float(lo)


def confident_pair_targets(assignments: Tensor, l: Tensor, upper: float, lower: float) -> tuple[Tensor, Tensor]:
    """Eq. 2's k-means targets kept only where the label features agree with confidence (a
    clusterbench option, not in the paper; DAC's selection applied to DCSM's targets).

    ``r_ij`` is Eq. 2 (same k-means cluster or i = j). A pair is trained (``mask`` True) when
    i = j, or r_ij = 1 and ``s_ij = l_i . l_j >= upper``, or r_ij = 0 and ``s_ij <= lower``;
    every other pair is left out of L_DT. Returns ``(targets, mask)``, both N x N, detached."""
    targets = similarity_targets(assignments, dtype=_as_float(l).dtype)
    with torch.autocast(device_type=l.device.type, enabled=False):
        x = _as_float(l.detach())
        sim = x @ x.t()
        same = targets.bool()
        eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
        mask = eye | (same & (sim >= upper)) | (~same & (sim <= lower))
    return targets, mask


# ---------------------------------------------------------------------------------------------
# Eq. 1: L_DT
# ---------------------------------------------------------------------------------------------


def dt_loss(
    l: Tensor,
    targets: Tensor,
    mask: Optional[Tensor] = None,
    *,
    reduction: str = "mean",
) -> Tensor:
    """Eq. 1: ``L_DT = sum_{i=1}^n sum_{j=1}^n L(r_ij, g(x_i, x_j; w_l))``, ``g = l_i . l_j`` (Eq. 3).

    ``L`` is "the cross-entropy loss between the ground-truth similarity r_ij and the estimated
    similarity g", i.e. the binary cross-entropy::

        L(r, g) = -r log g - (1 - r) log(1 - g).

    ``l``: ``N x K`` label features satisfying Eq. 3 (see :func:`label_features`); in DCSM those
    of the transformed images.  ``targets``: ``N x N`` ``r_ij`` in [0, 1]
    (:func:`similarity_targets` or :func:`threshold_similarity_targets`; the range is not
    checked, to avoid a host sync), detached here.  ``mask``: optional ``N x N`` bool, pairs with
    False are left out (DAC's unselected pairs).  Every ordered pair including ``i = j`` is
    summed, as Eq. 1 does (``r_ii = 1`` by Eq. 2 and ``l_i . l_i = 1``, so the diagonal
    contributes about 0).  ``g`` is clamped to ``[1e-7, 1 - 1e-7]`` inside the logs.

    ``reduction="mean"`` (default) divides the sum of Eq. 1 by the number of pairs used (N^2
    without a mask).  Why: the sum grows as N^2 and the paper gives no value of its weight eps
    (Eq. 12), so a per-pair mean keeps eps comparable across batch sizes; ``reduction="sum"`` is
    Eq. 1 literally (1024 times the mean at the paper's batch size 32).
    """
    _check_matrix(l, "l")
    n = l.shape[0]
    _check_pair_matrix(targets, n, "targets")
    if mask is not None:
        _check_pair_matrix(mask, n, "mask")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor, got dtype {mask.dtype}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    with torch.autocast(device_type=l.device.type, enabled=False):
        x = _as_float(l)
        r = targets.detach().to(x.dtype)
        g = (x @ x.t()).clamp(LOG_CLAMP, 1.0 - LOG_CLAMP)
        per_pair = -(r * g.log() + (1.0 - r) * (1.0 - g).log())
        if mask is not None:
            per_pair = per_pair * mask.to(x.dtype)
            count = mask.sum()
        else:
            count = torch.tensor(n * n, device=x.device)
        total = per_pair.sum()
        if reduction == "sum":
            return total
        return total / count.clamp_min(1).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# Eq. 4-5: L_FT on cluster-standard samples
# ---------------------------------------------------------------------------------------------


def cluster_standard_weights(confidence: Tensor, threshold: float = 0.99) -> Tensor:
    """Eq. 4: ``W_i = 1`` if ``p_ij >= threshold`` for the largest element ``p_ij`` of row i, else 0.

    ``confidence``: ``N x K``; in the paper the label features ``l`` themselves ("the largest
    element p_ij in the label feature l_i").  Returns the ``N`` weights in ``confidence``'s float
    dtype, detached.  See :func:`ft_loss` for the default threshold.
    """
    _check_matrix(confidence, "confidence")
    _check_unit_interval(threshold, "threshold")
    with torch.autocast(device_type=confidence.device.type, enabled=False):
        c = _as_float(confidence.detach())
        return (c.max(dim=1).values >= threshold).to(c.dtype)


def ft_loss(
    l: Tensor,
    threshold: float = 0.99,
    *,
    confidence: Optional[Tensor] = None,
    reduction: str = "mean",
) -> Tensor:
    """Eq. 4-5: cross-entropy of the cluster-standard samples against their own one-hot labels.

    Paper::

        W_i  = 1 if p_ij >= threshold, 0 otherwise                                   (Eq. 4)
        L_FT = -sum_{i=1}^N w_i (s_i log(l_i) + (1 - s_i) log(1 - l_i))             (Eq. 5)

    where ``p_ij`` is the largest element of ``l_i`` and ``s_i`` the one-hot vector of
    ``argmax_h l_ih``; the products are taken entry-wise and summed over the K entries (binary
    cross-entropy per entry).  ``s_i`` and ``W_i`` are detached (pseudo-labels); logs clamp at
    ``1e-7``.  ``l``: ``N x K`` label features (Eq. 3).

    - ``threshold=0.99``.  Why: the paper only says "a large threshold" and that accuracy rises
      with it (Figure 4a, values not legible in the text).  It is compared with the entries of the
      L2-normalised ``l``, which are larger than softmax probabilities: for K = 10 and the other
      nine probabilities equal, ``max l_i >= 0.99`` means a softmax maximum of about 0.70 (0.95
      would already admit about 0.50).
    - ``confidence``: optional ``N x K`` matrix to threshold instead of ``l`` (e.g. the softmax
      probabilities), for the reading where ``p`` differs from ``l``; ``s_i`` still comes from
      ``l``.
    - ``reduction="mean"`` (default): Eq. 5 divided by the batch size N (not by the number of
      selected samples, so the term grows as more samples become confident, as in the sum);
      ``"sum"`` is Eq. 5 literally.  Why: a batch-size-free scale, as for :func:`dt_loss`.
      A batch with no cluster-standard sample gives 0 (with a gradient of zeros).
    """
    _check_matrix(l, "l")
    if confidence is not None:
        _check_matrix(confidence, "confidence")
        if confidence.shape != l.shape:
            raise ValueError(f"confidence must have l's shape {tuple(l.shape)}, got {tuple(confidence.shape)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    w = cluster_standard_weights(l if confidence is None else confidence, threshold)
    with torch.autocast(device_type=l.device.type, enabled=False):
        x = _as_float(l)
        w = w.to(x.dtype)
        s = F.one_hot(x.detach().argmax(dim=1), num_classes=x.shape[1]).to(x.dtype)
        ce = -(s * x.clamp_min(LOG_CLAMP).log() + (1.0 - s) * (1.0 - x).clamp_min(LOG_CLAMP).log()).sum(dim=1)
        total = (w * ce).sum()
        return total if reduction == "sum" else total / x.shape[0]


# ---------------------------------------------------------------------------------------------
# Eq. 6-10: extended (local) mutual information with the JSD estimator
# ---------------------------------------------------------------------------------------------


def mi_pair_masks(
    assignments: Optional[Tensor] = None,
    *,
    l: Optional[Tensor] = None,
    threshold: Optional[float] = None,
) -> tuple[Tensor, Tensor]:
    """Positive / negative pairs of the batch for Eq. 6-9, "chosen by the similarity of the sample pairs".

    Section 3.3: "only f_map and Z belong to the same cluster and follow J; otherwise, they follow
    M" and "the positive and negative pairs of the same sample are selected according to the
    similarity of the sample pairs in this batch. Similar pairwise samples are regarded as
    positive pairs; otherwise, they are negative pairs."  Returns ``(pos, neg)``, two ``N x N``
    bool matrices with ``neg = ~pos``; ``pos[i, j]`` says whether the global (or local) feature of
    sample i and the feature map of sample j form a positive pair.  ``i = j`` (two views of one
    image, DIM's positive) is always positive.  Exactly one source:

    - ``assignments`` (1-D integer): positive iff same cluster.  Recommended: the k-means
      clusters of Eq. 2, so the MI positives are the L_DT targets (``pos == r.bool()``).  Why: the
      text says "belong to the same cluster", and a partition keeps the relation transitive,
      which is the paper's reason for k-means.  ``l.argmax(1)`` (predicted clusters) also fits.
    - ``l`` and ``threshold``: positive iff ``l_i . l_j >= threshold`` (DCCM's thresholded
      predicted similarity, which the paragraph names).
    """
    if (assignments is None) == (l is None):
        raise ValueError("give exactly one of assignments or l (with threshold)")
    if assignments is not None:
        if threshold is not None:
            raise ValueError("threshold applies to l, not to assignments")
        pos = similarity_targets(assignments, dtype=torch.float32).bool()
    else:
        if threshold is None:
            raise ValueError("l needs a threshold on l_i . l_j")
        targets, _ = threshold_similarity_targets(l, upper=threshold)
        pos = targets.bool()
    return pos, ~pos


def jsd_mi_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    """Eq. 7-9 from scores already split into positive and negative pairs.

    ``L = -(E_J[-sp(-T(positive))] - E_M[sp(T(negative))])`` with ``sp`` the softplus: the
    negative of the JSD mutual-information estimate of Eq. 6 (:func:`~.information.jsd_mine_term`).
    ``pos_scores``, ``neg_scores``: discriminator scores of any shapes (e.g. ``P x h x w`` for P
    pairs, one score per location); each expectation is the mean over all its entries.
    """
    for name, s in (("pos_scores", pos_scores), ("neg_scores", neg_scores)):
        if not isinstance(s, Tensor) or not s.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor")
        if s.numel() == 0:
            raise ValueError(f"{name} is empty")
    return -jsd_mine_term(pos_scores.reshape(-1), neg_scores.reshape(-1))


def local_mi_jsd(scores: Tensor, pos_mask: Tensor, neg_mask: Optional[Tensor] = None) -> Tensor:
    """Eq. 6-9: DIM-style local mutual information with the JSD estimator, as a loss to minimise.

    Paper (Eq. 6 and the three losses of Eq. 7-9, here for L_LMI)::

        MI(f_map, z) = max E_J[-sp(-T(f_map, Z))] - E_M[sp(T(f_map, Z))]                      (6)
        L_LMI(z~, C_ij) = min -(E_J[-sp(-T(z~, C_ij))] - E_M[sp(T(z~, C'_ij))])              (7)
        L_LMIT(z~, C~_ij) = min -(E_J[-sp(-T(z~, C~_ij))] - E_M[sp(T(z~, C'_ij))])           (8)
        L_LMIC(C~_ij, C_ij) = min -(E_J[-sp(-T(C~_ij, C_ij))] - E_M[sp(T(C~_ij, C'_ij))])    (9)

    with ``sp`` the softplus, ``C`` / ``C~`` the ``h x w`` feature maps of the original /
    transformed image and ``C'`` a negative sample's feature map.  This function is the part
    shared by the three: ``scores`` is ``N x N`` or ``N x N x ...`` (e.g. ``N x N x h x w``) with
    ``scores[i, j, ...] = T(global (or local) feature of sample i, feature map of sample j)`` at
    every location, as a 1x1-conv discriminator on the concatenation gives it.  ``pos_mask``
    (``N x N`` bool, e.g. from :func:`mi_pair_masks`) marks the pairs drawn from J, ``neg_mask``
    (default ``~pos_mask``) those drawn from M.  ``E_J`` is the mean of ``-sp(-T)`` over every
    location of every positive pair, ``E_M`` that of ``sp(T)`` over the negative ones (DIM's
    averaging; computed as masked sums, so no host-device synchronisation).  An empty mask gives
    an expectation of 0 (a batch without negative pairs has ``E_M = 0``; with
    :func:`mi_pair_masks` the diagonal is always positive).  Equal to :func:`jsd_mi_loss` on
    ``scores[pos_mask]`` and ``scores[neg_mask]``.
    """
    if not isinstance(scores, Tensor) or not scores.is_floating_point():
        raise ValueError("scores must be a floating-point tensor")
    if scores.dim() < 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] == 0:
        raise ValueError(f"scores must be N x N or N x N x ... (one score per pair and location), got shape {tuple(scores.shape)}")
    n = scores.shape[0]
    _check_pair_matrix(pos_mask, n, "pos_mask")
    if pos_mask.dtype != torch.bool:
        raise ValueError(f"pos_mask must be a bool tensor, got dtype {pos_mask.dtype}")
    if neg_mask is None:
        neg_mask = ~pos_mask
    else:
        _check_pair_matrix(neg_mask, n, "neg_mask")
        if neg_mask.dtype != torch.bool:
            raise ValueError(f"neg_mask must be a bool tensor, got dtype {neg_mask.dtype}")
    with torch.autocast(device_type=scores.device.type, enabled=False):
        x = _as_float(scores)
        shape = (n, n) + (1,) * (x.dim() - 2)
        per_pair = x[0, 0].numel()  # locations per pair
        pos_w = pos_mask.to(device=x.device, dtype=x.dtype).reshape(shape)
        neg_w = neg_mask.to(device=x.device, dtype=x.dtype).reshape(shape)
        e_joint = -(F.softplus(-x) * pos_w).sum() / (pos_w.sum() * per_pair).clamp_min(1)
        e_marginal = (F.softplus(x) * neg_w).sum() / (neg_w.sum() * per_pair).clamp_min(1)
        return -(e_joint - e_marginal)


# ---------------------------------------------------------------------------------------------
# Eq. 11: L_E
# ---------------------------------------------------------------------------------------------


def cluster_entropy_loss(p: Tensor, normalize: bool = True) -> Tensor:
    """Eq. 11: ``L_E = -H(q) = sum_{k=1}^K q_k log(q_k)``, ``q_k = (1/m) sum_{i=1}^m l_ik``.

    ``p``: ``m x K`` non-negative (the label features ``l`` of the batch in the paper).  Minimising
    ``L_E`` maximises the entropy of the batch cluster frequencies q: it pushes the batch towards
    using every cluster equally (minimum ``-log K`` at uniform q, 0 when one cluster takes all).

    ``normalize=True`` (default) rescales q to sum to one before the entropy.  Why: the paper
    calls q_k "the frequency of the k-th cluster" and H an entropy, but with L2-normalised label
    features (Eq. 3) the literal q sums to ``mean_i ||l_i||_1``, between 1 and sqrt(K); the
    unnormalised sum then rewards soft rows (all entries 1/sqrt(K): ``-0.5 sqrt(K) log K``) over
    balanced confident ones (``-log K``), working against L_FT.  ``normalize=False`` is Eq. 11
    literally (identical when the rows of ``p`` sum to one, e.g. softmax probabilities).
    """
    _check_matrix(p, "p")
    with torch.autocast(device_type=p.device.type, enabled=False):
        x = _as_float(p)
        q = x.mean(dim=0)
        if normalize:
            q = q / q.sum().clamp_min(EPS)
        return -entropy(q)


# ---------------------------------------------------------------------------------------------
# Eq. 10 and Eq. 12: the objective
# ---------------------------------------------------------------------------------------------


def dcsm_objective(
    dt: Optional[Tensor] = None,
    ft: Optional[Tensor] = None,
    lmi: Optional[Tensor] = None,
    lmit: Optional[Tensor] = None,
    lmic: Optional[Tensor] = None,
    e: Optional[Tensor] = None,
    *,
    eps: float = 1.0,
    alpha: float = 0.2,
    beta: float = 1.0,
    delta: float = 0.1,
    lam: float = 1.0,
) -> dict[str, Tensor]:
    """Eq. 10 and 12: ``L = eps L_DT + L_FT + L_MI + lambda L_E``, ``L_MI = alpha L_LMI + beta L_LMIT + delta L_LMIC``.

    Takes the already computed terms (scalar tensors) and returns a dict with the unweighted
    terms ``dt, ft, lmi, lmit, lmic, e``, the weighted ``mi`` (Eq. 10) and ``total`` (Eq. 12).  A
    term given as None is left out of the total and reported as 0 (the paper's ablations:
    DCSM-oc has no L_MI, Table 5 drops L_LMIC or L_LMI + L_LMIT, Table 6 drops L_FT / L_MI).

    Defaults: ``alpha, beta, delta = 0.2, 1, 0.1``, Table 2's MNIST row (other rows in
    :data:`DCSM_TABLE2`).  ``eps = lam = 1``: the paper gives no values for eps and lambda, so
    both terms enter unweighted, like L_FT.
    """
    terms = {"dt": dt, "ft": ft, "lmi": lmi, "lmit": lmit, "lmic": lmic, "e": e}
    given = [v for v in terms.values() if v is not None]
    if not given:
        raise ValueError("dcsm_objective needs at least one term")
    for name, v in terms.items():
        if v is not None and (not isinstance(v, Tensor) or v.dim() != 0):
            raise ValueError(f"{name} must be a scalar tensor, got {getattr(v, 'shape', type(v).__name__)}")
    ref = given[0]
    zero = torch.zeros((), dtype=_as_float(ref).dtype, device=ref.device)
    out = {name: (zero if v is None else _as_float(v)) for name, v in terms.items()}
    out["mi"] = alpha * out["lmi"] + beta * out["lmit"] + delta * out["lmic"]
    out["total"] = eps * out["dt"] + out["ft"] + out["mi"] + lam * out["e"]
    return out
