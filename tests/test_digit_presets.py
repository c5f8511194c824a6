"""The MNIST CPU presets (cc_mnist, htcn_mnist, vtcc_mnist, mfavbs_mnist, pici_mnist): views made for grey
digits (no mirror image, no colour ops), the settings docs/results.md measured, and a short
run of each on a small 28 px image array (the real MNIST is not needed)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose_config

from clusterbench.data.augment import ColorJitter, RandomAffine, RandomGrayscale, RandomHorizontalFlip, build_augment
from clusterbench.train import run

# preset: (method class, views, epochs, lr, batch)
PRESETS = {
    "cc_mnist": ("ContrastiveClustering", 2, 20, 1e-3, 256),
    "htcn_mnist": ("HTCN", 3, 18, 1e-3, 256),
    "vtcc_mnist": ("VTCC", 2, 6, 1e-3, 256),
    "mfavbs_mnist": ("MFAVBsCC", 4, 3, 1e-3, 256),
    "pici_mnist": ("PICI", 2, 6, 1e-3, 256),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_digit_presets_use_digit_views_and_the_measured_settings(preset):
    method, n_views, epochs, lr, batch = PRESETS[preset]
    cfg = compose_config([f"+experiment={preset}", "paths.data_dir=/nonexistent"])
    assert cfg.model._target_.endswith(method) and cfg.dataset.name == "mnist"
    assert (cfg.trainer.max_epochs, cfg.trainer.optimizer.lr, cfg.trainer.batch_size) == (epochs, lr, batch)
    augment = build_augment(cfg.augment)
    assert len(augment) == n_views
    for view in augment.views[1:] if preset == "pici_mnist" else augment.views:  # PICI's weak view: the image itself
        kinds = [type(op) for op in view.ops]
        assert RandomHorizontalFlip not in kinds and RandomGrayscale not in kinds  # a mirrored digit is another glyph
        assert RandomAffine in kinds
        jitter = next(op for op in view.ops if isinstance(op, ColorJitter))
        assert jitter.saturation == (1.0, 1.0) and jitter.hue == (0.0, 0.0)  # grey images: no colour to change
    if preset == "htcn_mnist":  # the printed pairs, and an EMA target that keeps up with a short schedule
        assert cfg.loss.pairs == "printed" and cfg.model.momentum == 0.5


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_digit_presets_train_on_a_small_image_array(preset, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(96, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", images=images, labels=rng.integers(0, 10, 96))
    # PICI: one epoch of each stage (pre-training, training, boosting)
    epochs = ["trainer.max_epochs=3", "model.stage_epochs=[1,1,1]"] if preset == "pici_mnist" else ["trainer.max_epochs=1"]
    cfg = compose_config(
        [
            *epochs,
            f"+experiment={preset}",
            "dataset=image_array",
            f"dataset.path={tmp_path / 'tiny.npz'}",
            "dataset.label_key=labels",
            "dataset.n_clusters=10",
            "trainer.batch_size=48",
            "trainer.eval_every=1",
            "trainer.progress=false",
            "hardware=cpu",
        ]
    )
    results = run(cfg, tmp_path / "run")
    assert results["status"] == "finished" and results["epochs"] == (3 if preset == "pici_mnist" else 1)
    assert results["metrics"]["n_samples"] == 96 and 0.0 < results["metrics"]["acc"] <= 1.0


def test_feature_kmeans_script_scores_head_embedding_and_backbone(tmp_path):
    """scripts/feature_kmeans.py on a finished run: the head's scores are results.json's, and
    k-means on the embedding and on the backbone are scored too (HTCN: its target network)."""
    from conftest import load_script

    cfg = compose_config(["model=htcn", "dataset=digits", "trainer.max_epochs=1", "trainer.progress=false", "hardware=cpu"])
    results = run(cfg, tmp_path / "run")
    scores = load_script("feature_kmeans").main([str(tmp_path / "run"), "--n-init", "1"])
    assert set(scores) == {"head", "embed", "backbone"}
    assert scores["head"]["acc"] == pytest.approx(results["metrics"]["acc"])
    for name in ("embed", "backbone"):
        assert 0.1 <= scores[name]["acc"] <= 1.0 and 0.0 <= scores[name]["nmi"] <= 1.0


def test_feature_kmeans_script_scores_every_modality_of_sdcib(tiny_config, tmp_path):
    """On a multi-modal run the script's `head` is the method's final partition (the vote that
    results.json reports), and each modality's head and part of the embedding is scored apart."""
    from conftest import load_script

    results = run(tiny_config("trainer.max_epochs=1", "trainer.save_embedding=false"), tmp_path / "run")
    scores = load_script("feature_kmeans").main([str(tmp_path / "run"), "--n-init", "1"])
    modalities = 2  # the tiny config's two views of the embedded handwritten digits
    expected = {"head", "embed"} | {f"{part}[{v}]" for part in ("head", "embed") for v in range(modalities)}
    assert set(scores) == expected
    assert scores["head"]["acc"] == pytest.approx(results["metrics"]["acc"])
    assert all(0.0 < s["acc"] <= 1.0 and 0.0 <= s["nmi"] <= 1.0 for s in scores.values())
