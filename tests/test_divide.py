"""DIVIDE: the random-walk targets and the soft-target contrast against hand-computed values,
the step's terms, the official switches, a 2-epoch run through the engine, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import RUNNER, compose_config

from clusterbench.errors import ConfigError
from clusterbench.losses.divide import random_walk_targets, soft_target_contrastive
from clusterbench.methods.base import DataInfo
from clusterbench.methods.divide import DIVIDE, DIVIDEObjective
from clusterbench.train import run

INFO = DataInfo(dims=(5, 7), n_clusters=3, n_samples=24)
SMALL = {"encoder_widths": [16, 16, 8], "dropout": 0.0}


class Ctx:
    def __init__(self, epoch=1, step=0):
        self.epoch, self.step, self.device = epoch, step, torch.device("cpu")


def make(variant="paper", info=INFO, **kwargs) -> DIVIDE:
    torch.manual_seed(0)
    return DIVIDE(info, None, DIVIDEObjective(**kwargs), variant=variant, **SMALL)


def batch(info=INFO, n=24):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, d, generator=g) for d in info.dims]


def test_random_walk_targets_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    zh = z.numpy() / np.linalg.norm(z.numpy(), axis=1, keepdims=True)
    d2 = np.array([[np.sum((a - b) ** 2) for b in zh] for a in zh])
    w = np.exp(-d2 / 0.1)
    p = w / w.sum(1, keepdims=True)
    expected = 0.5 * np.eye(3) + 0.5 * np.linalg.matrix_power(p, 5)
    got = random_walk_targets(z, temperature=0.1, steps=5, alpha=0.5)
    assert np.allclose(got.numpy(), expected, atol=1e-6)
    assert torch.allclose(got.sum(1), torch.ones(3, dtype=got.dtype))


def test_soft_target_contrastive_by_hand():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    t = rng.uniform(0.1, 1.0, size=(3, 3))
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=1, keepdims=True)
    s = qn @ kn.T / 0.5
    log_prob = s - np.log(np.exp(s).sum(1, keepdims=True))
    per_anchor = -(t / t.sum(1, keepdims=True) * log_prob).sum(1)
    args = [torch.tensor(x) for x in (q, k, t)]
    assert math.isclose(soft_target_contrastive(*args, 0.5).item(), per_anchor.mean(), rel_tol=1e-6)
    assert math.isclose(soft_target_contrastive(*args, 0.5, "pair_mean").item(), per_anchor.mean() / 3, rel_tol=1e-6)
    # identity targets: InfoNCE over the keys
    eye = torch.eye(3, dtype=torch.float64)
    ce = torch.nn.functional.cross_entropy(torch.tensor(s), torch.arange(3))
    assert math.isclose(soft_target_contrastive(args[0], args[1], eye, 0.5).item(), ce.item(), rel_tol=1e-6)


def test_step_terms_warm_up_then_random_walk():
    method = make()
    views = batch()
    warm = method.training_step(views, torch.arange(24), Ctx(epoch=1))
    assert torch.allclose(warm["loss"], warm["intra"] + warm["inter"])
    # warm-up: identity targets, each term at most log N away from zero and positive
    assert 0 < warm["intra"] < 2 * math.log(24) and 0 < warm["inter"] < 2 * math.log(24)
    method.start_rectify_epoch = 0
    walk = method.training_step(views, torch.arange(24), Ctx(epoch=1))
    assert not torch.allclose(walk["intra"], warm["intra"])


def test_inter_weight_zero_is_the_intra_only_ablation():
    method = make(weights={"inter": 0.0})
    terms = method.training_step(batch(), torch.arange(24), Ctx())
    assert torch.allclose(terms["loss"], terms["intra"])


def test_three_views_average_every_ordered_pair():
    info = DataInfo(dims=(5, 7, 3), n_clusters=3, n_samples=24)
    terms = make(info=info).training_step(batch(info), torch.arange(24), Ctx())
    assert torch.isfinite(terms["loss"])


def test_target_is_an_ema_of_the_online_encoder():
    method = make()
    with torch.no_grad():
        for p in method.online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.target.parameters()]
    method.training_step(batch(), torch.arange(24), Ctx())
    for b, t, o in zip(before, method.target.parameters(), method.online.parameters()):
        assert torch.allclose(t, 0.98 * b + 0.02 * o)
    assert all(not p.requires_grad for p in method.target.parameters())
    assert set(map(id, method.param_groups()["main"])).isdisjoint(map(id, method.target.parameters()))


# --- variant=official, switch by switch --------------------------------------------------------


def test_official_loss_is_the_pair_mean():
    views = batch()
    paper = make().training_step(views, torch.arange(24), Ctx())
    official = make("official")
    official.variant = type(official.variant)(reduction="pair_mean", fixed_batches=False, kmeans_n_init=1, kmeans_seed=0)
    terms = official.training_step(views, torch.arange(24), Ctx())
    assert torch.allclose(terms["loss"], paper["loss"] / 24)


def test_official_trains_on_the_same_batches_every_epoch():
    method = make("official")
    views = batch()
    method.on_fit_start(views)
    seen = []
    method._update_target = lambda: None
    for step in range(4):  # batches of 12: two per epoch
        got = method._fixed_batch([v[:12] for v in views], Ctx(step=step))
        seen.append(got[0])
    assert torch.equal(seen[0], seen[2]) and torch.equal(seen[1], seen[3])
    assert not torch.equal(seen[0], seen[1])


def test_official_kmeans_settings():
    method = make("official")
    method.on_fit_start(batch())
    assert method.kmeans_n_init == 1 and int(method.kmeans_seed) == 0
    assert make().kmeans_n_init == 10


# --- through the engine, and bad inputs ---------------------------------------------------------


def test_two_epochs_through_the_engine(tmp_path):
    cfg = compose_config(
        [
            "model=divide",
            "dataset=handwritten",
            "model.encoder_widths=[32,16]",
            "model.start_rectify_epoch=1",
            *RUNNER,
            "trainer.eval_every=1",
        ]
    )
    assert cfg.trainer.optimizer.betas == [0.9, 0.99] and cfg.trainer.scheduler.min_lr_ratio == 1.0
    results = run(cfg, tmp_path)
    assert results["metrics"]["acc"] > 0.3
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss,intra,inter") and len(rows) == 3


def test_one_view_and_bad_options_are_refused():
    with pytest.raises(ConfigError, match="model=divide needs at least 2 views"):
        make(info=DataInfo(dims=(5,), n_clusters=3, n_samples=24))
    with pytest.raises(ConfigError, match="model.variant='typo'"):
        make("typo")
    with pytest.raises(ConfigError, match="loss.weights.typo: unknown DIVIDE term"):
        DIVIDEObjective(weights={"typo": 1.0})
    with pytest.raises(ConfigError, match="loss.walk_steps=0"):
        DIVIDEObjective(walk_steps=0)
