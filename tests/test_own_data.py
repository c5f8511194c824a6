"""Your own data without a config: dataset=features (npy, npz, csv, pt, mat) and dataset=image_folder
(class folders, flat folders, the decoded-image cache)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch
from conftest import CONFIG_DIR
from hydra.utils import instantiate
from omegaconf import OmegaConf

from clusterbench.data.images import load_image_folder
from clusterbench.data.own import as_uint8_images, load_features, load_image_array
from clusterbench.errors import ConfigError, DataError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 4)).astype(np.float32)
Y = np.repeat([3, 7, 9], 10)


def test_npy_one_view_without_labels_needs_n_clusters(tmp_path):
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(ConfigError, match="dataset.n_clusters"):
        load_features(path=str(tmp_path / "x.npy"))
    ds = load_features(path=str(tmp_path / "x.npy"), n_clusters=3)
    assert ds.labels is None and not ds.has_labels and ds.n_classes is None and ds.n_clusters == 3
    assert ds.dims == [4] and ds.n_samples == 30 and len(ds.checksum) == 64
    np.testing.assert_array_equal(ds.views[0].numpy(), X)
    assert int(ds[0][1]) == -1


def test_npy_labels_from_a_separate_file(tmp_path):
    np.save(tmp_path / "x.npy", X.reshape(30, 2, 2))  # more axes are flattened
    np.savetxt(tmp_path / "y.txt", Y, fmt="%d")
    ds = load_features(path=str(tmp_path / "x.npy"), labels=str(tmp_path / "y.txt"))
    assert ds.dims == [4] and ds.n_clusters == 3 and ds.class_names == ["3", "7", "9"]
    assert ds.labels.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    np.save(tmp_path / "short.npy", Y[:5])
    with pytest.raises(DataError, match="5 labels"):
        load_features(path=str(tmp_path / "x.npy"), labels=str(tmp_path / "short.npy"))


def test_npz_single_array_multi_view_and_named_keys(tmp_path):
    np.savez(tmp_path / "one.npz", X=X, y=Y)
    ds = load_features(path=str(tmp_path / "one.npz"))
    assert ds.n_views == 1 and ds.view_names == ["X"] and ds.n_classes == 3
    np.savez(tmp_path / "mv.npz", view_0=X, view_1=X[:, :2] * 2, labels=Y)
    ds = load_features(path=str(tmp_path / "mv.npz"), preprocess=["none", "minmax"])
    assert ds.dims == [4, 2] and float(ds.views[1].max()) == 1.0
    np.savez(tmp_path / "named.npz", rgb=X, depth=X[:, :1], truth=Y)
    ds = load_features(path=str(tmp_path / "named.npz"), view_keys=["depth"], label_key="truth")
    assert ds.dims == [1]
    with pytest.raises(DataError, match=r"label_key='nope' not found .*keys present: rgb, depth, truth"):
        load_features(path=str(tmp_path / "named.npz"), label_key="nope")


def test_csv_with_header_and_named_classes(tmp_path):
    rows = ["a,b,species"] + [f"{x[0]},{x[1]},{'cat' if i < 15 else 'dog'}" for i, x in enumerate(X)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    ds = load_features(path=str(tmp_path / "t.csv"), label_column="species")
    assert ds.dims == [2] and ds.class_names == ["cat", "dog"] and ds.labels.sum() == 15
    np.testing.assert_allclose(ds.views[0].numpy(), X[:, :2], rtol=1e-6)
    (tmp_path / "plain.csv").write_text("\n".join(",".join(str(v) for v in x) for x in X))
    assert load_features(path=str(tmp_path / "plain.csv"), n_clusters=2).dims == [4]
    (tmp_path / "label.csv").write_text("x,label\n1.0,a\n2.0,b\n3.0,a\n")
    assert load_features(path=str(tmp_path / "label.csv")).n_classes == 2  # a column named label
    (tmp_path / "bad.csv").write_text("x,y2\n1.0,2\n2.0,oops\n")
    with pytest.raises(DataError, match=r"row 3, column y2: 'oops' is not a number"):
        load_features(path=str(tmp_path / "bad.csv"), n_clusters=2)


def test_pt_tensor_list_and_dict(tmp_path):
    torch.save(torch.from_numpy(X), tmp_path / "t.pt")
    assert load_features(path=str(tmp_path / "t.pt"), n_clusters=2).dims == [4]
    torch.save([torch.from_numpy(X), torch.from_numpy(X[:, :3])], tmp_path / "l.pt")
    assert load_features(path=str(tmp_path / "l.pt"), n_clusters=2).dims == [4, 3]
    torch.save({"features": torch.from_numpy(X), "labels": torch.from_numpy(Y)}, tmp_path / "d.pt")
    ds = load_features(path=str(tmp_path / "d.pt"))
    assert ds.dims == [4] and ds.n_classes == 3


def test_mat_cell_and_named_arrays(tmp_path):
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = X.T, X[:, :2].T  # (d, n) as many MATLAB files store them
    scipy.io.savemat(tmp_path / "c.mat", {"X": cell, "Y": Y[:, None]})
    ds = load_features(path=str(tmp_path / "c.mat"), orientation="features_first")
    assert ds.dims == [4, 2] and ds.n_classes == 3
    assert load_features(path=str(tmp_path / "c.mat"), orientation="auto").dims == [4, 2]
    scipy.io.savemat(tmp_path / "n.mat", {"fea": X, "gnd": Y[:, None]})
    assert load_features(path=str(tmp_path / "n.mat")).dims == [4]


def test_bad_files_are_one_line(tmp_path):
    (tmp_path / "x.xlsx").write_bytes(b"zz")
    with pytest.raises(DataError, match="unknown file type '.xlsx'"):
        load_features(path=str(tmp_path / "x.xlsx"), n_clusters=2)
    with pytest.raises(DataError, match="file not found"):
        load_features(path=str(tmp_path / "none.npy"), n_clusters=2)
    with pytest.raises(DataError, match="no file given: set dataset.path"):
        load_features(n_clusters=2)
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(DataError, match="1 NaN/inf"):
        load_features(path=str(tmp_path / "nan.npy"), n_clusters=2)


def _folder(root, names, size=(6, 5)):
    from PIL import Image

    for i, rel in enumerate(names):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((*size, 3), 20 * i, dtype=np.uint8)).save(path)


def test_image_folder_flat_and_classes_with_cache(tmp_path, monkeypatch):
    from PIL import Image

    flat = tmp_path / "flat"
    _folder(flat, [f"{i}.png" for i in range(4)])
    with pytest.raises(ConfigError, match="n_clusters"):
        load_image_folder("mine", str(flat), image_size=4, cache=False)
    ds = load_image_folder("mine", str(flat), image_size=4, n_clusters=2, cache_dir=str(tmp_path / "cache"))
    assert ds.labels is None and ds.images.shape == (4, 3, 4, 4) and ds.n_clusters == 2
    cached = list((tmp_path / "cache" / "image_folders").glob("*.npy"))
    assert len(cached) == 1 and cached[0].name.startswith(ds.checksum[:32])

    # a second read decodes nothing: PIL is never asked to open an image
    def refuse(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(Image, "open", refuse)
    again = load_image_folder("mine", str(flat), image_size=4, n_clusters=2, cache_dir=str(tmp_path / "cache"))
    assert torch.equal(again.images, ds.images) and again.checksum == ds.checksum
    with pytest.raises(AssertionError, match="decoded"):  # other settings, another cache entry
        load_image_folder("mine", str(flat), image_size=3, n_clusters=2, cache_dir=str(tmp_path / "cache"))
    monkeypatch.undo()

    classes = tmp_path / "classes"
    _folder(classes, ["b/1.png", "a/1.png", "a/2.jpg"])
    ds = load_image_folder("mine", str(classes), image_size=4, cache_dir=str(tmp_path / "cache"))
    assert ds.class_names == ["a", "b"] and ds.labels.tolist() == [0, 0, 1]
    (classes / "a" / "2.jpg").write_bytes(b"changed")  # new bytes, new key: decoded (and fails)
    with pytest.raises(DataError, match="cannot read image"):
        load_image_folder("mine", str(classes), image_size=4, cache_dir=str(tmp_path / "cache"))


def test_image_arrays_in_every_layout(tmp_path):
    nhwc = RNG.integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)
    nchw = as_uint8_images(nhwc)
    assert nchw.shape == (5, 3, 6, 7) and np.array_equal(nchw[:, 0], nhwc[..., 0])
    assert np.array_equal(as_uint8_images(nchw), nchw)
    assert as_uint8_images(nhwc[..., 0]).shape == (5, 1, 6, 7)
    assert np.array_equal(as_uint8_images(nchw.astype(np.float32) / 255), nchw)
    # floats above 1: scaled by 255 / max (a float copy of 0..255 images whose max is 255 stays as it was)
    assert np.array_equal(as_uint8_images(nchw.astype(np.float32)), np.rint(nchw * (255.0 / nchw.max())).astype(np.uint8))
    digits = np.arange(17, dtype=np.float64).reshape(1, 1, 17)  # scikit-learn's load_digits().images: 0..16
    assert as_uint8_images(digits).reshape(-1).tolist() == [round(v * 255 / 16) for v in range(17)]
    with pytest.raises(DataError, match="non-negative"):
        as_uint8_images(nchw.astype(np.float32) - 1)
    np.savez(tmp_path / "im.npz", images=nhwc, labels=np.array([1, 1, 2, 2, 5]))
    ds = load_image_array(path=str(tmp_path / "im.npz"))
    assert ds.images.shape == (5, 3, 6, 7) and ds.n_clusters == 3 and ds.class_names == ["1", "2", "5"]


@pytest.mark.parametrize("option", ["features", "image_folder", "image_array"])
def test_dataset_configs_build_from_a_path(tmp_path, option):
    node = OmegaConf.load(f"{CONFIG_DIR}/dataset/{option}.yaml")
    if option == "features":
        np.savez(tmp_path / "d.npz", X=X, y=Y)
        node.path = str(tmp_path / "d.npz")
    elif option == "image_folder":
        _folder(tmp_path / "imgs", ["a/1.png", "b/1.png"])
        node.path, node.image_size, node.cache_dir = str(tmp_path / "imgs"), 4, str(tmp_path / "cache")
    else:
        np.save(tmp_path / "a.npy", RNG.integers(0, 256, size=(4, 3, 5, 5), dtype=np.uint8))
        node.path, node.n_clusters = str(tmp_path / "a.npy"), 2
    ds = instantiate(node)
    assert ds.n_samples > 0 and ds.n_clusters >= 2


def test_unlabelled_features_run_end_to_end_with_label_free_scores(tmp_path):
    """dataset=features on a file without labels: the run reports silhouette, Calinski-Harabasz
    and cluster sizes (metrics.csv and results.json), and names the data after the file."""
    import json

    from conftest import compose_config

    from clusterbench.engine.loop import fit

    rng = np.random.default_rng(3)
    np.save(tmp_path / "cells.npy", np.r_[rng.normal(0, 1, (40, 3)), rng.normal(6, 1, (40, 3))])
    cfg = compose_config(
        [
            "model=kmeans",
            "dataset=features",
            f"dataset.path={tmp_path / 'cells.npy'}",
            "dataset.n_clusters=2",
            "hardware=cpu",
            "trainer.progress=false",
        ]
    )
    results = fit(cfg, tmp_path / "run", {"model": "kmeans", "dataset": "features"})
    metrics = results["metrics"]
    assert "acc" not in metrics and metrics["silhouette"] > 0.6 and metrics["cluster_sizes"] == [40, 40]
    assert results["dataset"]["name"] == "cells" and results["dataset"]["has_labels"] is False
    assert "silhouette" in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]["calinski_harabasz"] > 10


def test_source_is_an_absolute_path(tmp_path, monkeypatch):
    """results.json's dataset.source names the file wherever report later runs."""
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", X)
    assert load_features(path="x.npy", n_clusters=3).source == str(tmp_path / "x.npy")
    np.save("im.npy", RNG.integers(0, 256, size=(4, 3, 5, 5), dtype=np.uint8))
    assert load_image_array(path="im.npy", n_clusters=2).source == str(tmp_path / "im.npy")
    _folder(tmp_path / "imgs", ["a/1.png", "b/1.png"])
    ds = load_image_folder("mine", "imgs", image_size=4, cache_dir=str(tmp_path / "cache"))
    assert ds.source == str(tmp_path / "imgs")


def test_a_run_on_your_own_file_is_named_after_it():
    from clusterbench.cli_errors import prepare_argv
    from clusterbench.data.own import run_folder_override

    pattern = "${paths.log_dir}/runs/${cb_now:%Y-%m-%d_%H-%M-%S}_${hydra:runtime.choices.model}_${hydra:runtime.choices.dataset}"
    named = "hydra.run.dir=${paths.log_dir}/runs/${cb_now:%Y-%m-%d_%H-%M-%S}_${hydra:runtime.choices.model}_"
    assert run_folder_override(["model=kmeans", "dataset=features", "dataset.path=data/my cells.csv"], pattern) == named + "my_cells"
    assert run_folder_override(["dataset=image_folder", "dataset.path=photos/", "dataset.name=lab"], pattern) == named + "lab"
    for argv in (
        ["dataset=bdgp"],
        ["-m", "dataset=features", "dataset.path=a.npy"],
        ["dataset=features", "dataset.path=a.npy", "hydra.run.dir=x"],
        ["dataset=features", "dataset.path=a.npy", "resume=outputs/runs/r"],
    ):
        assert run_folder_override(argv, pattern) is None, argv
    # the command line reads the pattern from train.yaml
    assert prepare_argv(["dataset=features", "dataset.path=x/cells.npy"])[-1].endswith("_cells")
