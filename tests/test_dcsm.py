"""DCSM as a method (model=dcsm): the per-batch k-means targets, the 1x1-conv discriminator's
pairwise scores, one training step, the DCSM-oc override, and 2-epoch runs on scikit-learn's
digits through clusterbench.train.run."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from conftest import RUNNER, compose_config
from omegaconf import OmegaConf

from clusterbench.engine.loop import build, build_method
from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo
from clusterbench.methods.dcsm import DCSM, TERMS, DCSMObjective, PairDiscriminator, batch_kmeans
from clusterbench.train import run

TINY = ["model=dcsm", "dataset=digits", "backbone.widths=[8,16]", "backbone.out_dim=32", "model.discriminator_hidden_dim=16"]
LOGGED = (*TERMS, "mi")


def _config(*extra: str):
    return compose_config([*TINY, *RUNNER, *extra])


def _method(*extra: str) -> DCSM:
    cfg = _config(*extra)
    info = DataInfo(dims=(64,), n_clusters=10, n_samples=100, image_shape=(1, 8, 8))
    return build_method(cfg, info)


class _Ctx:
    epoch, step, device = 0, 0, torch.device("cpu")

    def optimize(self, group, loss):  # pragma: no cover - DCSM takes no extra steps
        raise AssertionError


def test_kmeans_targets_put_same_cluster_pairs_at_one():
    torch.manual_seed(0)
    centers = torch.eye(3) * 10
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2, 0, 1])
    x = centers[labels] + 0.1 * torch.randn(9, 3)
    assign = batch_kmeans(x, 3, iters=5)
    # the k-means partition is the true one (up to the names of the clusters)
    same_true = labels[:, None] == labels[None, :]
    same_km = assign[:, None] == assign[None, :]
    assert torch.equal(same_true, same_km)
    from clusterbench.losses.dcsm import similarity_targets

    r = similarity_targets(assign)
    assert torch.equal(r.bool(), same_true) and bool((r.diagonal() == 1).all())
    # more clusters than samples: one cluster per sample at most
    assert batch_kmeans(x[:2], 10).unique().numel() == 2


def test_discriminator_pairwise_scores_shape_and_diagonal():
    torch.manual_seed(0)
    disc = PairDiscriminator(5, 7, hidden_dim=6)
    z, fmap, fmap2 = torch.randn(4, 5), torch.randn(4, 7, 3, 2), torch.randn(4, 5, 3, 2)
    scores = disc.pairwise(z, fmap)
    assert scores.shape == (4, 4, 3, 2)
    # the pairwise scores are the 1x1 conv on the concatenation [z_i ; C_j(a, b)]
    for j in range(4):
        assert torch.allclose(scores[:, j], disc(z, fmap[j : j + 1].expand(4, -1, -1, -1)), atol=1e-5)
    local = disc.pairwise(fmap2, fmap)  # local-local at matching locations
    assert local.shape == (4, 4, 3, 2)
    assert torch.allclose(local.diagonal(dim1=0, dim2=1).permute(2, 0, 1), disc(fmap2, fmap), atol=1e-5)


def test_training_step_terms_are_finite_and_reach_every_block():
    torch.manual_seed(0)
    method = _method()
    x = torch.rand(16, 1, 8, 8)
    # encode's global feature is the backbone's own output
    method.eval()
    assert torch.allclose(method.encode(x)[1], method.backbone(x), atol=1e-6)
    method.train()
    out = method.training_step([x, x.flip(-1)], torch.arange(16), _Ctx())
    assert set(LOGGED) <= set(out) and torch.isfinite(out["loss"])
    assert all(torch.isfinite(out[k]) for k in LOGGED)
    assert out["lmi"] > 0 and out["lmic"] > 0
    out["loss"].backward()
    for block in (method.c_block, method.ir_block, method.global_disc, method.local_disc, method.backbone):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    method.eval()
    with torch.no_grad():
        l = method.predict([x], torch.arange(16))
        z = method.embed([x], torch.arange(16))
    assert l.shape == (16, 10) and z.shape == (16, 30)
    assert torch.allclose(l.norm(dim=1), torch.ones(16), atol=1e-5) and bool((l >= 0).all() and (l <= 1).all())


def test_dcsm_oc_override_drops_the_mi_terms():
    torch.manual_seed(0)
    oc = ("loss.weights.lmi=0", "loss.weights.lmit=0", "loss.weights.lmic=0")
    method = _method(*oc)
    x = torch.rand(16, 1, 8, 8)
    out = method.training_step([x, x], torch.arange(16), _Ctx())
    assert all(out[k].item() == 0 for k in ("lmi", "lmit", "lmic", "mi"))
    assert math.isclose(out["loss"].item(), (out["dt"] + out["ft"] + out["e"]).item(), rel_tol=1e-6)
    out["loss"].backward()
    assert all(p.grad is None for p in method.global_disc.parameters())


def test_objective_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"loss.weights.mii"):
        DCSMObjective(weights={"mii": 1.0})
    with pytest.raises(ConfigError, match=r"loss.targets='dac'"):
        DCSMObjective(targets="dac")
    with pytest.raises(ConfigError, match=r"loss.ft_threshold=1.5"):
        DCSMObjective(ft_threshold=1.5)


@pytest.mark.parametrize("variant", ["dcsm", "dcsm_oc"])
def test_two_epoch_run_on_digits(variant, tmp_path):
    extra = ("loss.weights.lmi=0", "loss.weights.lmit=0", "loss.weights.lmic=0") if variant == "dcsm_oc" else ()
    results = run(_config(*extra), tmp_path)
    assert results["status"] == "finished" and results["epochs"] == 2
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        assert all(r.get(k, "") != "" and math.isfinite(float(r[k])) for k in ("loss", *LOGGED))
        if variant == "dcsm_oc":
            assert float(r["mi"]) == 0 and float(r["lmi"]) == 0
        else:
            assert float(r["lmi"]) > 0 and float(r["lmit"]) > 0 and float(r["lmic"]) > 0
    assert 0 < results["metrics"]["acc"] <= 1


# --------------------------------------------------------------------------- feature map, k-means scope
def test_map_after_pool_takes_the_intermediate_map_and_keeps_the_global_feature():
    torch.manual_seed(0)
    cfg = compose_config(["+experiment=dcsm_mnist", "backbone.width=4", "model.discriminator_hidden_dim=8"])
    info = DataInfo(dims=(784,), n_clusters=10, n_samples=8, image_shape=(1, 28, 28))
    method = build_method(cfg, info).eval()
    x = torch.rand(8, 1, 28, 28)
    fmap, h = method.encode(x)
    # VGG-11's third pool: 28 -> 14 -> 7 -> 4 (ceil), 4 x width 4 = 16 channels
    assert fmap.shape == (8, 16, 4, 4) and method.map_dim == 16
    assert torch.allclose(h, method.backbone(x), atol=1e-6)  # the global feature is unchanged
    with pytest.raises(ConfigError, match=r"model.map_after_pool=9: expected null or 1..5"):
        build_method(OmegaConf.merge(cfg, {"model": {"map_after_pool": 9}}), info)


class _PredictingCtx(_Ctx):
    """ctx.predict_all(fn): fn on every one of `images` at once (the engine goes batch by batch)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def predict_all(self, fn):
        with torch.no_grad():
            return fn([self.images], torch.arange(len(self.images)))


def test_dataset_kmeans_scope_clusters_all_samples_each_epoch_and_batches_read_them():
    torch.manual_seed(0)
    method = _method("loss.kmeans_scope=dataset")
    images = torch.rand(100, 1, 8, 8)
    method.on_epoch_start(1, _PredictingCtx(images))
    clusters = method.dataset_clusters.clone()
    with torch.no_grad():
        expected = batch_kmeans(method.predict([images], torch.arange(100)), 10, method.objective.kmeans_iters)
    assert torch.equal(clusters, expected) and clusters.unique().numel() > 1
    index = torch.tensor([5, 17, 42, 99])
    assert torch.equal(method.cluster_targets(torch.rand(4, 10), index), clusters[index])
    # saved with the model, so a resumed run reads the same targets
    assert torch.equal(method.state_dict()["dataset_clusters"], clusters)
    with pytest.raises(ConfigError, match=r"loss.kmeans_scope='epoch'"):
        DCSMObjective(kmeans_scope="epoch")


def test_backbone_kmeans_features_cluster_the_normalised_global_feature():
    torch.manual_seed(0)
    method = _method("loss.kmeans_scope=dataset", "loss.kmeans_features=backbone")
    images = torch.rand(100, 1, 8, 8)
    method.on_epoch_start(1, _PredictingCtx(images))
    with torch.no_grad():
        h = method.encode(images)[1]
        expected = batch_kmeans(torch.nn.functional.normalize(h, dim=1), 10, method.objective.kmeans_iters)
        from_labels = batch_kmeans(method.predict([images], torch.arange(100)), 10, method.objective.kmeans_iters)
    assert torch.equal(method.dataset_clusters, expected)
    assert not torch.equal(expected, from_labels)  # not the paper's label-feature clusters
    l, h = torch.rand(4, 10), torch.rand(4, 32) * 5
    assert torch.allclose(method.kmeans_input(l, h).norm(dim=1), torch.ones(4))
    assert method.kmeans_input(l, h).shape == (4, 32)
    assert torch.equal(_method().kmeans_input(l, h), l)  # the paper's default
    with pytest.raises(ConfigError, match=r"loss.kmeans_features='pixels'"):
        DCSMObjective(kmeans_features="pixels")


def test_coil20_preset_is_the_measured_command():
    # docs/dcsm.md: `model=dcsm dataset=coil20 trainer.max_epochs=60 loss.kmeans_features=backbone`
    cfg = compose_config(["+experiment=dcsm_coil20", "paths.data_dir=/nonexistent"])
    assert cfg.dataset.name == "coil20" and cfg.model._target_.endswith("dcsm.DCSM")
    assert cfg.loss.kmeans_features == "backbone" and cfg.loss.kmeans_scope == "batch"
    assert cfg.trainer.max_epochs == 60 and cfg.trainer.batch_size == 32


def test_dataset_kmeans_scope_trains_through_the_engine(tmp_path):
    results = run(_config("loss.kmeans_scope=dataset", "trainer.max_epochs=1"), tmp_path)
    assert results["status"] == "finished"


# --------------------------------------------------------------------------- presets
DCSM_PRESETS = {
    # preset: (dataset, backbone depth, width, repetitions, (alpha, beta, delta), input side)
    "dcsm_mnist": ("mnist", 11, 16, 4, (0.2, 1.0, 0.1), 28),
    "dcsm_cifar10": ("cifar10", 16, 64, 8, (0.1, 0.5, 0.2), 32),
    "dcsm_stl10": ("stl10", 16, 64, 8, (0.1, 1.0, 0.1), 96),
    "dcsm_imagenet10": ("imagenet10", 16, 64, 8, (0.3, 1.0, 0.3), 128),
}


@pytest.mark.parametrize("preset", sorted(DCSM_PRESETS))
def test_dcsm_presets_have_the_papers_settings_and_take_a_step(preset):
    from clusterbench.losses.dcsm import DCSM_TABLE2

    dataset, depth, width, repeats, coefficients, side = DCSM_PRESETS[preset]
    cfg = compose_config([f"+experiment={preset}"])
    assert cfg.dataset.name == dataset and cfg.model._target_.endswith("DCSM")
    assert cfg.backbone._target_.endswith("VGG") and cfg.backbone.depth == depth and cfg.backbone.batch_norm
    assert cfg.backbone.get("width", 64) == width
    assert cfg.trainer.batch_size == 32 and cfg.trainer.optimizer.lr == 1e-3 and cfg.trainer.repeats_per_batch == repeats
    assert (cfg.loss.alpha, cfg.loss.beta, cfg.loss.delta) == coefficients
    assert tuple(DCSM_TABLE2[dataset]) == coefficients
    if dataset == "imagenet10":
        assert cfg.dataset.image_size == side
    # one step at the preset's input side (the real data are not here), narrowed for speed
    channels = 1 if dataset == "mnist" else 3
    small = OmegaConf.merge(cfg, {"backbone": {"width": 4}, "model": {"discriminator_hidden_dim": 8}})
    info = DataInfo(dims=(channels * side * side,), n_clusters=10, n_samples=4, image_shape=(channels, side, side))
    method = build_method(small, info)
    augment = build(small.augment)
    views = augment(torch.randint(0, 256, (4, channels, side, side), dtype=torch.uint8), torch.Generator().manual_seed(0))
    out = method.training_step(views, torch.arange(4), _Ctx())
    assert torch.isfinite(out["loss"])
    assert method.encode(views[0])[0].shape[-1] == math.ceil(side / 8)  # the map after the third pool


def test_target_noise_script_counts_split_and_merged_pairs():
    from conftest import load_script

    pair_errors = load_script("dcsm_target_noise").pair_errors
    labels = torch.tensor([0, 0, 0, 1, 1])
    # class 0 split into {0, 1} and {2}; sample 2 also shares a cluster with class 1
    assign = torch.tensor([0, 0, 1, 1, 1])
    split, merged = pair_errors(assign, labels)
    # same-class ordered pairs (i != j): 6 in class 0 + 2 in class 1; split: (0,2), (2,0), (1,2), (2,1)
    assert split == pytest.approx(4 / 8)
    # different-class ordered pairs: 12; merged: (2,3), (3,2), (2,4), (4,2)
    assert merged == pytest.approx(4 / 12)
    assert pair_errors(labels, labels) == (0.0, 0.0)


def test_target_noise_script_on_a_finished_run(tmp_path, capsys):
    from conftest import load_script

    run(compose_config(["model=dcsm", "dataset=digits", *RUNNER]), tmp_path / "run")
    result = load_script("dcsm_target_noise").main([str(tmp_path / "run"), "--batches", "4"])
    assert set(result) == {"batch_split", "batch_merged", "dataset_split", "dataset_merged", "missing_classes"}
    assert all(0.0 <= result[key] <= 1.0 for key in result if key != "missing_classes")
    assert 0.0 <= result["missing_classes"] <= 10 and "per-batch k-means (200 samples, K=10)" in capsys.readouterr().out


def test_a_bad_backbone_key_is_one_line_through_the_method(tmp_path):
    """The method instantiates its backbone itself: the backbone's ConfigError still comes out
    unwrapped (not as Hydra's multi-line InstantiationException)."""
    with pytest.raises(ConfigError, match=r"^backbone\.width=0: expected a positive integer") as info:
        run(compose_config(["model=dcsm", "dataset=digits", "backbone=vgg_small", "backbone.width=0", *RUNNER]), tmp_path)
    assert "\n" not in str(info.value)


def test_confidence_mask_and_mi_warmup_through_the_step():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8)
    method = _method("loss.warmup_epochs=1", "loss.pair_mask=confidence")
    method.on_epoch_start(0, _Ctx())
    out = method.training_step([x, x.flip(-1)], torch.arange(16), _Ctx())
    # warm-up: the MI terms alone
    assert out["dt"] == 0 and out["ft"] == 0 and out["e"] == 0 and out["lmi"] > 0
    method.on_epoch_start(1, _Ctx())
    out = method.training_step([x, x.flip(-1)], torch.arange(16), _Ctx())
    assert out["dt"] > 0 and torch.isfinite(out["loss"])
    with pytest.raises(ConfigError, match="loss.pair_mask='dac'"):
        DCSMObjective(pair_mask="dac")
