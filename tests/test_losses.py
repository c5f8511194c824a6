"""Exact-value and property tests for clusterbench.losses (hand-computed references)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clusterbench.losses import (
    cluster_contrastive_loss,
    gaussian_kl_to_standard_normal,
    instance_contrastive_loss,
    jsd_mine_term,
    marginal_entropy,
    mean_entropy,
    mine_lower_bound,
    shuffle_pairs,
    softmax_kl_term,
)


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ---------------------------------------------------------------------------
# independent references written from the definitions (python loops on purpose)
# ---------------------------------------------------------------------------


def naive_nt_xent(u: torch.Tensor, v: torch.Tensor, tau: float) -> float:
    """Per-anchor NT-Xent from the definition: rows of u/v, positive = same index in the other view."""
    rows = [r.double() for r in u] + [r.double() for r in v]
    m = len(u)
    total = 0.0
    for i, zi in enumerate(rows):
        pos = i + m if i < m else i - m
        sims = {}
        for k, zk in enumerate(rows):
            if k == i:
                continue
            cos = float(zi @ zk) / (float(zi.norm()) * float(zk.norm()))
            sims[k] = cos / tau
        denom = sum(math.exp(s) for s in sims.values())
        total += -(sims[pos] - math.log(denom))
    return total / (2 * m)


def naive_cc_released_cluster_loss(c_a: torch.Tensor, c_b: torch.Tensor, tau: float) -> float:
    """The released-CC form: column InfoNCE + sum over views of (log K + sum_k p_k log p_k)."""
    k = c_a.shape[1]
    value = naive_nt_xent(c_a.t(), c_b.t(), tau)
    for c in (c_a, c_b):
        p = c.double().sum(0)
        p = p / p.sum()
        value += math.log(k) + sum(float(pk) * math.log(float(pk)) for pk in p)
    return value


def random_assignments(n, k, gen):
    return torch.softmax(torch.randn(n, k, generator=gen, dtype=torch.float64) * 2, dim=1)


# ---------------------------------------------------------------------------
# instance loss
# ---------------------------------------------------------------------------


def test_instance_loss_identical_orthogonal_hand_value():
    # views identical, the two samples orthogonal: every anchor has cos 1 with its
    # positive and cos 0 with both negatives -> -log(e^{1/t} / (e^{1/t} + 2))
    z = t([[1.0, 0.0], [0.0, 1.0]])
    tau = 0.5
    expected = math.log(1 + 2 * math.exp(-1 / tau))
    assert instance_contrastive_loss(z, z.clone(), tau).item() == pytest.approx(expected, abs=1e-12)
    # rows of different length give the same value (normalised inside)
    z_scaled = t([[3.0, 0.0], [0.0, 0.25]])
    assert instance_contrastive_loss(z_scaled, z, tau).item() == pytest.approx(expected, abs=1e-12)


def test_instance_loss_swapped_hand_value():
    # positive orthogonal (cos 0), one negative identical (cos 1), one orthogonal (cos 0)
    z_a = t([[1.0, 0.0], [0.0, 1.0]])
    z_b = t([[0.0, 1.0], [1.0, 0.0]])
    expected = math.log(2 + math.exp(2.0))  # tau = 0.5 -> cos 1 becomes logit 2
    assert instance_contrastive_loss(z_a, z_b, 0.5).item() == pytest.approx(expected, abs=1e-12)


def test_instance_loss_45_degree_hand_value():
    # e0=(1,0), e1=(1,1)/r2 (view a); e2=(1,1)/r2, e3=(0,1) (view b); tau = 1, c = 1/sqrt(2)
    z_a = t([[1.0, 0.0], [1.0, 1.0]])
    z_b = t([[1.0, 1.0], [0.0, 1.0]])
    c = 1 / math.sqrt(2)
    l0 = math.log(2 * math.exp(c) + 1) - c  # pos e2 (c), neg e1 (c), e3 (0)
    l1 = math.log(2 * math.exp(c) + math.e) - c  # pos e3 (c), neg e0 (c), e2 (1)
    l2 = math.log(2 * math.exp(c) + math.e) - c  # pos e0 (c), neg e1 (1), e3 (c)
    l3 = math.log(2 * math.exp(c) + 1) - c  # pos e1 (c), neg e0 (0), e2 (c)
    expected = (l0 + l1 + l2 + l3) / 4
    assert instance_contrastive_loss(z_a, z_b, 1.0).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n,d,tau", [(2, 3, 0.5), (7, 5, 0.5), (16, 8, 0.1), (5, 4, 1.0)])
def test_instance_loss_matches_naive_reference(n, d, tau):
    gen = torch.Generator().manual_seed(n * 100 + d)
    z_a = torch.randn(n, d, generator=gen)
    z_b = torch.randn(n, d, generator=gen)
    got = instance_contrastive_loss(z_a, z_b, tau).item()  # float32 computation
    assert got == pytest.approx(naive_nt_xent(z_a, z_b, tau), abs=1e-6, rel=1e-6)
    got64 = instance_contrastive_loss(z_a.double(), z_b.double(), tau).item()
    assert got64 == pytest.approx(naive_nt_xent(z_a, z_b, tau), abs=1e-12)


def test_instance_loss_matches_cc_released_formulation():
    # CC's released InstanceLoss: z already normalised, logits = [positive, 2N-2 negatives],
    # label 0, CrossEntropy(reduction="sum") / 2N.  Re-derived here in vectorised form.
    gen = torch.Generator().manual_seed(0)
    n, tau = 6, 0.5
    z_a = F.normalize(torch.randn(n, 4, generator=gen, dtype=torch.float64), dim=1)
    z_b = F.normalize(torch.randn(n, 4, generator=gen, dtype=torch.float64), dim=1)
    z = torch.cat([z_a, z_b])
    sim = z @ z.t() / tau
    pos = torch.cat([torch.diagonal(sim, n), torch.diagonal(sim, -n)]).unsqueeze(1)
    keep = ~torch.eye(2 * n, dtype=torch.bool)
    keep[torch.arange(n), torch.arange(n) + n] = False
    keep[torch.arange(n) + n, torch.arange(n)] = False
    neg = sim[keep].view(2 * n, 2 * n - 2)
    logits = torch.cat([pos, neg], dim=1)
    ref = F.cross_entropy(logits, torch.zeros(2 * n, dtype=torch.long), reduction="sum") / (2 * n)
    assert instance_contrastive_loss(z_a, z_b, tau).item() == pytest.approx(ref.item(), abs=1e-12)


def test_instance_loss_symmetric_and_scale_invariant():
    gen = torch.Generator().manual_seed(1)
    z_a = torch.randn(9, 6, generator=gen, dtype=torch.float64)
    z_b = torch.randn(9, 6, generator=gen, dtype=torch.float64)
    base = instance_contrastive_loss(z_a, z_b)
    assert instance_contrastive_loss(z_b, z_a).item() == pytest.approx(base.item(), abs=1e-12)
    scale_a = torch.rand(9, 1, generator=gen, dtype=torch.float64) * 10 + 0.01
    scale_b = torch.rand(9, 1, generator=gen, dtype=torch.float64) * 10 + 0.01
    assert instance_contrastive_loss(z_a * scale_a, z_b * scale_b).item() == pytest.approx(base.item(), abs=1e-12)
    # permuting the batch (both views together) does not change the loss either
    perm = torch.randperm(9, generator=gen)
    assert instance_contrastive_loss(z_a[perm], z_b[perm]).item() == pytest.approx(base.item(), abs=1e-12)


def test_instance_loss_gradients():
    gen = torch.Generator().manual_seed(2)
    z_a = torch.randn(8, 5, generator=gen, requires_grad=True)
    z_b = torch.randn(8, 5, generator=gen, requires_grad=True)
    loss = instance_contrastive_loss(z_a, z_b)
    assert loss.dim() == 0 and loss.dtype == torch.float32
    loss.backward()
    for g in (z_a.grad, z_b.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_instance_loss_rejects_bad_shapes():
    with pytest.raises(ValueError):
        instance_contrastive_loss(torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(ValueError):
        instance_contrastive_loss(torch.randn(3, 2), torch.randn(3, 2), temperature=0.0)


# ---------------------------------------------------------------------------
# cluster loss
# ---------------------------------------------------------------------------


def test_cluster_loss_identity_hand_value():
    c = t([[1.0, 0.0], [0.0, 1.0]])
    # columns orthogonal, identical across views; P = (1/2, 1/2) -> H = log 2 per view
    expected = math.log(math.e + 2) - 1 - 2 * math.log(2)
    assert cluster_contrastive_loss(c, c.clone()).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("tau,weight", [(1.0, 1.0), (0.5, 0.5), (1.0, 0.0)])
def test_cluster_loss_2x2_hand_value(tau, weight):
    # columns: a0=(1,.5)->(2,1)/r5, a1=(0,.5)->(0,1), b0=(.5,0)->(1,0), b1=(.5,1)->(1,2)/r5
    # cosines (s = 1/sqrt5): a0.a1=s, a0.b0=2s, a0.b1=4/5, a1.b0=0, a1.b1=2s, b0.b1=s
    c_a = t([[1.0, 0.0], [0.5, 0.5]])
    c_b = t([[0.5, 0.5], [0.0, 1.0]])
    s = 1 / math.sqrt(5)
    e = lambda x: math.exp(x / tau)  # noqa: E731
    l_a0 = math.log(e(2 * s) + e(s) + e(0.8)) - 2 * s / tau
    l_a1 = math.log(e(2 * s) + e(s) + e(0.0)) - 2 * s / tau
    l_b0 = math.log(e(2 * s) + e(0.0) + e(s)) - 2 * s / tau
    l_b1 = math.log(e(2 * s) + e(0.8) + e(s)) - 2 * s / tau
    contrast = (l_a0 + l_a1 + l_b0 + l_b1) / 4
    # P_a = (3/4, 1/4), P_b = (1/4, 3/4): same entropy
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    expected = contrast - weight * 2 * h
    got = cluster_contrastive_loss(c_a, c_b, temperature=tau, entropy_weight=weight).item()
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n,k,tau", [(10, 3, 1.0), (32, 10, 1.0), (20, 5, 0.5)])
def test_cluster_loss_plus_2logk_equals_cc_released_form(n, k, tau):
    gen = torch.Generator().manual_seed(n + k)
    c_a = random_assignments(n, k, gen)
    c_b = random_assignments(n, k, gen)
    ours = cluster_contrastive_loss(c_a, c_b, temperature=tau).item()
    assert ours + 2 * math.log(k) == pytest.approx(naive_cc_released_cluster_loss(c_a, c_b, tau), abs=1e-10)
    ours32 = cluster_contrastive_loss(c_a.float(), c_b.float(), temperature=tau).item()
    assert ours32 == pytest.approx(ours, abs=1e-5)


def test_cluster_loss_symmetric_and_gradients():
    gen = torch.Generator().manual_seed(3)
    c_a = random_assignments(12, 4, gen)
    c_b = random_assignments(12, 4, gen)
    assert cluster_contrastive_loss(c_a, c_b).item() == pytest.approx(cluster_contrastive_loss(c_b, c_a).item(), abs=1e-12)
    logits_a = torch.randn(12, 4, generator=gen, requires_grad=True)
    logits_b = torch.randn(12, 4, generator=gen, requires_grad=True)
    loss = cluster_contrastive_loss(logits_a.softmax(1), logits_b.softmax(1))
    loss.backward()
    for g in (logits_a.grad, logits_b.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_cluster_loss_finite_with_empty_cluster():
    # cluster 2 is never used in view a: the entropy term must stay finite
    c_a = t([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]).requires_grad_()
    c_b = t([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    loss = cluster_contrastive_loss(c_a, c_b)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(c_a.grad).all()


# ---------------------------------------------------------------------------
# entropy
# ---------------------------------------------------------------------------


def test_marginal_and_mean_entropy_hand_values():
    assert marginal_entropy(t([[1.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(math.log(2), abs=1e-12)
    assert marginal_entropy(t([[1.0, 0.0], [1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-12)
    p = t([[0.5, 0.5], [1.0, 0.0]])
    # mean row (3/4, 1/4)
    assert marginal_entropy(p).item() == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-12)
    assert mean_entropy(p).item() == pytest.approx(math.log(2) / 2, abs=1e-12)
    uniform = torch.full((5, 4), 0.25, dtype=torch.float64)
    assert mean_entropy(uniform).item() == pytest.approx(math.log(4), abs=1e-12)


def test_entropy_gradients_finite_at_zero():
    p = t([[1.0, 0.0], [0.7, 0.3]]).requires_grad_()
    (marginal_entropy(p) + mean_entropy(p)).backward()
    assert torch.isfinite(p.grad).all()


# ---------------------------------------------------------------------------
# information-theoretic terms
# ---------------------------------------------------------------------------


def test_gaussian_kl_hand_values():
    assert gaussian_kl_to_standard_normal(torch.zeros(4, 3), torch.ones(4, 3)).item() == pytest.approx(0.0, abs=1e-7)
    # row 1: 0.5 * [(1 + 4 - 1 - 2 log 2) + (0 + 1/4 - 1 - 2 log 1/2)] = 0.5 * 3.25
    # row 2: mu = 0, std = 1 -> 0; batch mean = 1.625 / 2
    mu = t([[1.0, 0.0], [0.0, 0.0]])
    std = t([[2.0, 0.5], [1.0, 1.0]])
    assert gaussian_kl_to_standard_normal(mu, std).item() == pytest.approx(1.625 / 2, abs=1e-12)
    # matches torch.distributions
    gen = torch.Generator().manual_seed(4)
    mu = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    std = torch.rand(6, 5, generator=gen, dtype=torch.float64) + 0.1
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, std), torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(std))
    )
    assert gaussian_kl_to_standard_normal(mu, std).item() == pytest.approx(ref.sum(1).mean().item(), abs=1e-12)


def test_gaussian_kl_gradients():
    mu = torch.randn(4, 3, requires_grad=True)
    log_std = torch.randn(4, 3, requires_grad=True)
    gaussian_kl_to_standard_normal(mu, log_std.exp()).backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(log_std.grad).all()


def test_mine_lower_bound_hand_value():
    t_joint = t([1.0, 2.0, 3.0])  # mean 2
    t_marg = t([0.0, math.log(3.0)])  # log((1 + 3) / 2) = log 2
    assert mine_lower_bound(t_joint, t_marg).item() == pytest.approx(2 - math.log(2), abs=1e-12)
    # N x 1 inputs give the same value
    assert mine_lower_bound(t_joint[:, None], t_marg[:, None]).item() == pytest.approx(2 - math.log(2), abs=1e-12)
    # constant critic -> bound is exactly 0
    assert mine_lower_bound(torch.full((5,), 0.7), torch.full((7,), 0.7)).item() == pytest.approx(0.0, abs=1e-6)


def test_mine_lower_bound_stable_for_large_critic_values():
    t_joint = t([1000.0, 1000.0])
    t_marg = t([999.0, 1001.0])
    expected = 1000.0 - (1000.0 + math.log(math.exp(-1) + math.exp(1)) - math.log(2))
    got = mine_lower_bound(t_joint.float(), t_marg.float()).item()
    assert got == pytest.approx(expected, abs=1e-4)


def test_jsd_mine_term_hand_value():
    t_joint = t([0.0, 1.0])
    t_marg = t([-1.0, 2.0])
    expected = -(softplus(0.0) + softplus(-1.0)) / 2 - (softplus(-1.0) + softplus(2.0)) / 2
    assert jsd_mine_term(t_joint, t_marg).item() == pytest.approx(expected, abs=1e-12)
    assert jsd_mine_term(t_joint[:, None], t_marg[:, None]).item() == pytest.approx(expected, abs=1e-12)


def test_mine_terms_gradients():
    tj = torch.randn(8, 1, requires_grad=True)
    tm = torch.randn(8, 1, requires_grad=True)
    (mine_lower_bound(tj, tm) + jsd_mine_term(tj, tm)).backward()
    assert torch.isfinite(tj.grad).all() and torch.isfinite(tm.grad).all()


def test_shuffle_pairs():
    gen = torch.Generator().manual_seed(5)
    perm = shuffle_pairs(10, generator=gen)
    assert perm.dtype == torch.long and sorted(perm.tolist()) == list(range(10))
    again = shuffle_pairs(10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(perm, again)
    assert shuffle_pairs(3, device="cpu").device.type == "cpu"


def test_softmax_kl_term_hand_value():
    # row 1: p = (1/2, 1/2), q = (1/4, 3/4): 0.5 log 2 + 0.5 log(2/3)
    # row 2: p = (3/4, 1/4), q = (1/2, 1/2): 0.75 log 1.5 + 0.25 log 0.5
    h = t([[0.0, 0.0], [math.log(3.0), 0.0]])
    ref = t([[0.0, math.log(3.0)], [0.0, 0.0]])
    row1 = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    row2 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert softmax_kl_term(h, ref).item() == pytest.approx((row1 + row2) / 2, abs=1e-12)
    assert softmax_kl_term(h, h.clone()).item() == pytest.approx(0.0, abs=1e-12)
    # shift invariance of softmax
    assert softmax_kl_term(h + 5.0, ref - 2.0).item() == pytest.approx((row1 + row2) / 2, abs=1e-12)


# ---------------------------------------------------------------------------
# autocast / devices
# ---------------------------------------------------------------------------


def _all_losses(device, dtype=torch.float32, seed=6):
    gen = torch.Generator().manual_seed(seed)
    z_a, z_b = (torch.randn(8, 16, generator=gen).to(device, dtype) for _ in range(2))
    c_a, c_b = (torch.randn(8, 4, generator=gen).softmax(1).to(device, dtype) for _ in range(2))
    mu = torch.randn(8, 6, generator=gen).to(device, dtype)
    std = (torch.rand(8, 6, generator=gen) + 0.5).to(device, dtype)
    tj, tm = (torch.randn(8, 1, generator=gen).to(device, dtype) for _ in range(2))
    return {
        "instance": instance_contrastive_loss(z_a, z_b),
        "cluster": cluster_contrastive_loss(c_a, c_b),
        "marginal": marginal_entropy(c_a),
        "mean": mean_entropy(c_a),
        "kl": gaussian_kl_to_standard_normal(mu, std),
        "dv": mine_lower_bound(tj, tm),
        "jsd": jsd_mine_term(tj, tm),
        "softmax_kl": softmax_kl_term(mu, std),
    }


def test_cpu_autocast_bfloat16():
    ref = _all_losses("cpu")
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        same_inputs = _all_losses("cpu")
    low_inputs = _all_losses("cpu", dtype=torch.bfloat16)
    for name, value in ref.items():
        assert same_inputs[name].dtype == torch.float32, name
        assert same_inputs[name].item() == pytest.approx(value.item(), abs=1e-6), name
        assert low_inputs[name].dtype == torch.float32, name
        assert low_inputs[name].item() == pytest.approx(value.item(), abs=0.1, rel=0.05), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_autocast():
    ref = _all_losses("cpu")
    on_gpu = _all_losses("cuda")
    with torch.autocast(device_type="cuda", dtype=torch.float16):
        amp = _all_losses("cuda")
    half = _all_losses("cuda", dtype=torch.float16)
    for name, value in ref.items():
        assert on_gpu[name].device.type == "cuda"
        assert on_gpu[name].item() == pytest.approx(value.item(), abs=1e-5), name
        assert amp[name].dtype == torch.float32, name
        assert amp[name].item() == pytest.approx(value.item(), abs=1e-5), name
        assert torch.isfinite(half[name]), name
        assert half[name].item() == pytest.approx(value.item(), abs=0.05, rel=0.02), name
    perm = shuffle_pairs(5, device="cuda")
    assert perm.device.type == "cuda"
    perm = shuffle_pairs(5, generator=torch.Generator().manual_seed(0), device="cuda")
    assert perm.device.type == "cuda"
