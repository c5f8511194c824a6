"""MFLVC: each loss term against a hand computation (paper and released forms), the network's
layout, the stages and their check against trainer.max_epochs, the terms each stage trains, the
official switches one by one, bad inputs, and a run through all three stages on handwritten."""

from __future__ import annotations

import csv
import itertools
import math

import numpy as np
import pytest
import torch
from conftest import RUNNER, compose_config
from omegaconf import OmegaConf
from torch import nn

from clusterbench.errors import ConfigError
from clusterbench.losses.mflvc import feature_contrastive_loss, label_contrastive_loss, pseudo_label_loss, reconstruction_loss
from clusterbench.methods.base import DataInfo
from clusterbench.methods.mflvc import MFLVC, VARIANTS, MFLVCObjective
from clusterbench.train import run

INFO = DataInfo(dims=(6, 4, 5), n_clusters=3, n_samples=12)
SMALL = dict(encoder_widths=[8, 7], high_feature_dim=5)


def _mflvc(variant="paper", info=INFO, **kw) -> MFLVC:
    torch.manual_seed(0)
    kw = {**SMALL, "stage_epochs": [1, 1, 2], "max_epochs": 4, "kmeans_n_init": 2, **kw}
    return MFLVC(info, None, MFLVCObjective(weights=kw.pop("weights", {})), variant=variant, **kw)


def _views(info=INFO, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(info.n_samples, d, generator=g) for d in info.dims]


class _Ctx:
    """StepContext: predict_all over all samples in eval mode, optimize with plain SGD."""

    def __init__(self, model, views, lr=0.1):
        self.model, self.views = model, views
        self.opt = torch.optim.SGD(model.parameters(), lr=lr)
        self.steps = 0

    def predict_all(self, fn):
        self.model.eval()
        with torch.no_grad():
            out = fn(self.views, torch.arange(len(self.views[0])))
        self.model.train()
        return out

    def optimize(self, group, loss):
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps += 1


# --- losses by hand --------------------------------------------------------------------------


def _nt_xent_by_hand(a, b, tau):
    """Eq. 4 for both directions of one pair, averaged: loops over anchors."""
    a, b = nn.functional.normalize(a, dim=1), nn.functional.normalize(b, dim=1)
    rows = torch.cat([a, b])
    n, total = len(a), 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        sims = [float(rows[i] @ rows[k]) / tau for k in range(2 * n) if k != i]
        total += -(float(rows[i] @ rows[pos]) / tau - math.log(sum(math.exp(s) for s in sims)))
    return total / (2 * n)


def test_feature_contrastive_is_eq5_over_all_view_pairs():
    g = torch.Generator().manual_seed(0)
    hs = [torch.randn(4, 3, generator=g) for _ in range(3)]
    expected = sum(_nt_xent_by_hand(hs[m], hs[n], 0.5) for m, n in ((0, 1), (0, 2), (1, 2)))
    assert feature_contrastive_loss(hs, 0.5).item() == pytest.approx(expected, abs=1e-5)


def _released_label_pair(q_i, q_j, tau):
    """The released Loss.forward_label, written from its behaviour: CE over (positive, 2K - 2
    negative columns) + (log K + sum p log p) per view."""
    k = q_i.shape[1]
    value = _nt_xent_by_hand(q_i.t(), q_j.t(), tau)
    for q in (q_i, q_j):
        p = q.sum(0) / q.sum()
        value += math.log(k) + float((p * p.log()).sum())
    return value


def test_label_contrastive_paper_counts_each_views_entropy_once_released_once_per_pair():
    g = torch.Generator().manual_seed(0)
    qs = [torch.softmax(torch.randn(6, 3, generator=g), dim=1) for _ in range(3)]
    pairs = ((0, 1), (0, 2), (1, 2))
    contrast = sum(_nt_xent_by_hand(qs[m].t(), qs[n].t(), 1.0) for m, n in pairs)
    neg_entropy = sum(float((p * p.log()).sum()) for p in (q.sum(0) / q.sum() for q in qs))
    assert label_contrastive_loss(qs, 1.0).item() == pytest.approx(contrast + neg_entropy, abs=1e-5)
    released = sum(_released_label_pair(qs[m], qs[n], 1.0) for m, n in pairs)
    assert label_contrastive_loss(qs, 1.0, entropy_per_pair=True, log_k_offset=True).item() == pytest.approx(released, abs=1e-5)
    # two views: the same value up to the log K constants
    two = qs[:2]
    assert label_contrastive_loss(two, 1.0).item() == pytest.approx(
        label_contrastive_loss(two, 1.0, entropy_per_pair=True).item(), abs=1e-6
    )


def test_pseudo_label_loss_by_hand_paper_and_softmax_twice():
    q = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    t = torch.tensor([0, 2])
    paper = -(math.log(0.7) + math.log(0.8)) / 2
    assert pseudo_label_loss([q, q], [t, t]).item() == pytest.approx(2 * paper, abs=1e-6)

    def ce_of_probs(row, j):
        return -(row[j] - math.log(sum(math.exp(x) for x in row)))

    twice = (ce_of_probs([0.7, 0.2, 0.1], 0) + ce_of_probs([0.1, 0.1, 0.8], 2)) / 2
    assert pseudo_label_loss([q], [t], softmax_twice=True).item() == pytest.approx(twice, abs=1e-6)


def test_reconstruction_is_the_views_mean_squared_errors_summed():
    x = [torch.zeros(2, 3), torch.ones(2, 2)]
    r = [torch.ones(2, 3), torch.zeros(2, 2) + 0.5]
    assert reconstruction_loss(x, r).item() == pytest.approx(1.0 + 0.25)


# --- network and stages ------------------------------------------------------------------------


def test_network_is_the_released_autoencoder_with_shared_heads():
    info = DataInfo(dims=(30, 20), n_clusters=4, n_samples=10)
    model = MFLVC(info, None, MFLVCObjective(), stage_epochs=[1, 1, 1], max_epochs=3)
    enc = model.encoders.nets[0]
    assert [m.out_features for m in enc if isinstance(m, nn.Linear)] == [500, 500, 2000, 512]
    assert not isinstance(enc[-1], nn.ReLU)  # Z is the plain last Linear
    dec = model.decoders.nets[1]
    assert [m.out_features for m in dec if isinstance(m, nn.Linear)] == [2000, 500, 500, 20]
    assert [m.out_features for m in model.feature_head if isinstance(m, nn.Linear)] == [128]
    zs, hs, qs = model.forward_views([torch.rand(10, 30), torch.rand(10, 20)])
    assert hs[0].norm(dim=1).allclose(torch.ones(10)) and qs[1].sum(1).allclose(torch.ones(10))
    pred = model.predict([torch.rand(10, 30), torch.rand(10, 20)], torch.arange(10))
    assert pred.shape == (10, 4) and pred.sum(1).allclose(torch.ones(10))


def test_stages_follow_the_epochs_and_must_sum_to_max_epochs():
    model = _mflvc(stage_epochs=[2, 3, 1], max_epochs=6)
    assert [model.stage_of(e) for e in range(1, 7)] == ["pretrain"] * 2 + ["contrastive"] * 3 + ["tune"]
    with pytest.raises(ConfigError, match=r"model.stage_epochs=\[1, 1, 1\] sums to 3 but trainer.max_epochs=5"):
        _mflvc(stage_epochs=[1, 1, 1], max_epochs=5)


def test_each_stage_trains_its_terms_and_predicts_the_mean_assignment():
    model = _mflvc()
    views = _views()
    ctx = _Ctx(model, views)
    index = torch.arange(INFO.n_samples)
    for epoch, stage, nonzero in (
        (1, "pretrain", {"reconstruction"}),
        (2, "contrastive", {"reconstruction", "feature", "label"}),
        (3, "tune", {"pseudo"}),
    ):
        model.on_epoch_start(epoch, ctx)
        assert model.stage == stage
        model.zero_grad(set_to_none=True)
        terms = model.training_step(views, index, ctx)
        assert {k for k in ("reconstruction", "feature", "label", "pseudo") if terms[k].item() != 0} == nonzero
        terms["loss"].backward()
        head_grad = model.label_head[0].weight.grad is not None
        decoder_grad = any(p.grad is not None for p in model.decoders.parameters())
        assert (head_grad, decoder_grad) == {"pretrain": (False, True), "contrastive": (True, True), "tune": (True, False)}[stage]
    # the tune targets: each view's k-means labels matched to that view's argmax (Eq. 12)
    assert bool(model.pseudo_ready) and model.targets.shape == (3, INFO.n_samples)
    model.eval()
    with torch.no_grad():
        _, _, qs = model.forward_views(views)
        assert torch.allclose(model.predict(views, index), (qs[0] + qs[1] + qs[2]) / 3)


def test_pseudo_labels_once_matching_every_tune_epoch():
    model = _mflvc()
    views = _views()
    ctx = _Ctx(model, views)
    model.on_epoch_start(3, ctx)
    pseudo = model.pseudo.clone()
    model.label_head[0].weight.data.normal_()  # another argmax: another matching, same pseudo-labels
    model.on_epoch_start(4, ctx)
    assert torch.equal(model.pseudo, pseudo)
    for v in range(3):
        agree = (model.targets[v] == model.forward_views(views)[2][v].argmax(1)).sum()
        # the matching maximises agreement: no permutation of the k-means labels agrees more
        best = max(
            int((torch.tensor(p)[pseudo[v]] == model.forward_views(views)[2][v].argmax(1)).sum()) for p in itertools.permutations(range(3))
        )
        assert int(agree) == best


# --- official switches ------------------------------------------------------------------------


def test_variant_table_lists_each_released_behaviour():
    assert VARIANTS["paper"] == VARIANTS["paper"].__class__("normalized", False, False, False, False)
    assert VARIANTS["official"] == VARIANTS["paper"].__class__("minmax", True, True, True, True)


def test_official_label_term_counts_entropy_per_pair_with_log_k():
    views = _views()
    paper, official = _mflvc(), _mflvc("official")
    for model in (paper, official):
        model.on_epoch_start(2, _Ctx(model, views))
    terms_p = paper.training_step(views, torch.arange(12), None)
    terms_o = official.training_step(views, torch.arange(12), None)
    assert terms_p["feature"].item() == pytest.approx(terms_o["feature"].item(), abs=1e-6)
    _, _, qs = paper.forward_views(views)
    assert terms_p["label"].item() == pytest.approx(label_contrastive_loss(qs, 1.0).item(), abs=1e-5)
    assert terms_o["label"].item() == pytest.approx(label_contrastive_loss(qs, 1.0, True, True).item(), abs=1e-5)


def test_official_kmeans_reads_min_max_scaled_features(monkeypatch):
    seen = {}

    class Recorder:
        def __init__(self, k, n_init, random_state):
            self.k = k

        def fit(self, h):
            seen.setdefault("h", []).append(h)
            self.labels_ = np.arange(len(h)) % self.k
            return self

    monkeypatch.setattr("clusterbench.methods.mflvc.KMeans", Recorder)
    views = _views()
    for variant in ("paper", "official"):
        seen.clear()
        model = _mflvc(variant)
        model.on_epoch_start(3, _Ctx(model, views))
        h = seen["h"][0]
        if variant == "paper":
            assert np.allclose(np.linalg.norm(h, axis=1), 1.0)
        else:
            assert np.allclose(h.min(axis=0), 0.0) and np.allclose(h.max(axis=0), 1.0)


def test_official_tune_takes_one_full_batch_step_per_epoch_with_probabilities_as_logits():
    views = _views()
    model = _mflvc("official")
    ctx = _Ctx(model, views)
    model.on_epoch_start(3, ctx)
    assert ctx.steps == 1  # the epoch's step, on all samples, at its start
    before = [p.clone() for p in model.parameters()]
    terms = model.training_step([v[:4] for v in views], torch.arange(4), ctx)
    ctx.optimize("main", terms["loss"])  # the engine's step: no parameter gets a gradient
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert terms["loss"].item() == pytest.approx(terms["pseudo"].item()) and terms["pseudo"].item() > 0
    # the logged value is the softmax-twice cross-entropy of the step (before it)
    paper = _mflvc("paper")
    paper_ctx = _Ctx(paper, views)
    paper.on_epoch_start(3, paper_ctx)
    assert paper_ctx.steps == 0


# --- bad input ----------------------------------------------------------------------------------


def test_bad_inputs_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="model=mflvc needs at least 2 views"):
        _mflvc(info=DataInfo(dims=(5,), n_clusters=2, n_samples=10))
    with pytest.raises(ConfigError, match="model.variant='released'"):
        _mflvc("released")
    with pytest.raises(ConfigError, match="loss.weights.recon"):
        MFLVCObjective(weights={"recon": 1.0})
    with pytest.raises(ConfigError, match="model.stage_epochs"):
        _mflvc(stage_epochs=[1, 1], max_epochs=2)
    with pytest.raises(ConfigError, match="model.encoder_widths"):
        _mflvc(encoder_widths=[8, 0])


# --- through the engine -------------------------------------------------------------------------

TINY = [
    "model=mflvc",
    "model.encoder_widths=[32,16]",
    "model.high_feature_dim=8",
    "model.kmeans_n_init=2",
    "trainer.max_epochs=3",
    "model.stage_epochs=[1,1,1]",
    "trainer.eval_every=1",
]


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_run_through_all_three_stages_on_handwritten(tmp_path, variant):
    results = run(compose_config([*RUNNER, *TINY, f"model.variant={variant}"]), tmp_path)
    assert results["status"] == "finished" and results["epochs"] == 3
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [float(r["reconstruction"]) > 0 for r in rows] == [True, True, False]
    assert [float(r["feature"]) > 0 for r in rows] == [False, True, False]
    assert [float(r["pseudo"]) > 0 for r in rows] == [False, False, True]
    assert 0.0 <= results["metrics"]["acc"] <= 1.0


def test_config_composes_with_the_released_schedule():
    cfg = compose_config(["model=mflvc"])
    OmegaConf.to_container(cfg, resolve=True)
    assert sum(cfg.model.stage_epochs) == cfg.trainer.max_epochs == 300
    assert (cfg.trainer.batch_size, cfg.trainer.optimizer.lr) == (256, 3e-4)
    assert (cfg.loss.feature_temperature, cfg.loss.label_temperature) == (0.5, 1.0)
