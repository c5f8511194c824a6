"""SDCIB specifics: the objective's combination of named terms (Eq. 5), ablation switches,
Algorithm 1's critic step, and the aligned vote (Eq. 2)."""

from __future__ import annotations

import math

import pytest
import torch

from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo
from clusterbench.methods.sdcib import SDCIB, SDCIBObjective

BACKBONE = {"_target_": "clusterbench.nn.mlp.VIBEncoder", "hidden_dims": [16, 8]}
INFO = DataInfo(dims=(5, 7, 3), n_clusters=4, n_samples=40)


class Steps:
    """A StepContext that records and applies the method's own optimiser steps."""

    def __init__(self, method: SDCIB) -> None:
        self.optimizers = {g: torch.optim.SGD(p, lr=0.1) for g, p in method.param_groups().items()}
        self.calls: list[str] = []
        self.epoch, self.step, self.device = 1, 0, torch.device("cpu")

    def optimize(self, group, loss):
        self.calls.append(group)
        opt = self.optimizers[group]
        opt.zero_grad()
        loss.backward()
        opt.step()

    def apply_gradients(self, group):
        self.calls.append(f"apply {group}")
        self.optimizers[group].step()


def make(weights=None, layers="all", **kwargs) -> SDCIB:
    torch.manual_seed(0)
    objective = SDCIBObjective(weights=weights or {}, layers=layers)
    return SDCIB(INFO, BACKBONE, objective, **kwargs)


def batch(n=40):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, d, generator=g) for d in INFO.dims]


def test_loss_is_eq5_of_the_named_terms():
    method = make(alpha=0.3, beta=10.0)
    terms = method.training_step(batch(), torch.arange(40), Steps(method))
    expected = 0.3 * (terms["compression"] - 10.0 * terms["relevance"]) - 0.7 * (terms["cluster"] + terms["instance"])
    assert torch.allclose(terms["loss"], expected)
    assert all(torch.isfinite(v) for v in terms.values())
    # InfoNCE estimates are bounded by log(#candidates) per ordered pair (and layer)
    pairs = 3 * 2
    assert terms["instance"] <= pairs * 2 * math.log(2 * 40 - 1) + 1e-4
    assert terms["cluster"] <= pairs * math.log(2 * 4 - 1) + 1e-4
    assert terms["compression"] > 0


def test_ablation_weights_remove_terms():
    method = make(weights={"cluster": 0.0, "instance": 0.0}, alpha=0.5)
    terms = method.training_step(batch(), torch.arange(40), Steps(method))
    assert terms["cluster"] == 0 and terms["instance"] == 0
    assert torch.allclose(terms["loss"], 0.5 * (terms["compression"] - terms["relevance"]))


def test_last_layer_only_uses_one_layer():
    method = make(layers="last")
    assert len(method.critics) == 1 and method.layer_ids == [1]


def test_unknown_term_is_a_config_error():
    with pytest.raises(ConfigError, match="loss.weights.typo: unknown SDCIB term"):
        SDCIBObjective(weights={"typo": 1.0})


def test_algorithm1_critics_step_before_the_encoders():
    method = make(critic_steps=2)
    ctx = Steps(method)
    critic_before = [p.clone() for p in method.critics.parameters()]
    encoder_before = [p.clone() for p in method.encoders.parameters()]
    terms = method.training_step(batch(), torch.arange(40), ctx)
    assert ctx.calls == ["critic", "critic"]
    assert all(not torch.equal(a, b) for a, b in zip(critic_before, method.critics.parameters()))
    # the critic step does not touch the encoders (inputs are detached)
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, method.encoders.parameters()))
    ctx.optimize("main", terms["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, method.encoders.parameters()))


def test_vote_aligns_permuted_modalities():
    method = make()
    g = torch.Generator().manual_seed(2)
    p0 = torch.softmax(torch.randn(50, 4, generator=g) * 3, dim=1)
    p1 = p0[:, [2, 0, 3, 1]]  # same partition, other cluster indices
    p2 = p0[:, [1, 3, 0, 2]]
    labels, soft = method.assign(torch.stack([p0, p1, p2], dim=1))
    assert torch.equal(labels, p0.argmax(1))
    assert torch.allclose(soft, p0, atol=1e-6)


def test_vote_takes_the_majority():
    method = make()
    eye = torch.eye(4)
    # modalities 0 and 1 agree on [0,1,2,3,0,1]; modality 2 puts sample 5 in cluster 2
    y01 = torch.tensor([0, 1, 2, 3, 0, 1])
    y2 = torch.tensor([0, 1, 2, 3, 0, 2])

    def soft(y):
        return 0.7 * eye[y] + 0.075  # rows sum to 1

    labels, _ = method.assign(torch.stack([soft(y01), soft(y01), soft(y2)], dim=1))
    assert labels.tolist() == [0, 1, 2, 3, 0, 1]


def test_predict_in_eval_mode_is_deterministic():
    method = make().eval()
    x = batch()
    assert torch.equal(method.predict(x), method.predict(x))
    assert method.predict(x).shape == (40, 1, 3, 4)  # batch x members x modalities x clusters


# --- variant=official: the released code's choices ---------------------------------------------


class Recording(Steps):
    def __init__(self, method):
        super().__init__(method)
        self.values: list[float] = []

    def optimize(self, group, loss):
        self.values.append(loss.item())
        super().optimize(group, loss)


def test_official_loss_minimises_the_jsd_term_with_log_n_offsets():
    method = make(alpha=0.3, beta=10.0, variant="official")
    terms = method.training_step(batch(), torch.arange(40), Steps(method))
    # the relevance term enters with the opposite sign: minimised by the encoders
    expected = 0.3 * (terms["compression"] + 10.0 * terms["relevance"]) - 0.7 * (terms["cluster"] + terms["instance"])
    assert torch.allclose(terms["loss"], expected)
    # InfoNCE with the -log N / -log K offsets: estimate = log N - CE <= log N - ... per pair
    pairs = 3 * 2
    assert terms["instance"] <= pairs * 2 * math.log(40) + 1e-4
    assert terms["cluster"] <= pairs * math.log(4) + 1e-4
    # softmax KL is >= 0 and the JSD estimator is <= 0 (-softplus terms)
    assert terms["compression"] >= 0 and terms["relevance"] <= 0


def test_official_critics_take_100_steps_at_each_epochs_first_batch_and_minimise():
    method = make(variant="official")
    ctx = Recording(method)
    method.on_epoch_start(1, ctx)
    method.training_step(batch(), torch.arange(40), ctx)
    assert ctx.calls == ["critic"] * 100
    # later batches: no separate critic step (the critics step on the main loss's gradient)
    method.training_step(batch(), torch.arange(40), ctx)
    assert ctx.calls == ["critic"] * 100
    # the critics minimise the JSD term: their loss is +I, which goes down
    assert ctx.values[99] < ctx.values[0]
    paper = make()
    paper.on_epoch_start(1, ctx)
    paper_ctx = Recording(paper)
    paper.training_step(batch(), torch.arange(40), paper_ctx)
    assert paper_ctx.calls == ["critic"]


def test_official_head_normalises_both_halves_and_uses_the_tiny_min_std():
    method = make(variant="official")
    layer = method.encoders[0].layers[0]
    assert layer.norm.weight.shape[-1] == 2 * layer.out_dim and layer.min_std == 1e-7
    assert make().encoders[0].layers[0].norm.weight.shape[-1] == make().encoders[0].layers[0].out_dim


def test_official_predicts_with_the_train_mode_network_on_all_samples():
    method = make(variant="official").eval()
    assert method.full_batch_predict and not make().full_batch_predict
    x = batch()
    torch.manual_seed(3)
    a = method.predict(x)
    assert not method.training  # the mode is restored
    torch.manual_seed(4)
    b = method.predict(x)
    assert not torch.equal(a, b)  # sampled, as in the released evaluation


def test_official_without_the_alignment_quirk_aligns_to_the_previous_and_sums_probabilities():
    method = make(variant="official", official_alignment=False)
    eye = torch.eye(4)
    y0 = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    # modality 1 relabels 0<->1; modality 2 follows modality 1's labels but puts sample 7 elsewhere
    y1 = torch.tensor([1, 0, 2, 3, 1, 0, 2, 3])
    y2 = torch.tensor([1, 0, 2, 3, 1, 0, 2, 0])

    def p(y, w):
        return w * eye[y] + (1 - w) / 4

    labels, soft = method.assign(torch.stack([p(y0, 0.3), p(y1, 0.3), p(y2, 1.0)], dim=1))
    # modality 2's label 0 is modality 1's 0, which is modality 0's 1. Summed probabilities:
    # sample 7 follows the confident modality 2 (1.35 against 0.95; a vote would keep 3)
    assert labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 1]
    assert make().assign(torch.stack([p(y0, 0.3), p(y1, 0.3), p(y2, 1.0)], dim=1))[0].tolist()[7] == 3
    assert torch.allclose(soft.sum(dim=1), torch.ones(8))


def test_official_alignment_matches_the_released_cluster_py():
    """Released Cluster.py: modality v is matched to the UNALIGNED modality v-1, and the matched
    pair (row i of v-1, column j of v) moves column i of v to column j (the inverse permutation)."""
    from scipy.optimize import linear_sum_assignment

    def released(probs):  # written from the released code's behaviour, numpy
        out = [probs[0]]
        for v in range(1, len(probs)):
            a, b = probs[v - 1].argmax(1), probs[v].argmax(1)
            k = probs[v].shape[1]
            cost = -np.array([[np.sum((a == i) & (b == j)) for j in range(k)] for i in range(k)])
            rows, cols = linear_sum_assignment(cost)
            matched = np.zeros_like(probs[v])
            for r, c in zip(rows, cols):
                matched[:, c] += probs[v][:, r]
            out.append(matched)
        return np.sum(out, axis=0).argmax(1)

    import numpy as np

    g = torch.Generator().manual_seed(5)
    p0 = torch.softmax(torch.randn(60, 4, generator=g) * 2, dim=1)
    p1 = torch.softmax(torch.randn(60, 4, generator=g) * 2 + 4 * p0[:, [1, 2, 3, 0]], dim=1)  # a 3-cycle+: not self-inverse
    p2 = torch.softmax(torch.randn(60, 4, generator=g) * 2 + 4 * p1[:, [2, 3, 0, 1]], dim=1)
    stacked = torch.stack([p0, p1, p2], dim=1)
    labels, _ = make(variant="official").assign(stacked)
    assert labels.tolist() == released([p.numpy() for p in (p0, p1, p2)]).tolist()
    fixed, _ = make(variant="official", official_alignment=False).assign(stacked)
    assert fixed.tolist() != labels.tolist()  # the quirk changes the partition here


def test_side_heads_encoder_trunk_is_deterministic_and_heads_read_the_clean_activation():
    from clusterbench.nn.mlp import VIBEncoder

    torch.manual_seed(0)
    encoder = VIBEncoder(6, [8, 5], head="official").train()
    x = torch.randn(20, 6)
    seen = []
    hooks = [layer.register_forward_hook(lambda m, inp, out: seen.append(inp[0])) for layer in encoder.layers]
    trunk_out = []
    hooks += [t.register_forward_hook(lambda m, inp, out: trunk_out.append(out)) for t in encoder.trunk]
    first = encoder(x)
    second = encoder(x)
    for h in hooks:
        h.remove()
    # the trunk does not sample: the same x gives the same activations and Gaussian parameters
    assert torch.equal(trunk_out[0], trunk_out[2]) and torch.equal(trunk_out[1], trunk_out[3])
    assert all(torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std) for a, b in zip(first, second))
    assert not torch.equal(first[1].sample, second[1].sample)  # the heads do
    # each head reads its trunk layer's clean activation, never the previous sample
    assert torch.equal(seen[0], trunk_out[0]) and torch.equal(seen[1], trunk_out[1])
    assert [o.sample.shape[-1] for o in first] == [8, 5]


def test_chained_encoder_feeds_each_sample_to_the_next_layer():
    from clusterbench.nn.mlp import VIBEncoder

    torch.manual_seed(0)
    encoder = VIBEncoder(6, [8, 5], layout="chained").train()
    seen = []
    encoder.layers[1].register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    outputs = encoder(torch.randn(20, 6))
    assert encoder.trunk is None and torch.equal(seen[0], outputs[0].sample)


def test_unknown_encoder_layout_names_the_key():
    from clusterbench.nn.mlp import VIBEncoder

    with pytest.raises(ConfigError, match="backbone.layout=.stacked."):
        VIBEncoder(6, [8], layout="stacked")


def test_official_critic_is_the_released_network_with_batchnorm():
    method = make(variant="official")
    widths = method.encoders[0].out_dims  # [16, 8]
    for critic, width in zip(method.critics, widths):
        shapes = [tuple(w.shape[1:]) for w in critic.weights]
        assert shapes == [(width + 4, width // 2), (width // 2, width // 2), (width // 2, 1)]
        assert critic.norms is not None and len(critic.norms) == 2
    paper = make()
    assert [tuple(w.shape[1:]) for w in paper.critics[0].weights] == [(16 + 4, 256), (256, 1)] and paper.critics[0].norms is None


def test_official_critic_orders_inputs_and_rolls_the_first_in_separate_passes():
    method = make(variant="official")
    inputs = []
    method.critics[0].register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach().clone()))
    g = torch.Generator().manual_seed(1)
    h = [torch.randn(1, 3, 10, 16, generator=g)]
    y = torch.softmax(torch.randn(1, 3, 10, 4, generator=g), dim=-1)
    method._relevance(h, y, detach=True, order="yh")
    joint, marginal = inputs  # two passes: separate BatchNorm statistics
    assert torch.equal(joint[..., :4], y[0]) and torch.equal(joint[..., 4:], h[0][0])
    assert torch.equal(marginal[..., :4], y[0].roll(1, dims=-2)) and torch.equal(marginal[..., 4:], h[0][0])
    inputs.clear()
    method._relevance(h, y, detach=True, order="hy")
    assert torch.equal(inputs[1][..., :16], h[0][0].roll(1, dims=-2)) and torch.equal(inputs[1][..., 16:], y[0])


def test_official_critics_step_on_the_main_loss_gradient():
    method = make(variant="official")
    ctx = Steps(method)
    method.on_epoch_start(1, ctx)
    method.training_step(batch(), torch.arange(40), ctx)  # first batch: 100 own steps
    ctx.calls.clear()
    before = [p.clone() for p in method.critics.parameters()]
    terms = method.training_step(batch(), torch.arange(40), ctx)
    assert all(p.grad is None for p in method.critics.parameters())  # nothing left from the own steps
    ctx.optimize("main", terms["loss"])
    grads = [p.grad.clone() for p in method.critics.parameters()]
    assert any(gr.abs().sum() > 0 for gr in grads)
    method.on_train_batch_end(ctx)
    assert ctx.calls == ["main", "apply critic"]
    # SGD(lr=0.1): each critic parameter moved by -0.1 x the main loss's gradient
    for b, p, gr in zip(before, method.critics.parameters(), grads):
        assert torch.allclose(p, b - 0.1 * gr, atol=1e-6)
    paper = make()
    paper_ctx = Steps(paper)
    paper.on_train_batch_end(paper_ctx)
    assert paper_ctx.calls == []


def test_official_compression_is_kl_of_the_reference_to_a_fresh_sample():
    from clusterbench.methods.sdcib import VARIANTS, _fresh_sample, _softmax_kl
    from clusterbench.nn.mlp import GaussianLayerOutput

    g = torch.Generator().manual_seed(2)
    mean, std = torch.randn(1, 10, 6, generator=g), torch.rand(1, 10, 6, generator=g) + 0.1
    layer = GaussianLayerOutput(mean + std, mean, std)
    torch.manual_seed(7)
    fresh = _fresh_sample(layer)
    torch.manual_seed(7)
    assert torch.allclose(fresh, mean + std * torch.randn(10, 6))
    assert VARIANTS["official"].ib_sample is _fresh_sample
    torch.manual_seed(8)
    value = _softmax_kl(layer, fresh)
    torch.manual_seed(8)
    e = torch.randn(10, 6)
    # F.kl_div(log softmax(h), softmax(e), batchmean) = KL(softmax(e) || softmax(h))
    expected = torch.nn.functional.kl_div(torch.log_softmax(fresh[0], -1), torch.softmax(e, -1), reduction="batchmean")
    assert value.shape == (1,) and value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_unknown_variant_names_the_key():
    with pytest.raises(ConfigError, match="model.variant='offical'"):
        make(variant="offical")


def test_widths_that_do_not_fit_name_the_key():
    from clusterbench.nn.mlp import VIBEncoder

    with pytest.raises(ConfigError, match=r"model.critic_hidden_dims=\[0\]"):
        make(critic_hidden_dims=[0])
    with pytest.raises(ConfigError, match=r"backbone.hidden_dims=\[0, 8\]"):
        VIBEncoder(6, [0, 8])
    with pytest.raises(ConfigError, match=r"backbone.hidden_dims=\[\]"):
        VIBEncoder(6, [])
