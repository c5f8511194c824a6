"""SDCIB Table 2's classic multi-view rows (co-regularised spectral clustering, RMKMC, SwMC,
ONMSC) through the one runner: each recovers well-separated clusters seen through two clear
views and one noise view, each method's core update equals a hand-computed value, one-view data
and bad hyperparameters are one-line config errors, and a run through the engine returns the
fit's labels in small evaluation batches (transductive)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from clusterbench.bench import load_suite
from clusterbench.engine.checkpoint import seed_everything
from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo
from clusterbench.methods.classic import sklearn_seed
from clusterbench.methods.coreg import CoRegularizedSpectral, coreg_objective
from clusterbench.methods.multiview_classic import gaussian_kernel, normalized_affinity
from clusterbench.methods.onmsc import OptimalNeighbourhoodSpectral, simplex_qp, update_eigenvalues
from clusterbench.methods.rmkmc import RobustMultiViewKMeans, reweighting, view_weights, weighted_centroids
from clusterbench.methods.swmc import SelfWeightedMultiviewClustering, adaptive_neighbour_graph, project_rows_to_simplex
from clusterbench.methods.swmc import view_weights as swmc_weights
from clusterbench.metrics import evaluate_clustering
from clusterbench.train import run

METHODS = {
    "coreg": (CoRegularizedSpectral, {}),
    "coreg_pairwise": (CoRegularizedSpectral, {"variant": "pairwise"}),
    "rmkmc": (RobustMultiViewKMeans, {}),
    "swmc": (SelfWeightedMultiviewClustering, {}),
    "onmsc": (OptimalNeighbourhoodSpectral, {}),
}


def blobs(n_per: int = 30, seed: int = 0):
    """3 well-separated Gaussian blobs seen through two clear views (2-d, 3-d) and one noise view."""
    rng = np.random.RandomState(seed)
    y = np.repeat(np.arange(3), n_per)
    clear = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])[y] + rng.randn(len(y), 2)
    other = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 5.0, 5.0]])[y] + rng.randn(len(y), 3)
    noise = rng.randn(len(y), 4)
    order = rng.permutation(len(y))
    return [clear[order], other[order], noise[order]], y[order]


def fitted(name: str, views, y, **extra):
    cls, kwargs = METHODS[name]
    method = cls(DataInfo(dims=tuple(v.shape[1] for v in views), n_clusters=int(y.max()) + 1, n_samples=len(y)), **{**kwargs, **extra})
    torch.manual_seed(0)
    method.on_fit_start([torch.as_tensor(v) for v in views])
    return method


@pytest.mark.parametrize("name", list(METHODS))
def test_recovers_separated_blobs_with_a_noise_view(name):
    views, y = blobs()
    method = fitted(name, views, y)
    pred = method.assignments.numpy()
    assert evaluate_clustering(y, pred)["acc"] == 1.0
    index = torch.tensor([5, 0, 89, 5])  # transductive: the fit's labels of those samples
    assert torch.equal(method.predict([torch.as_tensor(v)[index] for v in views], index), method.assignments[index])


# --- each method's core update against a hand-computed value -------------------------------------


def test_gaussian_kernel_median_heuristic_and_normalised_affinity():
    x = np.array([[0.0], [1.0], [3.0]])  # distances 1, 2, 3: median 2, sigma^2 = 4
    k = gaussian_kernel(x, seed=0)
    assert k[0, 1] == pytest.approx(np.exp(-1 / 8)) and k[0, 2] == pytest.approx(np.exp(-9 / 8)) and k[1, 1] == 1.0
    w = np.array([[0.0, 2.0], [2.0, 2.0]])  # degrees 2, 4
    np.testing.assert_allclose(normalized_affinity(w), [[0.0, 2 / np.sqrt(8)], [2 / np.sqrt(8), 0.5]])


def test_coreg_objective_by_hand_and_never_decreasing():
    a = np.diag([2.0, 1.0])
    u, w = np.array([[1.0], [0.0]]), np.array([[0.6], [0.8]])
    # tr(u^T a u) = 2, tr(w^T a w) = 0.72 + 0.64 = 1.36; ||u^T w||^2 = 0.36
    assert coreg_objective([a, a], [u, w], 0.5, None) == pytest.approx(2 + 1.36 + 0.5 * 0.36)
    # centroid: + lam sum_v tr(U_v U_v^T U* U*^T) with U* = u: 1 + 0.36
    assert coreg_objective([a, a], [u, w], 0.5, u) == pytest.approx(2 + 1.36 + 0.5 * 1.36)
    views, y = blobs()
    for variant in ("centroid", "pairwise"):
        objective = fitted("coreg", views, y, variant=variant, lam=0.5, n_iter=6).fit_info["objective"]
        assert len(objective) == 6 and np.all(np.diff(objective) >= -1e-9), (variant, objective)


def test_rmkmc_reweighting_view_weights_and_weighted_centroids_by_hand():
    np.testing.assert_allclose(reweighting(np.array([0.5, 2.0])), [1.0, 0.25])  # 1 / (2 ||e_i||)
    # alpha_v proportional to (gamma H_v)^(1/(1-gamma)): gamma 2, H = (1, 4): 1/2 and 1/8 -> 0.8, 0.2
    np.testing.assert_allclose(view_weights(np.array([1.0, 4.0]), 2.0), [0.8, 0.2])
    # F_v = X_v Dt G (G^T Dt G)^-1: the Dt-weighted mean of each cluster
    x = np.array([[0.0, 1.0], [2.0, 1.0], [10.0, 5.0]])
    centroids = weighted_centroids(x, np.array([0, 0, 1]), np.array([1.0, 3.0, 1.0]), 2, None)
    np.testing.assert_allclose(centroids, [[1.5, 1.0], [10.0, 5.0]])
    views, y = blobs()
    assert sum(fitted("rmkmc", views, y).fit_info["view_weights"]) == pytest.approx(1.0)


def test_swmc_graph_projection_and_self_weights_by_hand():
    # points 0, 1, 3, 6 on a line, 2 neighbours: row 0 gives (36-1)/(72-10), (36-9)/62 to points
    # 1 and 3; row 1 gives (25-1)/(50-5) to point 0; the graph is (A + A^T)/2
    a = adaptive_neighbour_graph(np.array([[0.0], [1.0], [3.0], [6.0]]), 2)
    assert a[0, 1] == pytest.approx((35 / 62 + 24 / 45) / 2) and a[0, 2] == pytest.approx(27 / 62 / 2)
    assert a[0, 3] == 0.0 and np.allclose(a, a.T)
    np.testing.assert_allclose(
        project_rows_to_simplex(np.array([[0.5, 0.5, 0.5], [2.0, 0.0, 0.0], [0.6, 0.2, -1.0]])),
        [[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0], [0.7, 0.3, 0.0]],
    )
    s = np.zeros((2, 2))
    graphs = [np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.0, 2.0], [2.0, 0.0]])]
    np.testing.assert_allclose(swmc_weights(s, graphs), [0.5 / np.sqrt(2), 0.5 / np.sqrt(8)])  # 1 / (2 ||S - A_v||_F)
    views, y = blobs()
    info = fitted("swmc", views, y).fit_info
    assert info["components"] == 3 and info["view_weights"][2] < min(info["view_weights"][:2])  # the noise view weighs least


def test_onmsc_blocks_by_hand_and_objective_never_increasing():
    v = h = np.array([[1.0], [0.0]])
    # l = clip((2 (2 - v^T Ls v) + ||H^T v||^2) / 4, 0, 1)
    assert update_eigenvalues(v, h, np.diag([1.5, 0.0]))[0] == pytest.approx(0.5)
    assert update_eigenvalues(v, h, np.diag([0.5, 0.0]))[0] == 1.0  # clipped
    # argmin g^T g - 2 b^T g on the simplex: b = (0.75, 0.25) -> (0.75, 0.25); b = (2, 0) -> (1, 0)
    np.testing.assert_allclose(simplex_qp(np.eye(2), np.array([0.75, 0.25]), np.full(2, 0.5)), [0.75, 0.25], atol=1e-6)
    np.testing.assert_allclose(simplex_qp(np.eye(2), np.array([2.0, 0.0]), np.full(2, 0.5)), [1.0, 0.0], atol=1e-6)
    views, y = blobs()
    info = fitted("onmsc", views, y, tol=0.0, max_iter=6).fit_info
    assert np.all(np.diff(info["objective"]) <= 1e-9) and sum(info["view_weights"]) == pytest.approx(1.0)


# --- refused settings and the engine ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["coreg", "rmkmc", "swmc", "onmsc"])
def test_one_view_is_refused(name):
    cls, _ = METHODS[name]
    with pytest.raises(ConfigError, match=rf"^model={name} clusters several views at once; the dataset has 1 view ") as info:
        cls(DataInfo(dims=(4,), n_clusters=3, n_samples=90))
    assert "\n" not in str(info.value)


@pytest.fixture
def toy(tmp_path):
    views, y = blobs()
    path = tmp_path / "blobs.npz"
    np.savez(path, n_views=3, labels=y, view_0=views[0], view_1=views[1], view_2=views[2])
    return ["dataset=esp", f"dataset.path={path}", "dataset.name=blobs", "dataset.preprocess=none"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model=coreg", "model.lam=-1"], r"^model\.lam=-1: expected a non-negative finite number$"),
        (["model=coreg", "model.variant=mean"], r"^model\.variant='mean': expected one of 'centroid', 'pairwise'$"),
        (["model=rmkmc", "model.gamma=1"], r"^model\.gamma=1: expected a number > 1"),
        (["model=rmkmc", "model.n_init=0"], r"^model\.n_init=0: expected an integer >= 1$"),
        (["model=swmc", "model.n_neighbors=0"], r"^model\.n_neighbors=0: expected 1\.\.88"),
        (["model=swmc", "model.lam=0"], r"^model\.lam=0: expected a positive finite number$"),
        (["model=onmsc", "model.lam=-0.5"], r"^model\.lam=-0\.5: expected a non-negative finite number$"),
        (["model=onmsc", "model.neighbor_rate=0"], r"^model\.neighbor_rate=0: expected a positive finite number$"),
    ],
)
def test_bad_hyperparameters_are_one_line_config_errors(tiny_config, tmp_path, toy, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        run(tiny_config(*overrides, *toy), tmp_path)
    assert "\n" not in str(info.value)


def test_one_view_dataset_is_refused_through_the_engine(tiny_config, tmp_path):
    views, y = blobs()
    np.save(tmp_path / "x.npy", views[0])
    cfg = tiny_config("model=swmc", "dataset=features", f"dataset.path={tmp_path / 'x.npy'}", "dataset.n_clusters=3")
    with pytest.raises(ConfigError, match=r"^model=swmc clusters several views at once; the dataset has 1 view "):
        run(cfg, tmp_path / "run")


@pytest.mark.parametrize("model", ["coreg", "rmkmc", "swmc", "onmsc"])
def test_engine_run_returns_the_fit_labels_in_small_batches(tiny_config, tmp_path, toy, model):
    cfg = tiny_config(f"model={model}", "trainer.eval_batch_size=7", *toy)
    results = run(cfg, tmp_path)
    data = instantiate(cfg.dataset)
    seed_everything(cfg.seed)
    state = sklearn_seed()  # the random_state the engine hands the method for this seed
    cls = type(fitted(model, [v.numpy() for v in data.views], data.labels.numpy()))
    method = cls(DataInfo.of(data), **{k: v for k, v in cfg.model.items() if k != "_target_"})
    expected = method.fit_predict_views([v.double().numpy() for v in data.views], state)
    np.testing.assert_array_equal(np.load(tmp_path / "predictions.npz")["y_pred"], expected)
    assert results["metrics"]["acc"] == 1.0 and results["epochs"] == 0
    assert results["selection"]["uses_labels"] is False


def test_engine_run_on_handwritten(tiny_config, tmp_path):
    """The default dataset (2000 samples, 6 views) through the engine: RMKMC, one start."""
    results = run(tiny_config("model=rmkmc", "model.n_init=1", "hardware.num_threads=1"), tmp_path)
    assert results["metrics"]["acc"] > 0.5 and results["method"] == "clusterbench.methods.rmkmc.RobustMultiViewKMeans"


def test_swmc_labels_do_not_depend_on_the_seed(tiny_config, tmp_path):
    """The `cpu` suite runs SwMC's cells with one seed (configs/bench/cpu.yaml): nothing in it is
    random, so two seeds through the engine give the same labels, numbering included, even
    where the clusters overlap and the answer is imperfect."""
    views, y = blobs(n_per=25, seed=3)
    views = [v + 2.5 * np.random.RandomState(9).randn(*v.shape) for v in views]  # overlapping blobs
    path = tmp_path / "overlap.npz"
    np.savez(path, n_views=3, labels=y, view_0=views[0], view_1=views[1], view_2=views[2])
    data = ["dataset=esp", f"dataset.path={path}", "dataset.name=overlap", "dataset.preprocess=none"]
    labels, accs = [], []
    for seed in (0, 5):
        results = run(tiny_config("model=swmc", f"seed={seed}", *data), tmp_path / f"seed{seed}")
        labels.append(np.load(tmp_path / f"seed{seed}" / "predictions.npz")["y_pred"])
        accs.append(results["metrics"]["acc"])
    np.testing.assert_array_equal(labels[0], labels[1])
    assert accs[0] == accs[1] < 1.0
    cells = [c for c in load_suite("cpu").cells if c.method == "swmc"]
    assert cells and all(c.seeds == [0] for c in cells)
