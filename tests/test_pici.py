"""PICI: CLI matching exact on a constructed case, the CLI loss by hand (paper and released form),
stages from the epoch number and their check against trainer.max_epochs, the terms each stage
trains, unmasked test inference, a run through all three stages, presets compose."""

from __future__ import annotations

import csv
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import RUNNER, compose_config
from omegaconf import OmegaConf

from clusterbench.engine.checkpoint import load_checkpoint
from clusterbench.errors import ConfigError
from clusterbench.losses.pici import cli_loss, masked_patch_mse, match_pseudo_labels, normalize_patches
from clusterbench.methods.base import DataInfo
from clusterbench.methods.pici import PICI, PICIObjective
from clusterbench.train import run

INFO = DataInfo(dims=(256,), n_clusters=3, n_samples=8, image_shape=(1, 16, 16))
NET = dict(vit_size=None, embed_dim=32, num_heads=4, depth=1, patch_size=4, decoder_dim=16, decoder_depth=1, decoder_heads=2)
TINY = [
    "dataset=digits",
    "augment.size=16",
    "model.embed_dim=32",
    "model.num_heads=4",
    "model.depth=1",
    "model.patch_size=4",
    "model.decoder_dim=16",
    "model.decoder_depth=1",
    "model.decoder_heads=2",
    "trainer.batch_size=900",
]  # 1 step per epoch


def _pici(**kw) -> PICI:
    torch.manual_seed(0)
    return PICI(INFO, None, PICIObjective(weights={}), **{**NET, "stage_epochs": [1, 1, 1], "max_epochs": 3, **kw})


def test_cli_matching_is_exact_on_a_constructed_case():
    # k-means cluster s sits where the cluster head says (s + 1) % 3, except one disagreeing sample
    pseudo = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    assigned = torch.tensor([1, 1, 1, 2, 2, 2, 0, 0, 0, 1])
    matched = match_pseudo_labels(pseudo, assigned, 3)
    assert matched.tolist() == [1, 1, 1, 2, 2, 2, 0, 0, 0, 0]
    # the matching is a permutation (Eq. 15), not a per-cluster majority: two k-means clusters
    # whose majority is the same head cluster still get different labels
    pseudo = torch.tensor([0, 0, 1, 1, 2, 2])
    assigned = torch.tensor([0, 0, 0, 0, 2, 1])
    matched = match_pseudo_labels(pseudo, assigned, 3)
    assert sorted(set(matched.tolist())) == [0, 1, 2]
    assert (matched == assigned).sum().item() == 3  # the best total agreement: 2 + 1


def test_cli_loss_by_hand_paper_and_released_form():
    c_a = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64)
    c_b = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]], dtype=torch.float64)
    t = torch.tensor([0, 2])
    paper = -0.5 * ((math.log(0.7) + math.log(0.8)) / 2 + (math.log(0.5) + math.log(0.2)) / 2)  # Eq. 16
    assert cli_loss(c_a, c_b, t, t).item() == pytest.approx(paper, abs=1e-6)

    def ce_of_probs(c, i, k):  # CrossEntropy applied to probabilities: softmax taken again
        row = c[i].numpy()
        return -(row[k] - math.log(np.exp(row).sum()))

    official = 0.5 * ((ce_of_probs(c_a, 0, 0) + ce_of_probs(c_a, 1, 2)) / 2 + (ce_of_probs(c_b, 0, 0) + ce_of_probs(c_b, 1, 2)) / 2)
    assert cli_loss(c_a, c_b, t, t, softmax_twice=True).item() == pytest.approx(official, abs=1e-6)


def test_stages_follow_the_epochs_and_must_sum_to_max_epochs():
    model = _pici(stage_epochs=[2, 3, 1], max_epochs=6)
    assert [model.stage_of(e) for e in range(1, 7)] == ["pretrain"] * 2 + ["train"] * 3 + ["boost"]
    assert _pici(stage_epochs=[0, 2, 1], max_epochs=3).stage_of(1) == "train"
    with pytest.raises(ConfigError, match=r"model.stage_epochs=\[1, 1, 1\] sums to 3 but trainer.max_epochs=5"):
        _pici(max_epochs=5)
    with pytest.raises(ConfigError, match="model.variant='released'"):
        _pici(variant="released")
    with pytest.raises(ConfigError, match="loss.weights.recon"):
        PICIObjective(weights={"recon": 1.0})


class _Ctx:
    def __init__(self, model, x):
        self.model, self.x = model, x

    def predict_all(self, fn):
        self.model.eval()
        with torch.no_grad():
            out = fn([self.x], torch.arange(len(self.x)))
        self.model.train()
        return out


def test_each_stage_trains_its_terms_and_test_inference_is_unmasked():
    model = _pici()
    x = torch.randn(8, 1, 16, 16)
    views = [x, x + 0.1 * torch.randn_like(x)]
    ctx = _Ctx(model, x)
    grads = {}
    for epoch, stage in ((1, "pretrain"), (2, "train"), (3, "boost")):
        model.on_epoch_start(epoch, ctx)
        assert model.stage == stage
        model.zero_grad()
        terms = model.training_step(views, torch.arange(8), ctx)
        terms["loss"].backward()
        grads[stage] = {
            name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())
            for name, mod in (("decoder", model.decoder), ("cluster_head", model.cluster_head))
        }
        nonzero = {k for k in ("pisd", "instance", "cluster", "cli") if terms[k].item() != 0}
        assert nonzero == {"pretrain": {"pisd"}, "train": {"pisd", "instance", "cluster"}, "boost": {"instance", "cluster", "cli"}}[stage]
    assert grads["pretrain"] == {"decoder": True, "cluster_head": False}
    assert grads["boost"] == {"decoder": False, "cluster_head": True}
    # boosting targets: k-means pseudo-labels matched to the head's argmax over all samples
    assert bool(model.cli_ready) and model.cli_targets.max().item() < 3
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.predict([x], torch.arange(8)), model.predict([x], torch.arange(8)))  # no masking
    official = _pici(variant="official").eval()
    with torch.no_grad():
        assert not torch.equal(official.predict([x], torch.arange(8)), official.predict([x], torch.arange(8)))


def test_run_through_all_three_stages_and_resume_into_boosting(tmp_path):
    overrides = [*RUNNER, "model=pici", *TINY, "trainer.max_epochs=3", "model.stage_epochs=[1,1,1]", "trainer.keep_checkpoints=true"]
    results = run(compose_config(overrides), tmp_path / "full")
    assert results["status"] == "finished" and results["epochs"] == 3
    assert results["selection"]["uses_labels"] is False
    rows = list(csv.DictReader((tmp_path / "full" / "metrics.csv").open()))
    assert [float(r["pisd"]) > 0 for r in rows] == [True, True, False]
    assert [float(r["cli"]) > 0 for r in rows] == [False, False, True]
    # stopped after the training stage and resumed: the stage comes from the epoch, the
    # k-means seed from the restored RNG, so boosting ends with the same weights
    stopped = tmp_path / "stopped"
    shutil.copytree(tmp_path / "full", stopped)
    (stopped / "results.json").unlink()
    shutil.copy(stopped / "checkpoints" / "epoch_0002.pt", stopped / "checkpoints" / "last.pt")
    (stopped / ".hydra").mkdir()
    OmegaConf.save(compose_config(overrides), stopped / ".hydra" / "config.yaml")
    resumed = run(compose_config([*overrides, f"resume={stopped}"]), tmp_path / "ignored")
    assert resumed["metrics"] == results["metrics"]
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["method"]
    b = load_checkpoint(stopped / "checkpoints" / "last.pt")["method"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["pici_tiny", "pici_rsod", "pici_chaoyang", "[pici_rsod,pici_official]"])
def test_presets_compose(name):
    cfg = compose_config([f"+experiment={name}"])
    OmegaConf.to_container(cfg, resolve=True)
    assert sum(cfg.model.stage_epochs) == cfg.trainer.max_epochs
    if "official" in name:
        assert cfg.model.variant == "official" and len(cfg.augment.views) == 2
        # Transforms_BYOL: both strong; jitter (0.4, 0.4, 0.2, 0.1), blur p=1.0; view b + Solarize p=0.2
        a, b = ([op._target_.split(".")[-1] for op in v.ops] for v in cfg.augment.views)
        assert a == ["RandomResizedCrop", "ColorJitter", "RandomGrayscale", "GaussianBlur", "RandomHorizontalFlip", "Normalize"]
        assert b == a[:4] + ["RandomSolarize"] + a[4:]
        view = cfg.augment.views[0].ops
        assert (view[1].saturation, view[1].hue, view[3].p, cfg.augment.views[1].ops[4].p) == (0.2, 0.1, 1.0, 0.2)
        assert cfg.model.norm_pix_loss is True


def test_official_boosting_keeps_its_first_pseudo_labels_and_matches_per_batch():
    model = _pici(variant="official", stage_epochs=[0, 0, 2], max_epochs=2)
    x = torch.randn(8, 1, 16, 16)
    ctx = _Ctx(model, x)
    model.on_epoch_start(1, ctx)
    first = model.cli_targets.clone()
    terms = model.training_step([x, x], torch.arange(8), ctx)
    assert terms["cli"].item() > 0 and terms["pisd"].item() == 0
    # softmax applied twice: the term is bounded by log K (uniform logits in [0, 1])
    assert terms["cli"].item() <= math.log(3) + 1e-6
    model.cli_targets.fill_(0)
    model.cli_targets[:4] = 1
    kept = model.cli_targets.clone()
    model.on_epoch_start(2, ctx)  # computed once, at the start of boosting: not recomputed
    assert torch.equal(model.cli_targets, kept) and first.shape == kept.shape


@pytest.mark.slow
def test_tiny_preset_end_to_end(tmp_path):
    """pici_tiny as shipped (about a minute on 2 idle cores; docs/vit_methods.md)."""
    results = run(compose_config(["+experiment=pici_tiny", "hardware=cpu", "trainer.progress=false"]), tmp_path)
    assert results["status"] == "finished" and results["epochs"] == 8
    assert results["metrics"]["nonempty_clusters"] >= 2


def test_norm_pix_targets_by_hand():
    """MAE's norm_pix_loss: each patch minus its mean over its pixels, over sqrt(unbiased var + 1e-6)."""
    target = torch.tensor([[[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]]])  # one image, two patches of 4 pixels
    # patch 1: mean 3, unbiased variance (4 + 1 + 0 + 9) / 3 = 14 / 3
    expected = torch.tensor([[[-2.0, -1.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]]]) / torch.tensor([[[(14 / 3 + 1e-6) ** 0.5], [1e-3]]])
    torch.testing.assert_close(normalize_patches(target), expected)
    pred = torch.zeros_like(target)
    mask = torch.tensor([[1.0, 0.0]])  # only the first patch is masked
    # raw pixels: mean of (1 + 4 + 9 + 36) / 4 = 12.5; normalised: mean of z^2 = (4 + 1 + 0 + 9) / 4 / (14 / 3) = 0.75
    assert masked_patch_mse(pred, target, mask).item() == pytest.approx(12.5)
    assert masked_patch_mse(pred, target, mask, norm_pix=True).item() == pytest.approx(0.75, rel=1e-5)
