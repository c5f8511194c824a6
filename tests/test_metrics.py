"""Tests for clusterbench.metrics."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from clusterbench.metrics import (
    collapse_stats,
    contingency_table,
    evaluate_clustering,
    hungarian_match,
)

AVERAGES = ["arithmetic", "geometric", "min", "max"]


def _shift_style_acc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Re-implementation of the ACC in the evaluation.py shipped with
    Contrastive Clustering / PICI / HTCN (Munkres replaced by scipy; the hand
    case below has a unique optimum so both solvers agree).

    The mapping is computed on the confusion matrix indexed by raw label
    value, but then applied to predictions shifted by their minimum.
    """
    from sklearn import metrics

    n_clusters = len(set(y_true.tolist()))
    conf = metrics.confusion_matrix(y_true, y_pred, labels=None)
    cost = np.zeros((n_clusters, n_clusters))
    for j in range(n_clusters):
        s = conf[:, j].sum()
        for i in range(n_clusters):
            cost[j, i] = s - conf[i, j]
    rows, cols = linear_sum_assignment(cost)
    mapping = np.zeros(n_clusters, dtype=np.int64)
    mapping[rows] = cols
    if y_pred.min() != 0:
        y_pred = y_pred - y_pred.min()
    return float(np.mean(mapping[y_pred] == y_true))


# --------------------------------------------------------------------------- #
# Contingency table
# --------------------------------------------------------------------------- #
def test_contingency_table_values():
    table, cls, clu = contingency_table(np.array([-5, 10, 10, 99]), np.array([7, 3, 3, 3]))
    assert table.dtype == np.int64
    np.testing.assert_array_equal(cls, [-5, 10, 99])
    np.testing.assert_array_equal(clu, [3, 7])
    np.testing.assert_array_equal(table, [[0, 1], [2, 0], [1, 0]])


# --------------------------------------------------------------------------- #
# ACC hand cases
# --------------------------------------------------------------------------- #
def test_perfect_clustering_permuted_labels():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    perm = np.array([2, 0, 1])
    r = evaluate_clustering(y, perm[y])
    assert r["acc"] == 1.0
    assert r["nmi"] == pytest.approx(1.0, abs=1e-12)
    assert r["ari"] == pytest.approx(1.0, abs=1e-12)
    assert r["purity"] == 1.0
    assert r["n_samples"] == 7 and r["n_classes"] == 3 and r["n_clusters"] == 3
    assert r["largest_cluster_share"] == pytest.approx(3 / 7)


def test_six_sample_hand_case():
    # table (classes x clusters): [[2,1,0],[0,1,0],[0,1,1]]
    # best 1-1 map: c0->k0 (2), c1->k1 (1), c2->k2 (1) => 4/6
    y_true = np.array([0, 0, 0, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 2])
    r = evaluate_clustering(y_true, y_pred)
    assert r["acc"] == pytest.approx(4 / 6)
    # purity: k0 -> 2, k1 -> 1 (any class), k2 -> 1 => 4/6
    assert r["purity"] == pytest.approx(4 / 6)


def test_more_clusters_than_classes():
    # K=4 > C=2; only two clusters can be matched.
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    r = evaluate_clustering(y_true, y_pred)
    assert r["acc"] == pytest.approx(5 / 8)  # k0 or k1 -> c0 (2), k2 -> c1 (3)
    assert r["purity"] == 1.0
    assert r["n_clusters"] == 4 and r["n_classes"] == 2


def test_fewer_clusters_than_classes():
    # K=2 < C=3
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([5, 5, 5, 5, 9, 9])
    r = evaluate_clustering(y_true, y_pred)
    assert r["acc"] == pytest.approx(4 / 6)
    assert r["purity"] == pytest.approx(4 / 6)
    assert r["n_clusters"] == 2 and r["n_classes"] == 3


def test_empty_cluster_zero_labels_3_and_7():
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([3, 3, 7, 7, 7])
    r = evaluate_clustering(y_true, y_pred)
    assert r["acc"] == 1.0
    assert r["n_clusters"] == 2
    assert r["largest_cluster_share"] == pytest.approx(3 / 5)


def test_empty_cluster_zero_beats_shift_style_bug():
    # Cluster 0 unused. True table (classes x clusters {1,2}) = [[3,0],[0,2],[0,1]]
    # -> ACC 5/6. The min-shift evaluation computes the mapping on raw label
    # columns {0,1,2} and applies it to labels shifted to {0,1}, yielding 0.
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([1, 1, 1, 2, 2, 2])
    assert evaluate_clustering(y_true, y_pred)["acc"] == pytest.approx(5 / 6)
    assert _shift_style_acc(y_true, y_pred) == 0.0


def test_arbitrary_label_values():
    y_true = np.array([-5, -5, 10, 10, 99, 99])
    y_pred = np.array([42, 42, -1, -1, 1000, -1])
    r = evaluate_clustering(y_true, y_pred)
    assert r["acc"] == pytest.approx(5 / 6)
    # relabelling to 0..2 gives identical metrics
    r2 = evaluate_clustering(np.array([0, 0, 1, 1, 2, 2]), np.array([1, 1, 0, 0, 2, 0]))
    for key in ("acc", "nmi", "ari", "purity"):
        assert r[key] == pytest.approx(r2[key], abs=1e-15)


def test_torch_input_and_json_serialisable():
    y_true = torch.tensor([0, 0, 1, 1, 2, 2])
    y_pred = torch.tensor([1, 1, 0, 0, 2, 0])
    r = evaluate_clustering(y_true, y_pred)
    ref = evaluate_clustering(y_true.numpy(), y_pred.numpy())
    assert r == ref
    assert r["acc"] == pytest.approx(5 / 6)
    json.dumps(r)
    for key in ("acc", "nmi", "ari", "purity", "largest_cluster_share"):
        assert type(r[key]) is float
    for key in ("n_samples", "n_classes", "n_clusters"):
        assert type(r[key]) is int


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_cuda_input():
    y = torch.tensor([0, 0, 1, 1, 2, 2], device="cuda")
    assert evaluate_clustering(y, y.flip(0))["n_samples"] == 6
    stats = collapse_stats(y, 4)
    assert stats["nonempty_clusters"] == 3


def test_float_integral_input():
    y_true = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    y_pred = np.array([1.0, 1.0, 0.0, 0.0, 2.0, 0.0])
    r = evaluate_clustering(y_true, y_pred)
    assert r == evaluate_clustering(y_true.astype(int), y_pred.astype(int))
    r_t = evaluate_clustering(torch.tensor(y_true, dtype=torch.float32), torch.tensor(y_pred))
    assert r_t == r


# --------------------------------------------------------------------------- #
# Agreement with sklearn
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("seed", range(6))
def test_nmi_ari_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 2000))
    c = int(rng.integers(2, 12))
    k = int(rng.integers(2, 15))
    y_true = rng.integers(0, c, n) * 3 - 7  # gaps and negative values
    # correlated predictions, K != C in general
    y_pred = np.where(rng.random(n) < 0.6, y_true % k, rng.integers(0, k, n)) + 100
    for avg in AVERAGES:
        r = evaluate_clustering(y_true, y_pred, nmi_average=avg)
        ref = normalized_mutual_info_score(y_true, y_pred, average_method=avg)
        assert abs(r["nmi"] - ref) < 1e-9, (avg, r["nmi"], ref)
    assert abs(r["ari"] - adjusted_rand_score(y_true, y_pred)) < 1e-9


@pytest.mark.parametrize(
    "y_true, y_pred",
    [
        ([0, 0, 0, 0], [1, 1, 1, 1]),  # one class, one cluster
        ([0, 0, 0, 0], [0, 1, 2, 3]),  # one class, many clusters
        ([0, 1, 2, 3], [5, 5, 5, 5]),  # many classes, one cluster
        ([0, 1, 2, 3], [3, 2, 1, 0]),  # all singletons
        ([7], [3]),  # single sample
        ([0, 0, 1, 1], [0, 1, 0, 1]),  # independent
    ],
)
def test_degenerate_cases_match_sklearn(y_true, y_pred):
    for avg in AVERAGES:
        r = evaluate_clustering(np.array(y_true), np.array(y_pred), nmi_average=avg)
        assert r["nmi"] == pytest.approx(normalized_mutual_info_score(y_true, y_pred, average_method=avg), abs=1e-12)
        assert r["ari"] == pytest.approx(adjusted_rand_score(y_true, y_pred), abs=1e-12)


def test_purity_hand_case():
    # table: k0 -> [3,1], k1 -> [0,2], k2 -> [2,2]; purity = (3+2+2)/10
    y_true = np.array([0, 0, 0, 1, 1, 1, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    assert evaluate_clustering(y_true, y_pred)["purity"] == pytest.approx(0.7)


# --------------------------------------------------------------------------- #
# Invalid input
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        (np.array([0, 1, 2]), np.array([0, 1]), "different lengths"),
        (np.array([], dtype=int), np.array([], dtype=int), "empty"),
        (np.array([0.0, 1.5]), np.array([0, 1]), "non-integer"),
        (np.array([0, 1]), np.array([0.0, np.nan]), "NaN"),
        (np.array([[0, 1], [1, 0]]), np.array([[0, 1], [1, 0]]), "1-D"),
        (np.array(["a", "b"]), np.array([0, 1]), "integer labels"),
        (torch.tensor([0.5, 1.0]), torch.tensor([0, 1]), "non-integer"),
    ],
)
def test_invalid_input(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        evaluate_clustering(y_true, y_pred)


def test_invalid_nmi_average():
    with pytest.raises(ValueError, match="nmi_average"):
        evaluate_clustering(np.array([0, 1]), np.array([0, 1]), nmi_average="median")


# --------------------------------------------------------------------------- #
# hungarian_match
# --------------------------------------------------------------------------- #
def test_hungarian_match_permuted():
    rng = np.random.default_rng(0)
    y_ref = rng.integers(0, 5, 200)
    perm = np.array([3, 0, 4, 1, 2])  # ref r -> pred perm[r]
    y_pred = perm[y_ref]
    y_pred[:10] = (y_pred[:10] + 1) % 5  # a little noise
    mapping = hungarian_match(y_ref, y_pred, 5)
    assert mapping.dtype == np.int64 and sorted(mapping.tolist()) == list(range(5))
    np.testing.assert_array_equal(mapping[perm], np.arange(5))
    assert np.mean(mapping[y_pred] == y_ref) >= 0.95
    np.testing.assert_array_equal(hungarian_match(torch.tensor(y_ref), torch.tensor(y_pred), 5), mapping)


def test_hungarian_match_unused_clusters_is_permutation():
    y_ref = np.array([0, 0, 1, 1])
    y_pred = np.array([2, 2, 0, 0])
    mapping = hungarian_match(y_ref, y_pred, 4)
    assert sorted(mapping.tolist()) == [0, 1, 2, 3]
    assert mapping[2] == 0 and mapping[0] == 1


def test_hungarian_match_out_of_range():
    with pytest.raises(ValueError, match="must lie in"):
        hungarian_match(np.array([0, 5]), np.array([0, 1]), 3)


# --------------------------------------------------------------------------- #
# collapse_stats
# --------------------------------------------------------------------------- #
def test_collapse_stats_balanced_and_collapsed():
    s = collapse_stats(np.array([0, 1, 2, 3] * 5), 4)
    assert s == {"nonempty_clusters": 4, "largest_cluster_share": 0.25, "assignment_entropy": pytest.approx(1.0)}
    s = collapse_stats(np.array([2, 2, 2]), 4)
    assert s["nonempty_clusters"] == 1
    assert s["largest_cluster_share"] == 1.0
    assert s["assignment_entropy"] == 0.0


def test_collapse_stats_hand_case_with_empty_clusters():
    # sizes [2, 0, 2, 0]: entropy log 2 / log 4 = 0.5
    s = collapse_stats(np.array([0, 0, 2, 2]), 4)
    assert s["nonempty_clusters"] == 2
    assert s["largest_cluster_share"] == 0.5
    assert s["assignment_entropy"] == pytest.approx(0.5)
    assert collapse_stats(np.array([0, 0]), 1)["assignment_entropy"] == 0.0


def test_collapse_stats_torch_matches_numpy():
    y = np.array([0, 0, 0, 1, 3, 3])
    s_np = collapse_stats(y, 5)
    s_t = collapse_stats(torch.tensor(y), 5)
    assert s_t["nonempty_clusters"] == s_np["nonempty_clusters"] == 3
    assert s_t["largest_cluster_share"] == pytest.approx(s_np["largest_cluster_share"])
    assert s_t["assignment_entropy"] == pytest.approx(s_np["assignment_entropy"], abs=1e-12)
    p = np.array([3, 1, 2]) / 6
    assert s_np["assignment_entropy"] == pytest.approx(-(p * np.log(p)).sum() / math.log(5))
    for v, t in zip(s_t.values(), (int, float, float)):
        assert type(v) is t
    json.dumps(s_t)


def test_collapse_stats_out_of_range():
    with pytest.raises(ValueError, match="must lie in"):
        collapse_stats(np.array([0, 4]), 4)
    with pytest.raises(ValueError, match="must lie in"):
        collapse_stats(torch.tensor([-1, 0]), 4)


# --------------------------------------------------------------------------- #
# Scale
# --------------------------------------------------------------------------- #
def test_million_samples_fast():
    rng = np.random.default_rng(0)
    n = 1_000_000
    y_true = rng.integers(0, 100, n)
    noise = rng.random(n) < 0.3
    y_pred = np.where(noise, rng.integers(0, 100, n), (y_true * 7) % 100)
    t0 = time.perf_counter()
    r = evaluate_clustering(y_true, y_pred)
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0
    assert r["n_samples"] == n and r["n_classes"] == 100 and r["n_clusters"] == 100
    assert 0.7 < r["acc"] < 0.71
