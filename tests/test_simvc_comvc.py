"""SiMVC and CoMVC (Trosten et al., CVPR 2021): DDC's loss terms and the cross-view contrastive
loss against hand-computed values, the adaptive weight, bad input, and 2-epoch runs."""

from __future__ import annotations

import math

import pytest
import torch

from clusterbench.errors import ConfigError
from clusterbench.losses.contrastive import cross_view_contrastive_loss
from clusterbench.losses.ddc import cauchy_schwarz_divergence, ddc_terms, gaussian_kernel
from clusterbench.methods.base import DataInfo
from clusterbench.methods.comvc import CoMVC, CoMVCObjective
from clusterbench.methods.simvc import DDCObjective, SiMVC
from clusterbench.train import run

INFO = DataInfo(dims=(6, 4, 5), n_clusters=3, n_samples=30)


def test_gaussian_kernel_bandwidth_is_a_fraction_of_the_median_squared_distance():
    h = torch.tensor([[0.0], [1.0], [3.0]])
    # squared distances 0,0,0,1,1,4,4,9,9: median 1, sigma^2 = 0.15
    k = gaussian_kernel(h, rel_sigma=0.15)
    assert k[0, 1].item() == pytest.approx(math.exp(-1 / 0.3), rel=1e-6)
    assert k[0, 2].item() == pytest.approx(math.exp(-9 / 0.3), rel=1e-5)
    assert torch.allclose(torch.diagonal(k), torch.ones(3))


def test_cauchy_schwarz_divergence_by_hand():
    a = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    k = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    # columns a1 = (.5, 1), a2 = (.5, 0): a1'Ka2 = .5, a1'Ka1 = 1.75, a2'Ka2 = .25
    assert cauchy_schwarz_divergence(a, k).item() == pytest.approx(0.5 / math.sqrt(1.75 * 0.25), rel=1e-6)


def test_ddc_terms_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    h = torch.tensor([[0.0], [1.0], [3.0]])
    terms = ddc_terms(a, h, rel_sigma=0.15)
    # L_2: the only overlapping pair of samples is (0, 2): 1 / C(3, 2)
    assert terms["ddc_2"].item() == pytest.approx(1 / 3, rel=1e-6)
    kernel = gaussian_kernel(h, 0.15)
    assert terms["ddc_1"].item() == pytest.approx(cauchy_schwarz_divergence(a, kernel).item(), rel=1e-6)
    # one-hot rows: m = exp(-0) at the own corner, exp(-2) at the other
    m = torch.tensor([[1.0, math.exp(-2)], [math.exp(-2), 1.0], [1.0, math.exp(-2)]])
    assert terms["ddc_3"].item() == pytest.approx(cauchy_schwarz_divergence(m, kernel).item(), rel=1e-5)


def test_cross_view_contrastive_loss_by_hand():
    eye = torch.eye(2)
    z = torch.stack([eye, eye])  # two views, two samples, orthogonal
    # every anchor: positive similarity 1, two negatives of similarity 0 (tau = 1)
    expected = math.log(1 + 2 / math.e)
    assert cross_view_contrastive_loss(z, None, temperature=1.0, negatives_ratio=None).item() == pytest.approx(expected, rel=1e-6)
    # sampled among the other cluster: int(0.5 * 4) = 2 draws, each of similarity 0
    clusters = torch.tensor([0, 1])
    assert cross_view_contrastive_loss(z, clusters, temperature=1.0, negatives_ratio=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_negatives_come_only_from_other_clusters():
    # samples 0 and 1 share a cluster and are identical: were sample 1 a negative of sample 0
    # (similarity 1 / 0.1), the loss would be large; with cluster sampling it is exactly
    # -log(e^10 / (e^10 + r e^0)) for r draws of sample 2 (similarity 0)
    z0 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    z = torch.stack([z0, z0])
    clusters = torch.tensor([0, 0, 1])
    torch.manual_seed(0)
    loss = cross_view_contrastive_loss(z, clusters, temperature=0.1, negatives_ratio=0.5)
    # anchors of samples 0 and 1: 3 draws among the two copies of sample 2; anchors of sample 2:
    # 3 draws among the four copies of samples 0 and 1, all of similarity 0
    per_anchor = math.log(1 + 3 * math.exp(-10))
    assert loss.item() == pytest.approx(per_anchor, rel=1e-3)  # float32 log1p of a tiny value


def test_comvc_contrast_is_scaled_by_delta_and_the_smallest_fusion_weight():
    objective = CoMVCObjective(delta=2.0, temperature=1.0, negatives_ratio=None)
    eye = torch.eye(2)
    weights = torch.tensor([0.2, 0.8])
    value = objective.contrast([eye, eye], torch.eye(2), weights)
    assert value.item() == pytest.approx(2.0 * 0.2 * math.log(1 + 2 / math.e), rel=1e-6)
    fixed = CoMVCObjective(delta=2.0, temperature=1.0, negatives_ratio=None, adaptive_weight=False)
    assert fixed.contrast([eye, eye], torch.eye(2), weights).item() == pytest.approx(2.0 * math.log(1 + 2 / math.e), rel=1e-6)


def test_loss_is_the_weighted_sum_of_the_named_terms():
    torch.manual_seed(0)
    method = CoMVC(INFO, loss=CoMVCObjective(weights={"ddc_3": 0.0, "contrast": 0.5}), encoder_widths=[8, 4])
    views = [torch.randn(30, d) for d in INFO.dims]
    terms = method.training_step(views, torch.arange(30), ctx=None)
    assert terms["loss"].item() == pytest.approx((terms["ddc_1"] + terms["ddc_2"] + 0.5 * terms["contrast"]).item(), rel=1e-6)
    assert method.predict(views, torch.arange(30)).shape == (30, 3)
    assert method.embed(views, torch.arange(30)).shape == (30, 4)


def test_fusion_weights_start_uniform_and_are_learned():
    method = SiMVC(INFO, loss=DDCObjective(), encoder_widths=[8, 4])
    assert torch.allclose(method.fusion.weights(), torch.full((3,), 1 / 3))
    assert method.fusion.logits.requires_grad


@pytest.mark.parametrize("cls, objective", [(SiMVC, DDCObjective), (CoMVC, CoMVCObjective)])
def test_bad_input_is_one_config_error(cls, objective):
    with pytest.raises(ConfigError, match="needs at least 2 views; the dataset has 1"):
        cls(DataInfo(dims=(5,), n_clusters=2, n_samples=10), loss=objective())
    with pytest.raises(ConfigError, match="model.encoder_widths"):
        cls(INFO, loss=objective(), encoder_widths=[8, 0])
    with pytest.raises(ConfigError, match="model.fusion='sum'"):
        cls(INFO, loss=objective(), fusion="sum")
    with pytest.raises(ConfigError, match="loss.weights.ddc_4"):
        objective(weights={"ddc_4": 1.0})
    other = CoMVCObjective() if objective is DDCObjective else DDCObjective()
    with pytest.raises(ConfigError, match=f"needs loss={cls.name}"):
        cls(INFO, loss=other)


@pytest.mark.parametrize("model", ["simvc", "comvc"])
def test_two_epoch_run_through_the_engine(tiny_config, tmp_path, model):
    # batch 50: CoMVC draws 0.25 x views x batch negatives for each of views x (views - 1) x batch anchors
    overrides = [f"model={model}", "model.encoder_widths=[32,16]", "model.cluster_hidden_dim=16", "trainer.batch_size=50"]
    results = run(tiny_config(*overrides), tmp_path)
    assert results["status"] == "finished"
    assert 0.0 <= results["metrics"]["acc"] <= 1.0
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    expected = {"ddc_1", "ddc_2", "ddc_3"} | ({"contrast"} if model == "comvc" else set())
    assert expected <= set(header)
