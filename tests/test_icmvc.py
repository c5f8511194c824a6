"""ICMVC: the high-confidence term and the graph against hand-computed values, the step's terms,
the official switches, a 2-epoch run through the engine, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import RUNNER, compose_config

from clusterbench.errors import ConfigError
from clusterbench.losses.contrastive import cluster_contrastive_loss
from clusterbench.losses.icmvc import high_confidence_loss, sharpened_target
from clusterbench.methods.base import DataInfo
from clusterbench.methods.icmvc import ICMVC, VARIANTS, ICMVCObjective, knn_edges, normalized_adjacency
from clusterbench.train import run

INFO = DataInfo(dims=(5, 7), n_clusters=3, n_samples=30)


class Ctx:
    epoch, step, device = 1, 0, torch.device("cpu")


def make(variant="paper", info=INFO, **kwargs) -> ICMVC:
    torch.manual_seed(0)
    objective = ICMVCObjective(instance_batch_size=kwargs.pop("instance_batch_size", 12), **kwargs)
    return ICMVC(info, None, objective, encoder_widths=[16, 16, 8], topk=3, variant=variant)


def batch(info=INFO, n=30):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, d, generator=g) for d in info.dims]


def test_high_confidence_loss_by_hand():
    y = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    y1 = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y2 = np.array([[0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    q = np.maximum(np.maximum(y, y1), y2)
    t = q**2 / (q**2).sum(1, keepdims=True)
    expected = (t * (np.log(t) - np.log(y))).sum() / 2
    got = high_confidence_loss(torch.tensor(y), [torch.tensor(y1), torch.tensor(y2)])
    assert math.isclose(got.item(), expected, rel_tol=1e-9)
    assert torch.allclose(sharpened_target(torch.tensor(q)), torch.tensor(t))


def test_knn_graph_and_its_two_normalisations():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    rows, cols = knn_edges(x, 1, "distance")
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0), (2, 1), (3, 2)]
    a = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=float)  # symmetric + I
    deg = a.sum(1)
    for how, expected in (("symmetric", a / np.sqrt(np.outer(deg, deg))), ("row_l2", a / np.sqrt(deg)[:, None])):
        r, c, v = normalized_adjacency(rows, cols, 4, how)
        dense = np.zeros((4, 4))
        dense[r.numpy(), c.numpy()] = v.numpy()
        assert np.allclose(dense, expected, atol=1e-6)
    # the released heat kernel in float32: exp(-d^2/2) of far points underflows to 0 and the
    # neighbours are then picked among ties; on close points it is the distance ranking
    r2, c2 = knn_edges(x / 10, 1, "heat_float32")
    assert sorted(zip(r2.tolist(), c2.tolist())) == [(0, 1), (1, 0), (2, 1), (3, 2)]


def test_step_is_the_sum_of_the_named_terms():
    method = make()
    views = batch()
    method.on_fit_start(views)
    terms = method.training_step(views, torch.arange(30), Ctx())
    total = terms["cluster"] + terms["instance"] + terms["high_confidence"]
    assert torch.allclose(terms["loss"], total)
    # two mini-batches of 12 rows (the last 6 dropped): each NT-Xent is at most log(2*12 - 1) + 2/T
    assert 0 < terms["instance"] < 2 * (math.log(23) + 2.0)
    assert terms["cluster"] < math.log(5) + 2.0 and terms["high_confidence"] >= 0


def test_weights_switch_terms_off():
    method = make(weights={"instance": 0.0, "high_confidence": 0.0})
    views = batch()
    method.on_fit_start(views)
    terms = method.training_step(views, torch.arange(30), Ctx())
    assert torch.allclose(terms["loss"], terms["cluster"])


def test_full_batch_is_permutation_equivariant():
    method = make().eval()
    views = batch()
    method.on_fit_start(views)
    perm = torch.randperm(30)
    out = method.predict(views, torch.arange(30))
    out_perm = method.predict([v[perm] for v in views], perm)
    assert torch.allclose(out[perm], out_perm, atol=1e-5)
    assert out.shape == (30, 3) and torch.allclose(out.sum(1), torch.ones(30))


def test_three_views():
    info = DataInfo(dims=(5, 7, 4), n_clusters=3, n_samples=30)
    method = make(info=info)
    views = batch(info)
    method.on_fit_start(views)
    assert torch.isfinite(method.training_step(views, torch.arange(30), Ctx())["loss"])


# --- variant=official, switch by switch --------------------------------------------------------


def test_official_switches():
    official, paper = VARIANTS["official"], VARIANTS["paper"]
    assert (official.neighbours, official.propagation) == ("heat_float32", "row_l2")
    assert (paper.neighbours, paper.propagation) == ("distance", "symmetric")
    views = batch()
    a, b = make(), make("official")
    a.on_fit_start(views)
    b.on_fit_start(views)
    # the cluster term differs by CC's released constant 2 log K, nothing else (same seed)
    torch.manual_seed(3)
    ta = a.training_step(views, torch.arange(30), Ctx())
    cluster = cluster_contrastive_loss(*b._forward(views, torch.arange(30))[2], 0.5, 1.0)
    torch.manual_seed(3)
    tb = b.training_step(views, torch.arange(30), Ctx())
    assert torch.allclose(tb["cluster"], cluster + 2 * math.log(3), atol=1e-5)
    assert ta["cluster"] < tb["cluster"]


def test_official_predicts_with_batch_statistics_and_keeps_the_running_ones():
    method = make("official").eval()
    views = batch()
    method.on_fit_start(views)
    before = {k: v.clone() for k, v in method.named_buffers()}
    out = method.predict(views, torch.arange(30))
    assert all(torch.equal(before[k], v) for k, v in method.named_buffers())
    assert not method.training
    eval_out = make().eval()
    eval_out.load_state_dict(method.state_dict())
    eval_out.on_fit_start(views)
    assert not torch.allclose(out, eval_out.predict(views, torch.arange(30)))


# --- through the engine, and bad inputs ---------------------------------------------------------


# bf16: the graph convolution's sparse product has no autocast rule; x W in bf16 against the
# float32 A_hat raised "expected scalar type Float but found BFloat16" under the FLOP counter
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_epochs_through_the_engine(tmp_path, precision):
    cfg = compose_config(
        [
            "model=icmvc",
            "dataset=handwritten",
            "model.encoder_widths=[32,32,16]",
            *RUNNER,
            "trainer.batch_size=1000000",
            "trainer.eval_every=1",
            f"hardware.precision={precision}",
        ]
    )
    assert cfg.trainer.max_epochs == 2 and cfg.loss.instance_batch_size == 256
    results = run(cfg, tmp_path)
    assert 0.1 <= results["metrics"]["acc"] <= 1.0  # 2 full-batch steps: only that it runs and is scored
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss,cluster,instance,high_confidence") and len(rows) == 3


def test_one_view_and_bad_options_are_refused():
    with pytest.raises(ConfigError, match="model=icmvc needs at least 2 views"):
        make(info=DataInfo(dims=(5,), n_clusters=3, n_samples=30))
    with pytest.raises(ConfigError, match="model.variant='typo'"):
        make("typo")
    with pytest.raises(ConfigError, match="loss.weights.typo: unknown ICMVC term"):
        ICMVCObjective(weights={"typo": 1.0})
    with pytest.raises(ConfigError, match="one width"):
        ICMVC(INFO, None, ICMVCObjective(), encoder_widths=[16, 8, 4])
