"""clusterbench.cluster: the Python API runs the CLI's configs, checks and engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import clusterbench
from clusterbench.api import hydra_overrides
from clusterbench.errors import ConfigError


def _blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    x = rng.normal(size=(n, 6)) + 6.0 * np.eye(3, 6)[y]
    return x.astype(np.float32), y


def test_kmeans_on_an_array_with_labels_writes_a_run_folder(tmp_path):
    x, y = _blobs()
    result = clusterbench.cluster(x, method="kmeans", labels=y, hardware="cpu", paths__log_dir=str(tmp_path))
    assert result.labels.shape == (240,) and result.metrics["acc"] > 0.95 and result.scores is None
    run = result.run_dir
    assert run.parent == tmp_path / "runs" and run.name.endswith(f"_kmeans_{result.results['dataset']['name']}")
    assert result.results["dataset"]["name"].startswith("array_")  # named after the data, not `features`
    for name in ("results.json", "metrics.csv", "predictions.npz", "input.npz", ".hydra/config.yaml", ".hydra/overrides.yaml", "train.log"):
        assert (run / name).exists(), name
    saved = json.loads((run / "results.json").read_text())
    assert saved["metrics"]["acc"] == result.metrics["acc"] and saved["dataset"]["config"] == "features"
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert "model=kmeans" in overrides and "hardware=cpu" in overrides
    assert "acc=" in repr(result)
    assert "run: kmeans on array_" in (run / "train.log").read_text()  # the console's lines, as the command line keeps them


def test_views_images_and_overrides_as_a_dict(tmp_path):
    x, y = _blobs()
    views = clusterbench.cluster(
        [x[:, :3], x[:, 3:]], method="kmeans", n_clusters=3, labels=y, overrides={"hardware": "cpu", "paths.log_dir": str(tmp_path)}
    )
    assert views.results["dataset"]["n_views"] == 2 and views.metrics["acc"] > 0.9
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)  # (n, H, W, C)
    images[:20] //= 4
    out = clusterbench.cluster(
        images, method="kmeans", n_clusters=2, labels=np.repeat([0, 1], 20), hardware="cpu", paths={"log_dir": str(tmp_path)}
    )
    assert out.results["dataset"]["dims"] == [3 * 8 * 8] and out.metrics["acc"] == 1.0


def test_default_method_is_kmeans_and_sdcib_trains_with_keyword_overrides(tmp_path):
    x, y = _blobs(120)
    assert clusterbench.cluster(x, n_clusters=3, hardware="cpu", paths__log_dir=str(tmp_path)).results["model"] == "kmeans"
    result = clusterbench.cluster(
        [x[:, :3], x[:, 3:]],
        method="sdcib",
        labels=y,
        hardware="cpu",
        paths__log_dir=str(tmp_path),
        trainer__max_epochs=1,
        trainer__progress=False,
        trainer__batch_size=60,
        backbone__hidden_dims=[16, 8],
        model__critic_hidden_dims=[8],
    )
    assert result.results["epochs"] == 1 and result.run_dir.name.endswith(f"_sdcib_{result.results['dataset']['name']}")
    assert result.labels.shape == (120,)


def test_a_path_is_read_in_place(tmp_path):
    x, y = _blobs()
    np.savez(tmp_path / "mine.npz", features=x, labels=y)
    result = clusterbench.cluster(tmp_path / "mine.npz", method="kmeans", hardware="cpu", paths__log_dir=str(tmp_path / "o"))
    assert result.metrics["acc"] > 0.95 and result.results["dataset"]["name"] == "mine"
    assert not (result.run_dir / "input.npz").exists() and result.run_dir.name.endswith("_kmeans_mine")
    assert result.results["dataset"]["source"] == str((tmp_path / "mine.npz").resolve())


def test_bad_input_is_one_line_before_any_folder(tmp_path):
    x, y = _blobs()
    cases = [
        (dict(method="nope", labels=y), r"method='nope': no such model \(choose from .*kmeans"),
        (dict(method="kmeans"), "n_clusters: required when no labels"),
        (dict(method="kmeans", labels=y, model__nope=1), "model.nope"),
        (dict(method="kmeans", labels=y, trainer__max_epochs="abc"), "trainer.max_epochs='abc'"),
        (dict(method="kmeans", labels=y, n_clusters=0), "n_clusters=0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            clusterbench.cluster(x, paths__log_dir=str(tmp_path), **kwargs)
    with pytest.raises(ConfigError, match="expected a numeric array"):
        clusterbench.cluster(np.array(["a", "b"]), method="kmeans", n_clusters=2)
    assert not (tmp_path / "runs").exists()


def test_override_syntax():
    assert hydra_overrides(
        ["seed=1"],
        trainer__max_epochs=5,
        hardware="cpu",
        model={"alpha": 0.5, "layers": [1, 2]},
        experiment="cc_mnist",
        paths__data_dir="/a b/c",
        logger__tags=None,
        trainer__progress=False,
    ) == [
        "seed=1",
        "trainer.max_epochs=5",
        "hardware=cpu",
        "model.alpha=0.5",
        "model.layers=[1,2]",
        "+experiment=cc_mnist",
        "paths.data_dir='/a b/c'",
        "logger.tags=null",
        "trainer.progress=false",
    ]


def test_without_labels_label_free_scores_and_probabilities(tmp_path):
    x, _ = _blobs()
    result = clusterbench.cluster(x, method="kmeans", n_clusters=3, hardware="cpu", paths__log_dir=str(tmp_path))
    assert result.metrics is None and result.scores["silhouette"] > 0.5 and sorted(result.scores["cluster_sizes"]) == [80, 80, 80]
    assert result.scores["calinski_harabasz"] > 100 and "silhouette=" in repr(result)
    saved = json.loads((result.run_dir / "results.json").read_text())
    assert saved["dataset"]["has_labels"] is False and saved["dataset"]["n_classes"] is None
    with np.load(result.run_dir / "predictions.npz") as z:
        assert "y_true" not in z.files
    deep = clusterbench.cluster(
        [x[:, :3], x[:, 3:]],
        method="sdcib",
        n_clusters=3,
        hardware="cpu",
        paths__log_dir=str(tmp_path),
        trainer__max_epochs=1,
        trainer__progress=False,
        trainer__batch_size=80,
        backbone__hidden_dims=[16, 8],
        model__critic_hidden_dims=[8],
    )
    assert deep.probabilities.shape == (240, 3)
    np.testing.assert_allclose(deep.probabilities.sum(axis=1), 1.0, rtol=1e-4)
    assert (deep.probabilities.argmax(axis=1) == deep.labels).all()
    folders = set((tmp_path / "runs").iterdir())
    with pytest.raises(ConfigError, match="trainer.selection=best_acc: reads the labels"):
        clusterbench.cluster(x, method="kmeans", n_clusters=3, trainer__selection="best_acc", paths__log_dir=str(tmp_path))
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ConfigError, match="set dataset.n_clusters"):  # found when the file is read
        clusterbench.cluster(tmp_path / "x.npy", method="kmeans", paths__log_dir=str(tmp_path))
    assert set((tmp_path / "runs").iterdir()) == folders  # no folder left behind


def test_readme_example_runs(tmp_path, monkeypatch):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```python\n")[1:]]
    assert len(blocks) == 2  # cluster(), then the estimator
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert len(list((tmp_path / "outputs" / "runs").iterdir())) == 2  # the estimator wrote nothing


def test_seeds_of_the_same_array_share_a_report_row(tmp_path):
    from clusterbench.report import find_runs, summarize

    x, y = _blobs()
    for seed in (0, 1):
        clusterbench.cluster(x, method="kmeans", labels=y, seed=seed, hardware="cpu", paths__log_dir=str(tmp_path))
    other = clusterbench.cluster(x[:120], method="kmeans", labels=y[:120], hardware="cpu", paths__log_dir=str(tmp_path))
    groups, _ = summarize(find_runs([tmp_path / "runs"]))
    sizes = sorted(len(group.runs) for group in groups.values())
    assert sizes == [1, 2], groups.keys()
    assert other.results["dataset"]["name"].startswith("array_")
    assert not any(o.startswith("dataset.path=") for o in other.results["overrides"])
