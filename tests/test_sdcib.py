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
    soft = lambda y: 0.7 * eye[y] + 0.075  # rows sum to 1
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


def test_official_critics_take_100_extra_steps_at_each_epochs_first_batch_and_minimise():
    method = make(variant="official")
    ctx = Recording(method)
    method.on_epoch_start(1, ctx)
    method.training_step(batch(), torch.arange(40), ctx)
    assert ctx.calls == ["critic"] * 101
    method.training_step(batch(), torch.arange(40), ctx)
    assert ctx.calls == ["critic"] * 102
    # the critics minimise the JSD term: their loss is +I, which goes down
    assert ctx.values[100] < ctx.values[0]
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


def test_official_aligns_each_modality_to_the_previous_and_sums_probabilities():
    method = make(variant="official")
    eye = torch.eye(4)
    y0 = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    # modality 1 relabels 0<->1; modality 2 follows modality 1's labels but puts sample 7 elsewhere
    y1 = torch.tensor([1, 0, 2, 3, 1, 0, 2, 3])
    y2 = torch.tensor([1, 0, 2, 3, 1, 0, 2, 0])
    p = lambda y, w: w * eye[y] + (1 - w) / 4
    labels, soft = method.assign(torch.stack([p(y0, 0.3), p(y1, 0.3), p(y2, 1.0)], dim=1))
    # modality 2's label 0 is modality 1's 0, which is modality 0's 1. Summed probabilities:
    # sample 7 follows the confident modality 2 (1.35 against 0.95; a vote would keep 3)
    assert labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 1]
    assert make().assign(torch.stack([p(y0, 0.3), p(y1, 0.3), p(y2, 1.0)], dim=1))[0].tolist()[7] == 3
    assert torch.allclose(soft.sum(dim=1), torch.ones(8))
