"""A collapsed final clustering is said: results.json's `collapse` and the console's last line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import clusterbench
from clusterbench.api import CollapseWarning
from clusterbench.engine.results import collapse_share, collapse_verdict
from clusterbench.metrics import collapse_stats
from clusterbench.train import summary_line


def _verdict(pred, k):
    return collapse_verdict(collapse_stats(np.asarray(pred), k), k)


def test_the_threshold_is_halfway_between_balanced_and_one_cluster():
    assert collapse_share(10) == pytest.approx(0.55) and collapse_share(2) == pytest.approx(0.75)
    balanced = np.repeat(np.arange(10), 10)
    assert _verdict(balanced, 10) is None
    # the digits run: one cluster held 84 % of the samples
    lopsided = np.r_[np.zeros(84, int), np.arange(1, 10).repeat(2)[:16]]
    verdict = _verdict(lopsided, 10)
    assert verdict["largest_cluster_share"] == pytest.approx(0.84) and "one cluster holds 84%" in verdict["message"]
    empty = _verdict(np.repeat([0, 1, 2], 30), 4)  # balanced over 3 of 4 clusters
    assert empty["nonempty_clusters"] == 3 and empty["message"] == "collapsed: 3 of 4 clusters used"
    assert _verdict(np.r_[np.zeros(70, int), np.ones(30, int)], 2) is None  # 70/30 of two is no collapse
    assert "holds 80%" in _verdict(np.r_[np.zeros(80, int), np.ones(20, int)], 2)["message"]


def test_summary_line_ends_with_the_flag():
    results = {
        "model": "sdcib",
        "dataset": {"name": "digits"},
        "seed": 0,
        "epochs": 6,
        "selection": {"rule": "last", "epoch": 6, "uses_labels": False},
        "metrics": {"acc": 0.19, "nmi": 0.1, "ari": 0.05},
        "collapse": _verdict(np.zeros(50, int), 10),
    }
    line = summary_line(results, {}, "outputs/runs/x")
    assert "[collapsed: 1 of 10 clusters used, one cluster holds 100% of the samples (above 55%)]" in line
    results["collapse"] = None
    assert "collapsed" not in summary_line(results, {}, "outputs/runs/x")


def test_a_forced_collapse_is_in_results_json_and_warned(tmp_path):
    """k-means asked for 3 clusters of data with 2 distinct points can use only 2."""
    x = np.repeat([[0.0, 0.0], [5.0, 5.0]], [60, 40], axis=0)
    with pytest.warns(CollapseWarning, match="2 of 3 clusters used"):
        result = clusterbench.cluster(
            x, method="kmeans", n_clusters=3, hardware="cpu", hardware__num_threads=1, paths__log_dir=str(tmp_path)
        )
    saved = json.loads((result.run_dir / "results.json").read_text())
    assert saved["collapse"]["nonempty_clusters"] == 2 and saved["collapse"]["n_clusters"] == 3
    fine = clusterbench.cluster(x, method="kmeans", n_clusters=2, hardware="cpu", hardware__num_threads=1, paths__log_dir=str(tmp_path))
    assert fine.results["collapse"] is None
