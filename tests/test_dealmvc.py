"""DealMVC: the calibration losses against hand computations (and the released code's formulas),
the fusion (attention layout, weights), the official switches one by one, bad inputs, and a run
through all three stages on handwritten."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from conftest import RUNNER, compose_config
from omegaconf import OmegaConf

from clusterbench.errors import ConfigError
from clusterbench.losses.dealmvc import calibrated_contrastive_loss, graph_consistency_loss, pseudo_label_graph
from clusterbench.methods.base import DataInfo
from clusterbench.methods.dealmvc import VARIANTS, DealMVC, DealMVCObjective, ViewAttention
from clusterbench.train import run

B = 8  # batch = attention width
INFO = DataInfo(dims=(6, 4, 5), n_clusters=3, n_samples=B)
SMALL = dict(encoder_widths=[8, 7], high_feature_dim=7, batch_size=B, attention_heads=2, ffn_size=4)


def _deal(variant="paper", info=INFO, **kw) -> DealMVC:
    torch.manual_seed(0)
    kw = {**SMALL, "stage_epochs": [1, 1, 1], "max_epochs": 3, "kmeans_n_init": 2, **kw}
    return DealMVC(info, None, DealMVCObjective(weights=kw.pop("weights", {}), threshold=kw.pop("threshold", 0.8)), variant=variant, **kw)


def _views(n=B, info=INFO, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, d, generator=g) for d in info.dims]


class _Ctx:
    def __init__(self, model, views):
        self.model, self.views = model, views

    def predict_all(self, fn):
        with torch.no_grad():
            return fn(self.views, torch.arange(len(self.views[0])))

    def optimize(self, group, loss):
        loss.backward()


# --- losses by hand --------------------------------------------------------------------------


def test_pseudo_label_graph_keeps_confident_pairs_and_the_diagonal():
    p = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.5, 0.5]])
    g = pseudo_label_graph(p, p, threshold=0.8)
    # p0.p1 = 0.86 kept, p0.p2 = 0.5 dropped, diagonal 1; rows normalised
    assert torch.allclose(g[0], torch.tensor([1.0, 0.86, 0.0]) / 1.86, atol=1e-6)
    assert torch.allclose(g[2], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(g.sum(1), torch.ones(3))


def test_calibrated_contrastive_loss_by_hand():
    h_a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    h_b = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    graph = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    s = [[0.6, 1.0], [0.8, 0.0]]  # h_a h_b^T
    expected = 0.0
    for i in range(2):
        z = sum(math.exp(x) for x in s[i])
        expected += -sum(graph[i, j].item() * math.log(math.exp(s[i][j]) / z + 1e-7) for j in range(2))
    assert calibrated_contrastive_loss(h_a, h_b, graph).item() == pytest.approx(expected / 2, abs=1e-6)
    assert graph_consistency_loss(graph, torch.zeros(2, 2)).item() == pytest.approx((0.0625 + 0.5625 + 1) / 4)


def _released_local(h_v, h_w, q_v, q_w, threshold):
    """The released local calibration, written from its behaviour."""
    sim = torch.exp(h_v @ h_w.t())
    probs = sim / sim.sum(1, keepdim=True)
    q = q_v @ q_w.t()
    q.fill_diagonal_(1)
    q = q * (q >= threshold).float()
    q = q / q.sum(1, keepdim=True)
    return -(torch.log(probs + 1e-7) * q).sum(1).mean(), q


def test_local_term_is_the_released_formula_over_all_pairs():
    model = _deal()
    views = _views()
    with torch.no_grad():
        _, hs, qs = model.forward_views(views)
        terms = model.contrastive_terms(hs, qs, None)
    expected = sum(_released_local(hs[a], hs[b], qs[a], qs[b], 0.8)[0] for a, b in ((0, 1), (0, 2), (1, 2)))
    assert terms["local"].item() == pytest.approx(expected.item(), abs=1e-5)


# --- fusion ---------------------------------------------------------------------------------------


def test_attention_per_view_token_is_a_linear_map_cross_view_mixes_views():
    torch.manual_seed(0)
    own = ViewAttention(B, heads=2, dropout=0.0, cross_view=False).eval()
    tokens = torch.randn(3, B)
    assert torch.allclose(own(tokens), own.out(own.v(tokens)).squeeze(-1), atol=1e-6)
    cross = ViewAttention(B, heads=2, dropout=0.0, cross_view=True).eval()
    cross.load_state_dict(own.state_dict())
    moved = tokens.clone()
    moved[2] += 1.0
    # cross-view: changing view 2's token changes view 0's score; per view it does not
    assert not torch.isclose(cross(tokens)[0], cross(moved)[0])
    assert torch.isclose(own(tokens)[0], own(moved)[0])


def test_paper_fusion_weights_are_a_softmax_with_gradients_official_compounds_detached():
    views = _views()
    paper = _deal()
    _, hs, _ = paper.forward_views(views)
    w = paper.fusion_weights(hs)
    assert w.sum().item() == pytest.approx(1.0) and w.requires_grad
    official = _deal("official")
    official.on_epoch_start(2, _Ctx(official, views))
    _, hs, _ = official.forward_views(views)
    w1 = official.fusion_weights(hs)
    w2 = official.fusion_weights(hs)
    assert not w1.requires_grad and w1.sum().item() < 1.0 / 3 + 1e-6  # r * (1/V): the product shrinks
    assert (w2 <= w1).all()
    official.on_epoch_start(3, _Ctx(official, views))  # reset at each epoch's start
    assert torch.allclose(official.running_weights, torch.full((3,), 1 / 3))


def test_official_fusion_networks_are_not_trained():
    official, paper = _deal("official"), _deal()
    names = {n for n, p in official.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("attention.", "sampling.")) for n in names)
    assert any(n.startswith("attention.") for n, p in paper.named_parameters() if p.requires_grad)


def test_variant_table_one_switch_at_a_time():
    p, o = VARIANTS["paper"], VARIANTS["official"]
    assert (p.train_fusion, p.compound_weights, p.cross_view_attention, p.consistency_pairs) == (True, False, True, "all")
    assert (o.train_fusion, o.compound_weights, o.cross_view_attention, o.consistency_pairs) == (False, True, False, "first")
    assert (o.softmax_twice, o.full_batch_tune, o.kmeans_features) == (True, True, "minmax")


def test_consistency_reads_all_local_graphs_or_the_released_first_v():
    # four views, six local graphs: the paper compares all six, the released code the first four
    info4 = DataInfo(dims=(6, 4, 5, 3), n_clusters=3, n_samples=B)
    views4 = _views(info=info4)
    for variant, compared in (("paper", 6), ("official", 4)):
        model = _deal(variant, info=info4, threshold=0.3, attention_dropout=0.0)
        model.eval()  # no dropout: the weights below are the step's
        with torch.no_grad():
            _, hs, qs = model.forward_views(views4)
            weights = model.fusion_weights(hs)
            model.running_weights.fill_(0.25)
            terms = model.contrastive_terms(hs, qs, None)
            fused = torch.einsum("v,vnd->nd", weights, torch.stack(hs))
            g = pseudo_label_graph(*(2 * [model.label_head(fused)]), 0.3)
            pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
            local = [pseudo_label_graph(qs[a], qs[b], 0.3) for a, b in pairs]
        expected = sum(graph_consistency_loss(g, x) for x in local[:compared])
        assert expected.item() > 0
        assert terms["consistency"].item() == pytest.approx(expected.item(), abs=1e-6)
    # two views: the released code compares the global graph with the one local graph
    info2 = DataInfo(dims=(6, 4), n_clusters=3, n_samples=B)
    model = _deal("official", info=info2, threshold=0.3)
    with torch.no_grad():
        _, hs, qs = model.forward_views(_views(info=info2))
        terms = model.contrastive_terms(hs, qs, None)
        fused = torch.einsum("v,vnd->nd", model.running_weights, torch.stack(hs))  # weights after this step
        g = pseudo_label_graph(*(2 * [model.label_head(fused)]), 0.3)
        local = pseudo_label_graph(qs[0], qs[1], 0.3)
    assert terms["consistency"].item() == pytest.approx(graph_consistency_loss(g, local).item(), abs=1e-6)


def test_stage_terms_and_mean_assignment_prediction():
    model = _deal()
    views = _views()
    ctx = _Ctx(model, views)
    model.on_epoch_start(2, ctx)
    terms = model.training_step(views, torch.arange(B), ctx)
    assert {k for k in ("reconstruction", "local", "global", "pseudo") if terms[k].item() != 0} == {"reconstruction", "local", "global"}
    terms["loss"].backward()
    assert model.attention.q.weight.grad is not None  # the paper's fusion learns
    model.eval()
    with torch.no_grad():
        _, _, qs = model.forward_views(views)
        assert torch.allclose(model.predict(views, torch.arange(B)), sum(qs) / 3)


# --- bad input ----------------------------------------------------------------------------------


def test_bad_inputs_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="model=dealmvc needs at least 2 views"):
        _deal(info=DataInfo(dims=(5,), n_clusters=2, n_samples=10))
    with pytest.raises(ConfigError, match="model.high_feature_dim=5"):
        _deal(high_feature_dim=5)
    with pytest.raises(ConfigError, match="model.variant='x'"):
        _deal("x")
    with pytest.raises(ConfigError, match="loss.threshold=1.5"):
        DealMVCObjective(threshold=1.5)
    with pytest.raises(ConfigError, match="loss.weights.feature"):
        DealMVCObjective(weights={"feature": 1.0})
    with pytest.raises(ConfigError, match="model.attention_heads=3"):
        _deal(attention_heads=3)
    # a batch (attention width) larger than the data: refused when built, not after pre-training
    with pytest.raises(ConfigError, match="more than the 6 samples of the data; set trainer.batch_size to at most 6"):
        _deal(info=DataInfo(dims=(6, 4, 5), n_clusters=3, n_samples=6))
    model = _deal()
    model.on_epoch_start(2, _Ctx(model, _views()))
    with pytest.raises(ConfigError, match="batch of 8"):
        model.training_step(_views(n=5), torch.arange(5), None)
    with pytest.raises(ConfigError, match="needs loss=dealmvc"):
        DealMVC(INFO, None, None, **SMALL)


# --- through the engine -------------------------------------------------------------------------

TINY = [
    "model=dealmvc",
    "model.encoder_widths=[32,16]",
    "model.high_feature_dim=16",
    "model.kmeans_n_init=2",
    "model.attention_heads=4",
    "trainer.max_epochs=3",
    "model.stage_epochs=[1,1,1]",
    "trainer.eval_every=1",
]


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_run_through_all_three_stages_on_handwritten(tmp_path, variant):
    results = run(compose_config([*RUNNER, *TINY, f"model.variant={variant}"]), tmp_path)
    assert results["status"] == "finished" and results["epochs"] == 3
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [float(r["local"]) > 0 for r in rows] == [False, True, False]
    assert [float(r["pseudo"]) > 0 for r in rows] == [False, False, True]


def test_config_composes_with_the_released_schedule():
    cfg = compose_config(["model=dealmvc"])
    OmegaConf.to_container(cfg, resolve=True)
    assert sum(cfg.model.stage_epochs) == cfg.trainer.max_epochs == 450
    assert cfg.model.batch_size == cfg.trainer.batch_size == 256 and cfg.trainer.drop_last
    assert (cfg.loss.threshold, cfg.model.high_feature_dim) == (0.8, 512)
