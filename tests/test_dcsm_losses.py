"""Exact-value and property tests for the DCSM losses (clusterbench/losses/dcsm.py).

Expected numbers are written from the paper's formulas by hand (math / numpy loops), never by
calling the function under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clusterbench.losses import (
    DCSM_TABLE2,
    cluster_entropy_loss,
    cluster_standard_weights,
    dcsm_objective,
    dt_loss,
    ft_loss,
    jsd_mi_loss,
    label_features,
    local_mi_jsd,
    mi_pair_masks,
    similarity_targets,
    threshold_similarity_targets,
)

C = 1e-7  # the log clamp of Eq. 1 / Eq. 5


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def sp(x: float) -> float:
    return math.log1p(math.exp(x))


# ---------------------------------------------------------------------------------------------
# Eq. 3: label features
# ---------------------------------------------------------------------------------------------


def test_label_features_hand_value():
    # softmax(0, ln 3) = (1/4, 3/4); L2 norm sqrt(10)/4 -> (1, 3)/sqrt(10)
    l = label_features(t([[0.0, math.log(3.0)]]))
    assert torch.allclose(l, t([[1 / math.sqrt(10), 3 / math.sqrt(10)]]), atol=1e-12)
    # activation='none': only the L2 normalisation
    assert torch.allclose(label_features(t([[3.0, 4.0]]), activation="none"), t([[0.6, 0.8]]), atol=1e-12)


def test_label_features_constraint_of_eq3():
    gen = torch.Generator().manual_seed(0)
    l = label_features(torch.randn(64, 10, generator=gen) * 5)
    assert l.dtype == torch.float32
    assert torch.allclose(l.norm(dim=1), torch.ones(64), atol=1e-6)
    assert bool((l >= 0).all()) and bool((l <= 1).all())


def test_label_features_errors():
    with pytest.raises(ValueError, match="N x K"):
        label_features(torch.zeros(5))
    with pytest.raises(ValueError, match="floating-point"):
        label_features(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="non-negative"):
        label_features(t([[0.5, -0.1]]), activation="none")
    with pytest.raises(ValueError, match="activation"):
        label_features(t([[0.5, 0.1]]), activation="relu")


# ---------------------------------------------------------------------------------------------
# Eq. 2 and the threshold baseline (Table 4)
# ---------------------------------------------------------------------------------------------


def test_similarity_targets_eq2():
    r = similarity_targets(torch.tensor([0, 1, 0, 2]))
    expected = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)
    assert r.dtype == torch.float32
    assert np.array_equal(r.numpy(), expected)
    assert not r.requires_grad


def test_similarity_targets_errors():
    with pytest.raises(ValueError, match="integer"):
        similarity_targets(t([0.0, 1.0]))
    with pytest.raises(ValueError, match="1-D"):
        similarity_targets(torch.zeros(2, 2, dtype=torch.long))


def _four_rows():
    # l_0 = l_1 = e1, l_2 = (0.6, 0.8), l_3 = e2:  s_02 = s_12 = 0.6, s_23 = 0.8, s_03 = s_13 = 0
    return t([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])


def test_threshold_targets_single_threshold():
    targets, mask = threshold_similarity_targets(_four_rows(), upper=0.95)
    expected = np.eye(4)
    expected[0, 1] = expected[1, 0] = 1
    assert np.array_equal(targets.numpy(), expected)
    assert bool(mask.all())


def test_threshold_targets_two_thresholds_mask_middle_pairs():
    targets, mask = threshold_similarity_targets(_four_rows(), upper=0.95, lower=0.5)
    left_out = {(0, 2), (2, 0), (1, 2), (2, 1), (2, 3), (3, 2)}  # 0.5 <= s < 0.95
    for i in range(4):
        for j in range(4):
            assert bool(mask[i, j]) == ((i, j) not in left_out)
    assert targets[0, 1] == 1 and targets[0, 3] == 0


def test_threshold_targets_errors():
    with pytest.raises(ValueError, match="upper"):
        threshold_similarity_targets(_four_rows(), upper=1.5)
    with pytest.raises(ValueError, match="must not exceed"):
        threshold_similarity_targets(_four_rows(), upper=0.5, lower=0.9)


# ---------------------------------------------------------------------------------------------
# Eq. 1: L_DT
# ---------------------------------------------------------------------------------------------


def test_dt_loss_hand_value():
    # g = [[1, .6], [.6, 1]]; r = I: diagonal -log(1 - C) each (clamped), off-diagonal -log(1 - .6)
    l = t([[1.0, 0.0], [0.6, 0.8]])
    r = t([[1.0, 0.0], [0.0, 1.0]])
    total = 2 * -math.log(1 - C) + 2 * -math.log(0.4)
    assert dt_loss(l, r).item() == pytest.approx(total / 4, rel=1e-9)
    assert dt_loss(l, r, reduction="sum").item() == pytest.approx(total, rel=1e-9)
    # all similar: off-diagonal -log(.6)
    assert dt_loss(l, torch.ones(2, 2, dtype=torch.float64)).item() == pytest.approx(
        (2 * -math.log(1 - C) + 2 * -math.log(0.6)) / 4, rel=1e-9
    )
    # mask keeps only the diagonal
    assert dt_loss(l, r, mask=torch.eye(2, dtype=torch.bool)).item() == pytest.approx(-math.log(1 - C), rel=1e-6)


def test_dt_loss_matches_numpy_loops_on_random_batch():
    gen = torch.Generator().manual_seed(1)
    l = label_features(torch.randn(6, 3, generator=gen, dtype=torch.float64))
    a = torch.tensor([0, 1, 0, 2, 1, 0])
    ln, an = l.numpy(), a.numpy()
    total = 0.0
    for i in range(6):
        for j in range(6):
            r = 1.0 if (an[i] == an[j] or i == j) else 0.0
            g = min(max(float(ln[i] @ ln[j]), C), 1 - C)
            total += -(r * math.log(g) + (1 - r) * math.log(1 - g))
    assert dt_loss(l, similarity_targets(a)).item() == pytest.approx(total / 36, rel=1e-9)


def test_dt_loss_gradients_finite_and_targets_detached():
    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(2), requires_grad=True)
    l = label_features(logits)
    # targets equal to g itself: d/dg BCE(r, g) = (g - r) / (g (1 - g)) = 0, so the gradient is
    # zero exactly when no gradient flows through the targets (it would be -log g + log(1 - g))
    r = (l @ l.t()).clamp(0, 1)
    dt_loss(l, r).backward()
    assert torch.allclose(logits.grad, torch.zeros_like(logits), atol=1e-5)
    logits.grad = None
    dt_loss(label_features(logits), similarity_targets(torch.tensor([0, 1, 0, 1, 2, 2, 0, 1]))).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # orthogonal one-hot rows with target 1: g = 0 is clamped, loss and gradient stay finite
    l0 = t([[1.0, 0.0], [0.0, 1.0]]).requires_grad_()
    loss0 = dt_loss(l0, torch.ones(2, 2, dtype=torch.float64))
    loss0.backward()
    assert math.isfinite(loss0.item()) and torch.isfinite(l0.grad).all()


def test_dt_loss_errors():
    l = t([[1.0, 0.0], [0.6, 0.8]])
    with pytest.raises(ValueError, match="targets must be 2 x 2"):
        dt_loss(l, torch.ones(3, 3))
    with pytest.raises(ValueError, match="bool"):
        dt_loss(l, torch.ones(2, 2), mask=torch.ones(2, 2))
    with pytest.raises(ValueError, match="reduction"):
        dt_loss(l, torch.ones(2, 2), reduction="none")


# ---------------------------------------------------------------------------------------------
# Eq. 4-5: L_FT
# ---------------------------------------------------------------------------------------------

A = (0.995, math.sqrt(1 - 0.995**2))  # a confident unit row
B = (0.6, 0.8)


def _ce(row, hot):
    return -sum(math.log(v) if k == hot else math.log(1 - v) for k, v in enumerate(row))


def test_cluster_standard_weights_eq4():
    assert cluster_standard_weights(t([A, B]), 0.99).tolist() == [1.0, 0.0]
    assert cluster_standard_weights(t([A, B]), 0.8).tolist() == [1.0, 1.0]  # >= threshold


def test_ft_loss_hand_value():
    l = t([A, B])
    ce_a, ce_b = _ce(A, 0), _ce(B, 1)
    assert ft_loss(l, 0.99).item() == pytest.approx(ce_a / 2, rel=1e-9)
    assert ft_loss(l, 0.99, reduction="sum").item() == pytest.approx(ce_a, rel=1e-9)
    assert ft_loss(l, 0.5).item() == pytest.approx((ce_a + ce_b) / 2, rel=1e-9)
    # threshold on a separate confidence matrix; s_i still the argmax of l
    conf = t([[0.5, 0.5], [0.1, 0.9]])
    assert ft_loss(l, 0.9, confidence=conf).item() == pytest.approx(ce_b / 2, rel=1e-9)


def test_ft_loss_no_selected_sample_is_zero_with_finite_gradient():
    l = t([B, B]).requires_grad_()
    loss = ft_loss(l, 0.99)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(l.grad, torch.zeros_like(l))


def test_ft_loss_gradient_finite_on_one_hot_rows():
    logits = t([[20.0, -20.0], [0.0, 0.0], [-3.0, 3.0]]).requires_grad_()
    loss = ft_loss(label_features(logits), 0.9)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(logits.grad).all()


def test_ft_loss_errors():
    with pytest.raises(ValueError, match="threshold"):
        ft_loss(t([A]), 0.0)
    with pytest.raises(ValueError, match="threshold"):
        ft_loss(t([A]), 1.5)
    with pytest.raises(ValueError, match="confidence must have"):
        ft_loss(t([A, B]), 0.9, confidence=t([A]))
    with pytest.raises(ValueError, match="N x K"):
        ft_loss(t(A), 0.9)


# ---------------------------------------------------------------------------------------------
# Eq. 6-10: local MI with the JSD estimator
# ---------------------------------------------------------------------------------------------


def test_mi_pair_masks_from_assignments_and_threshold():
    pos, neg = mi_pair_masks(torch.tensor([0, 1, 0]))
    assert pos.tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    assert torch.equal(neg, ~pos)
    pos, neg = mi_pair_masks(l=_four_rows(), threshold=0.7)  # s_01 = 1, s_23 = .8
    expected = np.eye(4, dtype=bool)
    expected[0, 1] = expected[1, 0] = expected[2, 3] = expected[3, 2] = True
    assert np.array_equal(pos.numpy(), expected)


def test_mi_pair_masks_errors():
    with pytest.raises(ValueError, match="exactly one"):
        mi_pair_masks()
    with pytest.raises(ValueError, match="exactly one"):
        mi_pair_masks(torch.tensor([0, 1]), l=_four_rows(), threshold=0.5)
    with pytest.raises(ValueError, match="threshold"):
        mi_pair_masks(l=_four_rows())
    with pytest.raises(ValueError, match="threshold applies"):
        mi_pair_masks(torch.tensor([0, 1]), threshold=0.5)


def test_jsd_mi_loss_hand_value():
    loss = jsd_mi_loss(t([1.0, 2.0]), t([0.0, -1.0]))
    expected = -((-sp(-1.0) - sp(-2.0)) / 2 - (sp(0.0) + sp(-1.0)) / 2)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="empty"):
        jsd_mi_loss(t([]), t([0.0]))


def test_local_mi_jsd_hand_value():
    # N = 2 samples, 2 locations; scores[i, j, loc]; positives: diagonal pairs
    s = [[[1.0, 2.0], [0.5, -1.0]], [[0.0, 3.0], [-2.0, 1.5]]]
    pos = torch.eye(2, dtype=torch.bool)
    e_joint = np.mean([-sp(-v) for v in (1.0, 2.0, -2.0, 1.5)])
    e_marg = np.mean([sp(v) for v in (0.5, -1.0, 0.0, 3.0)])
    loss = local_mi_jsd(t(s), pos)
    assert loss.item() == pytest.approx(-(e_joint - e_marg), rel=1e-12)
    # same as the split form
    assert loss.item() == pytest.approx(jsd_mi_loss(t(s)[pos], t(s)[~pos]).item(), rel=1e-12)


def test_local_mi_jsd_mask_from_similarity_and_no_negatives():
    s = torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    pos, neg = mi_pair_masks(torch.tensor([0, 1, 0]))
    sn = s.numpy()
    joint = [-sp(-float(v)) for i in range(3) for j in range(3) if pos[i, j] for v in sn[i, j].ravel()]
    marg = [sp(float(v)) for i in range(3) for j in range(3) if neg[i, j] for v in sn[i, j].ravel()]
    assert local_mi_jsd(s, pos, neg).item() == pytest.approx(-(np.mean(joint) - np.mean(marg)), rel=1e-12)
    # every pair positive: E_M = 0
    all_pos = torch.ones(3, 3, dtype=torch.bool)
    assert local_mi_jsd(s, all_pos).item() == pytest.approx(np.mean([sp(-float(v)) for v in sn.ravel()]), rel=1e-12)


def test_local_mi_jsd_gradient_and_direction():
    scores = torch.zeros(4, 4, 3, dtype=torch.float64, requires_grad=True)
    pos = torch.eye(4, dtype=torch.bool)
    local_mi_jsd(scores, pos).backward()
    g = scores.grad
    assert torch.isfinite(g).all()
    # minimising raises positive scores and lowers negative ones
    assert bool((g[pos] < 0).all()) and bool((g[~pos] > 0).all())


def test_local_mi_jsd_errors():
    pos = torch.eye(2, dtype=torch.bool)
    with pytest.raises(ValueError, match="N x N"):
        local_mi_jsd(torch.zeros(2, 3), pos)
    with pytest.raises(ValueError, match="N x N"):
        local_mi_jsd(torch.zeros(2), pos)
    with pytest.raises(ValueError, match="floating-point"):
        local_mi_jsd(torch.zeros(2, 2, dtype=torch.long), pos)
    with pytest.raises(ValueError, match="pos_mask must be 2 x 2"):
        local_mi_jsd(torch.zeros(2, 2), torch.eye(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        local_mi_jsd(torch.zeros(2, 2), torch.eye(2))
    with pytest.raises(ValueError, match="neg_mask"):
        local_mi_jsd(torch.zeros(2, 2), pos, torch.eye(3, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------
# Eq. 11: L_E
# ---------------------------------------------------------------------------------------------


def test_cluster_entropy_loss_hand_values():
    assert cluster_entropy_loss(t([[1.0, 0.0], [1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-12)
    assert cluster_entropy_loss(t([[1.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(-math.log(2), rel=1e-12)
    # q = (.75, .25)
    q = (0.75, 0.25)
    assert cluster_entropy_loss(t([[1.0, 0.0], [0.5, 0.5]])).item() == pytest.approx(sum(v * math.log(v) for v in q), rel=1e-12)
    # L2-normalised soft rows (1, 1)/sqrt(2): literal q_k = 1/sqrt(2) each, sum 2 * q log q
    soft = torch.full((3, 2), 1 / math.sqrt(2), dtype=torch.float64)
    literal = 2 * (1 / math.sqrt(2)) * math.log(1 / math.sqrt(2))
    assert cluster_entropy_loss(soft, normalize=False).item() == pytest.approx(literal, rel=1e-12)
    assert cluster_entropy_loss(soft).item() == pytest.approx(-math.log(2), rel=1e-12)


def test_cluster_entropy_loss_lower_for_uniform_batch_than_collapsed():
    k = 5
    uniform = label_features(torch.eye(k) * 10)  # every cluster once, confidently
    collapsed = label_features(torch.eye(k)[[0] * k] * 10)  # all in cluster 0
    assert cluster_entropy_loss(uniform) < cluster_entropy_loss(collapsed)
    assert cluster_entropy_loss(uniform).item() == pytest.approx(-math.log(k), abs=1e-4)


def test_cluster_entropy_loss_descent_spreads_clusters():
    logits = torch.randn(16, 4, generator=torch.Generator().manual_seed(4)) + torch.tensor([4.0, 0, 0, 0])
    logits.requires_grad_()
    before = cluster_entropy_loss(label_features(logits)).item()
    for _ in range(20):  # plain gradient descent, step 1
        (grad,) = torch.autograd.grad(cluster_entropy_loss(label_features(logits)), logits)
        assert torch.isfinite(grad).all()
        with torch.no_grad():
            logits -= grad
    assert cluster_entropy_loss(label_features(logits)).item() < before - 0.1


def test_cluster_entropy_loss_errors():
    with pytest.raises(ValueError, match="N x K"):
        cluster_entropy_loss(torch.ones(3))


# ---------------------------------------------------------------------------------------------
# Eq. 10 and 12
# ---------------------------------------------------------------------------------------------


def test_dcsm_objective_hand_value():
    out = dcsm_objective(t(1.0), t(2.0), t(3.0), t(4.0), t(5.0), t(-1.0), eps=0.5, alpha=0.1, beta=0.2, delta=0.3, lam=2.0)
    mi = 0.1 * 3 + 0.2 * 4 + 0.3 * 5
    assert out["mi"].item() == pytest.approx(mi, rel=1e-12)
    assert out["total"].item() == pytest.approx(0.5 * 1 + 2 + mi + 2 * -1, rel=1e-12)
    assert out["dt"].item() == 1.0 and out["e"].item() == -1.0


def test_dcsm_objective_defaults_and_ablation():
    out = dcsm_objective(dt=t(1.0), lmi=t(1.0), lmit=t(1.0), lmic=t(1.0))
    alpha, beta, delta = DCSM_TABLE2["mnist"]
    assert out["total"].item() == pytest.approx(1.0 + alpha + beta + delta, rel=1e-12)
    assert out["ft"].item() == 0.0 and out["e"].item() == 0.0
    # DCSM-oc: class-level terms only
    oc = dcsm_objective(dt=t(1.0), ft=t(2.0), e=t(-0.5), lam=2.0)
    assert oc["mi"].item() == 0.0 and oc["total"].item() == pytest.approx(2.0, rel=1e-12)


def test_dcsm_objective_errors():
    with pytest.raises(ValueError, match="at least one"):
        dcsm_objective()
    with pytest.raises(ValueError, match="scalar"):
        dcsm_objective(dt=torch.ones(2))


# ---------------------------------------------------------------------------------------------
# autocast and an end-to-end gradient
# ---------------------------------------------------------------------------------------------


def test_losses_float32_under_autocast():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 3, generator=gen).bfloat16()
    scores = torch.randn(6, 6, 2, 2, generator=gen).bfloat16()
    a = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        l = label_features(logits)
        values = [
            dt_loss(l, similarity_targets(a)),
            ft_loss(l, 0.5),
            local_mi_jsd(scores, mi_pair_masks(a)[0]),
            cluster_entropy_loss(l),
        ]
    assert l.dtype == torch.float32
    for v in values:
        assert v.dtype == torch.float32 and v.dim() == 0 and torch.isfinite(v)


def test_total_objective_backward_finite():
    gen = torch.Generator().manual_seed(6)
    logits_orig = torch.randn(8, 4, generator=gen)
    logits_tr = torch.randn(8, 4, generator=gen, requires_grad=True)
    scores = torch.randn(8, 8, 3, 3, generator=gen, requires_grad=True)
    a = label_features(logits_orig).argmax(1)  # stand-in for the k-means clusters
    l_tr = label_features(logits_tr)
    pos, neg = mi_pair_masks(a)
    mi = local_mi_jsd(scores, pos, neg)
    out = dcsm_objective(dt_loss(l_tr, similarity_targets(a)), ft_loss(l_tr, 0.6), mi, mi, mi, cluster_entropy_loss(l_tr))
    out["total"].backward()
    assert torch.isfinite(logits_tr.grad).all() and torch.isfinite(scores.grad).all()
    assert logits_tr.grad.abs().sum() > 0


def test_dac_thresholds_move_and_stop_where_they_meet():
    from clusterbench.losses.dcsm import dac_thresholds

    assert dac_thresholds(0) == pytest.approx((0.95, 0.455))
    assert dac_thresholds(10, 0.95, 0.455, 0.01) == pytest.approx((0.85, 0.465))
    # they would cross after (0.95 - 0.455) / (1.1 * 0.01) = 45 epochs: both stay at 0.5
    assert dac_thresholds(100, 0.95, 0.455, 0.01) == pytest.approx((0.5, 0.5))


def test_confident_pair_targets_by_hand():
    """Same cluster and l_i . l_j >= u: r = 1, trained; different cluster and <= l: r = 0,
    trained; every other pair left out; the diagonal always trained."""
    from clusterbench.losses.dcsm import confident_pair_targets

    l = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])  # unit rows
    assign = torch.tensor([0, 0, 0, 1])
    # similarities: s01 = 1, s02 = 0.6, s03 = 0, s12 = 0.6, s13 = 0, s23 = 0.8
    r, mask = confident_pair_targets(assign, l, upper=0.9, lower=0.5)
    expected_r = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1]], dtype=torch.float32)
    expected_mask = torch.tensor(
        [[1, 1, 0, 1], [1, 1, 0, 1], [0, 0, 1, 0], [1, 1, 0, 1]], dtype=torch.bool
    )  # (0,2), (1,2): same cluster but 0.6 < 0.9; (2,3): different cluster but 0.8 > 0.5
    torch.testing.assert_close(r, expected_r)
    assert torch.equal(mask, expected_mask)
