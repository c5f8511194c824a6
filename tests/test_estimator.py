"""clusterbench.Clusterer: a scikit-learn estimator over the CLI's configs and engine."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from clusterbench import Clusterer
from clusterbench.api import CollapseWarning
from clusterbench.errors import ConfigError

ONE_THREAD = {"hardware": "cpu", "hardware__num_threads": 1}


def _blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    x = rng.normal(size=(n, 6)) + 6.0 * np.eye(3, 6)[y]
    return x.astype(np.float32), y


def _two_views(x):
    return [x[:, :3], x[:, 3:]]


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_kmeans_in_memory_writes_and_prints_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    x, y = _blobs()
    model = Clusterer(n_clusters=3, random_state=0, **ONE_THREAD)
    assert model.method == "kmeans"  # the default
    labels = model.fit_predict(x)
    assert labels.shape == (240,) and labels.dtype == np.int64 and len(np.unique(labels)) == 3
    assert model.run_dir_ is None and model.results_["collapse"] is None and model.seed_ == 0
    assert _tree(tmp_path) == [] and capsys.readouterr().out == ""
    again = Clusterer(n_clusters=3, random_state=0, **ONE_THREAD).fit(x, y)  # y is only scored
    assert (again.labels_ == labels).all() and again.results_["metrics"]["acc"] > 0.95
    with pytest.raises(ConfigError, match="method='kmeans' has no network"):
        model.predict(x)
    with pytest.raises(ConfigError, match="n_clusters: required"):
        Clusterer().fit(x)
    with pytest.raises(ConfigError, match=r"^trainer.max_epoch=3: no key 'max_epoch' of trainer; did you mean trainer.max_epochs\?$"):
        Clusterer(n_clusters=3, trainer__max_epoch=3).fit(x)


def test_clone_set_params_and_a_pipeline_predict_new_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _blobs()
    model = Clusterer("simvc", 3, random_state=1, trainer__max_epochs=5, trainer__batch_size=60, **ONE_THREAD)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and copy.trainer__max_epochs == 5
    assert "trainer__max_epochs=5" in repr(copy)
    pipe = Pipeline([("scale", StandardScaler()), ("views", FunctionTransformer(_two_views)), ("cluster", copy)])
    pipe.set_params(cluster__trainer__max_epochs=3, cluster__model__encoder_widths=[16, 8])
    assert copy.get_params()["trainer__max_epochs"] == 3 and copy.model__encoder_widths == [16, 8]
    pipe.fit(x[:180])
    fitted = pipe[-1]
    assert fitted.results_["epochs"] == 3 and fitted.labels_.shape == (180,)
    assert fitted.probabilities_.shape == (180, 3)
    assert (pipe.predict(x[:180]) == fitted.labels_).all()  # the fitted network gives back labels_
    new = pipe.predict(x[180:])
    assert new.shape == (60,) and set(new) <= {0, 1, 2}
    assert pipe.transform(x[180:]).shape == (60, 8)
    with pytest.raises(ValueError, match=r"view_1 has shape \(2,\) per sample, the model was fitted on \(3,\)"):
        fitted.predict([x[:5, :3], x[:5, 3:5]])
    assert _tree(tmp_path) == []
    unfitted = Clusterer("simvc", 3)
    with pytest.raises(Exception, match="not fitted"):
        unfitted.predict(x)


def test_grey_float_images_and_an_output_folder(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()  # images: float (n, 8, 8), 0..16
    model = Clusterer(
        "cc",
        10,
        random_state=0,
        output_dir=tmp_path,
        trainer__max_epochs=1,
        trainer__batch_size=100,
        trainer__checkpoint="none",
        **ONE_THREAD,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)  # one epoch on 300 images may collapse
        model.fit(digits.images[:300], digits.target[:300])
    run = model.run_dir_
    assert run.parent == tmp_path / "runs" and run.name.endswith("_cc_" + model.results_["dataset"]["name"])
    for name in ("results.json", "input.npz", "train.log", ".hydra/config.yaml"):
        assert (run / name).exists(), name
    saved = json.loads((run / "results.json").read_text())
    assert saved["collapse"] == model.results_["collapse"] and saved["dataset"]["n_samples"] == 300
    with np.load(run / "input.npz") as z:  # the stated scaling: 0..16 -> 0..255
        assert z["images"].max() == 255 and z["images"].shape == (300, 1, 8, 8)
    assert model.predict(digits.images[300:350]).shape == (50,)
    assert model.transform(digits.images[300:350]).ndim == 2
    with pytest.raises(ValueError, match="images of shape"):
        model.predict(digits.data[:5])
    assert os.listdir(tmp_path) == ["runs"]
