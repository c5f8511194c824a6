"""SDCIB Table 2's baselines without a deep model (KM, AmKM, Ncuts, AmNcuts) through the one
runner: equal to plain scikit-learn on the same features and random_state, the per-view
candidates and the rule that keeps one (flagged when it reads the labels), transductive
prediction through `predict(views, index)`, one-line config errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from sklearn.cluster import KMeans as SKKMeans
from sklearn.cluster import SpectralClustering as SKSpectralClustering
from sklearn.metrics import silhouette_score

from clusterbench.engine.checkpoint import seed_everything
from clusterbench.engine.loop import choose_candidate
from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo
from clusterbench.methods.classic import sklearn_seed
from clusterbench.methods.ncuts import SpectralClustering, median_gamma
from clusterbench.metrics import evaluate_clustering
from clusterbench.train import run


@pytest.fixture
def toy(tmp_path):
    """150 samples, 3 clusters, 3 views: clear blobs, pure noise, overlapping blobs."""
    rng = np.random.RandomState(0)
    y = np.repeat(np.arange(3), 50)
    centers = np.array([[0.0, 0.0, 0.0, 0.0], [6.0, 0.0, 6.0, 0.0], [0.0, 6.0, 0.0, 6.0]])
    clear = centers[y] + rng.randn(150, 4)
    noise = rng.rand(150, 5)
    weak = centers[y][:, :3] / 4 + rng.randn(150, 3)
    order = rng.permutation(150)  # classes interleaved, so batches mix them
    path = tmp_path / "toy.npz"
    np.savez(path, n_views=3, labels=y[order], view_0=clear[order], view_1=noise[order], view_2=weak[order])
    return ["dataset=esp", f"dataset.path={path}", "dataset.name=toy"]


def _results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def _features(cfg):
    data = instantiate(cfg.dataset)
    return [v.double().numpy() for v in data.views], data.labels.numpy()


def _random_state(cfg) -> int:
    """The random_state the engine hands scikit-learn for this config's seed."""
    seed_everything(cfg.seed)
    return sklearn_seed()


def _y_pred(run_dir) -> np.ndarray:
    return np.load(run_dir / "predictions.npz")["y_pred"]


def test_amkm_equals_scikit_learn_kmeans_on_the_concatenated_views(tiny_config, tmp_path):
    cfg = tiny_config("model=amkm", "model.n_init=2", "seed=5")
    results = run(cfg, tmp_path)
    views, labels = _features(cfg)
    expected = SKKMeans(10, n_init=2, max_iter=300, random_state=_random_state(cfg)).fit(np.concatenate(views, axis=1)).labels_
    np.testing.assert_array_equal(_y_pred(tmp_path), expected)
    assert results["metrics"]["acc"] == evaluate_clustering(labels, expected)["acc"]
    assert "candidates" not in results
    assert results["selection"] == {"rule": "last", "epoch": 0, "uses_labels": False}


def test_km_candidates_equal_scikit_learn_per_view_and_best_acc_is_flagged(tiny_config, tmp_path):
    cfg = tiny_config("model=km", "model.n_init=2")
    results = run(cfg, tmp_path)
    views, labels = _features(cfg)
    state = _random_state(cfg)
    candidates = results["candidates"]
    assert list(candidates) == [f"view_{i}" for i in range(6)]
    for i, x in enumerate(views):
        expected = evaluate_clustering(labels, SKKMeans(10, n_init=2, random_state=state).fit(x).labels_)
        assert {k: candidates[f"view_{i}"][k] for k in ("acc", "nmi", "ari")} == {k: expected[k] for k in ("acc", "nmi", "ari")}
    best = max(candidates, key=lambda name: candidates[name]["acc"])
    assert results["selection"] == {
        "rule": "last",
        "epoch": 0,
        "uses_labels": True,
        "candidate": {"rule": "best_acc", "chosen": best, "uses_labels": True},
    }
    assert results["metrics"] == candidates[best]
    assert _results(tmp_path)["selection"]["uses_labels"] is True
    # the kept partition is the one written to predictions.npz
    assert evaluate_clustering(labels, _y_pred(tmp_path))["acc"] == candidates[best]["acc"]


def test_best_acc_picks_the_informative_view(tiny_config, tmp_path, toy):
    results = run(tiny_config("model=km", *toy), tmp_path)
    acc = {name: m["acc"] for name, m in results["candidates"].items()}
    assert results["selection"]["candidate"]["chosen"] == "view_0" == max(acc, key=acc.get)
    assert acc["view_0"] == 1.0 and acc["view_1"] < 0.7


def test_silhouette_rule_is_label_free(tiny_config, tmp_path, toy):
    cfg = tiny_config("model=km", "model.view_selection=silhouette", *toy)
    results = run(cfg, tmp_path)
    views, _ = _features(cfg)
    state = _random_state(cfg)
    candidates = results["candidates"]
    for i, x in enumerate(views):
        expected = silhouette_score(x, SKKMeans(3, n_init=10, random_state=state).fit(x).labels_)
        assert candidates[f"view_{i}"]["silhouette"] == pytest.approx(expected, rel=1e-12)
    chosen = max(candidates, key=lambda name: candidates[name]["silhouette"])
    assert results["selection"]["candidate"] == {"rule": "silhouette", "chosen": chosen, "uses_labels": False}
    assert results["selection"]["uses_labels"] is False
    assert "silhouette" not in results["metrics"]


def test_fixed_view_rule_is_label_free(tiny_config, tmp_path, toy):
    results = run(tiny_config("model=ncuts", "model.view_selection=2", *toy), tmp_path)
    assert results["selection"]["candidate"] == {"rule": 2, "chosen": "view_2", "uses_labels": False}
    assert results["selection"]["uses_labels"] is False
    assert results["metrics"] == results["candidates"]["view_2"]


def test_label_selected_candidate_under_best_acc_epochs_stays_flagged(tiny_config, tmp_path, toy):
    results = run(tiny_config("model=km", "trainer.selection=best_acc", "model.view_selection=1", *toy), tmp_path)
    assert results["selection"]["uses_labels"] is True  # the epoch rule reads the labels
    assert results["selection"]["candidate"]["uses_labels"] is False


@pytest.mark.parametrize("model", ["ncuts", "amncuts"])
def test_ncuts_equals_scikit_learn_spectral_clustering_in_small_batches(tiny_config, tmp_path, toy, model):
    """Transductive: every sample gets the label the fit gave it, in order, although the
    evaluation runs in batches of 7."""
    cfg = tiny_config(f"model={model}", "model.n_neighbors=8", "trainer.eval_batch_size=7", *toy)
    results = run(cfg, tmp_path)
    views, labels = _features(cfg)
    settings = dict(affinity="nearest_neighbors", n_neighbors=8, eigen_solver="arpack", assign_labels="kmeans", n_init=10)
    state = _random_state(cfg)
    sets = {f"view_{i}": x for i, x in enumerate(views)} if model == "ncuts" else {"concat": np.concatenate(views, axis=1)}
    expected = {name: SKSpectralClustering(3, random_state=state, **settings).fit_predict(x) for name, x in sets.items()}
    if model == "ncuts":
        for name, pred in expected.items():
            assert results["candidates"][name]["acc"] == evaluate_clustering(labels, pred)["acc"]
        kept = expected[results["selection"]["candidate"]["chosen"]]
    else:
        assert "candidates" not in results
        kept = expected["concat"]
    np.testing.assert_array_equal(_y_pred(tmp_path), kept)


def test_amncuts_rbf_with_median_gamma(tiny_config, tmp_path, toy):
    cfg = tiny_config("model=amncuts", "model.affinity=rbf", *toy)
    run(cfg, tmp_path)
    views, _ = _features(cfg)
    x = np.concatenate(views, axis=1)
    state = _random_state(cfg)
    gamma = median_gamma(x, state)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    assert gamma == pytest.approx(1 / np.median(d2[np.triu_indices(len(x), 1)]))  # 150 < 1000: every pair
    expected = SKSpectralClustering(3, affinity="rbf", gamma=gamma, random_state=state, n_init=10).fit_predict(x)
    np.testing.assert_array_equal(_y_pred(tmp_path), expected)


def test_predict_returns_the_fit_labels_of_the_given_indices():
    torch.manual_seed(0)
    views = [torch.randn(40, 3), torch.randn(40, 2)]
    method = SpectralClustering(DataInfo(dims=(3, 2), n_clusters=2, n_samples=40), per_view=True, n_neighbors=5)
    method.on_fit_start(views)
    assert method.assignments.shape == (40, 2)
    index = torch.tensor([39, 0, 17, 17])
    np.testing.assert_array_equal(method.predict([v[index] for v in views], index), method.assignments[index])
    parts = method.candidates(method.predict(views, torch.arange(40)).float())
    assert list(parts) == ["view_0", "view_1"] and torch.equal(parts["view_1"], method.assignments[:, 1])


def test_choose_candidate_rules():
    metrics = {"a": {"acc": 0.5}, "b": {"acc": 0.9}, "c": {"acc": 0.7}}
    assert choose_candidate("best_acc", metrics, {}) == ("b", True)
    assert choose_candidate(2, metrics, {}) == ("c", False)
    assert choose_candidate("silhouette", metrics, {"a": 0.3, "b": 0.1, "c": 0.2}) == ("a", False)
    with pytest.raises(ConfigError, match="no such label-free score"):
        choose_candidate("silhouette", metrics, {})


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model=km", "model.view_selection=best"], r"^model\.view_selection='best': expected one of 'best_acc', 'silhouette' or int$"),
        (["model=ncuts", "model.view_selection=6"], r"^model\.view_selection=6: the dataset has 6 views \(0\.\.5\)$"),
        (["model=km", "+model.view=2"], r"^model\.view=2 with model\.per_view=true: .*model\.view_selection=2$"),
        (["model=ncuts", "model.affinity=cosine"], r"^model\.affinity='cosine': expected one of 'nearest_neighbors', 'rbf'$"),
        (["model=amncuts", "model.n_neighbors=2000"], r"^model\.n_neighbors=2000: expected 1\.\.1999"),
    ],
)
def test_bad_baseline_settings_are_one_line_config_errors(tiny_config, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        run(tiny_config(*overrides), tmp_path)
    assert "\n" not in str(info.value)
