"""DDP for every trained image method (issue 33): 2 CPU processes (gloo), each with half of a
global batch of 8 images, give the loss terms, the gradients and the updated weights of 1
process with the whole global batch, to 1e-5, for HTCN, DCSM (per-batch and per-epoch k-means),
PICI (each of its three stages, the boosting step's k-means pseudo-labels included), VTCC and
MFAVBs-CC. (CC and SDCIB: tests/test_ddp.py, whose machinery this reuses.) Methods whose losses
stay per process refuse hardware=ddp in one line."""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass, field
from typing import Callable
from unittest import mock

import pytest
import torch
import torch.distributed as dist
from conftest import compose_config
from test_ddp import _close, _Hardware, _RecordingContext, spawn_ranks

from clusterbench import collectives
from clusterbench.engine.loop import build_method, build_optimizers, predict_outputs
from clusterbench.methods.base import DataInfo
from clusterbench.nn import vit

WORLD = 2
GLOBAL_BATCH = 8
IMAGES = DataInfo(dims=(3 * 16 * 16,), n_clusters=3, n_samples=GLOBAL_BATCH, image_shape=(3, 16, 16))
CNN = ["backbone.widths=[4,8]", "backbone.out_dim=16", "hardware=cpu"]
VIT = ["model.vit_size=null", "model.embed_dim=16", "model.num_heads=2", "model.patch_size=8", "model.feature_dim=8", "hardware=cpu"]
PICI = [
    "model=pici",
    *VIT,
    "model.depth=1",
    "model.decoder_dim=8",
    "model.decoder_depth=1",
    "model.decoder_heads=2",
    # one epoch per stage; one k-means start, so the pseudo-labels depend on the k-means seed
    "model.stage_epochs=[1,1,1]",
    "trainer.max_epochs=3",
    "model.kmeans_n_init=1",
]


# the optimiser step compared: SGD, a linear function of the gradients. (Adam's first step is
# lr * g / (|g| + eps), about lr * sign(g): on a gradient that is 0 up to round-off, as a
# ViT's key bias, it turns round-off into a step of lr either way.)
SGD = ["trainer.optimizer._target_=torch.optim.SGD", "trainer.optimizer.lr=0.1"]


def _random_clip_anchors(method) -> None:
    """MFAVBs-CC's cached CLIP embeddings (no cache here): the same random ones on every process."""
    method.clip_features.copy_(torch.randn(method.clip_features.shape, generator=torch.Generator().manual_seed(3)))


@torch.no_grad()
def _confident_clusters(method) -> None:
    """Sharper cluster heads (softmax over K): at initialisation their output is nearly uniform
    on these images, and the cluster-column loss of a share then equals the global batch's to
    1e-5, which would let a per-process cluster loss pass."""
    for name in ("cluster_head", "cluster_predictor", "target_cluster_predictor"):
        head = getattr(method, name, None)
        if head is not None:
            head[0][-1].weight.mul_(100.0)


@dataclass
class Setup:
    overrides: list[str]
    views: int  # augmented views per image
    epoch: int = 1  # `on_epoch_start`'s epoch (PICI: 1 pre-training, 2 training, 3 boosting)
    prepare: Callable | None = None
    info: DataInfo = field(default=IMAGES)


SETUPS = {
    "htcn": Setup(["model=htcn", *CNN, "model.projection_dim=8", "model.projector_hidden_dim=16"], 3),
    # k-means on the batch's label features every step (the paper's Eq. 2)
    "dcsm": Setup(["model=dcsm", *CNN, "model.instance_dim=6", "model.discriminator_hidden_dim=8"], 2),
    # k-means on every sample's features at the epoch's start; the batch reads its samples' clusters
    "dcsm_dataset_kmeans": Setup(
        ["model=dcsm", *CNN, "model.instance_dim=6", "model.discriminator_hidden_dim=8", "loss.kmeans_scope=dataset"], 2
    ),
    "pici_pretrain": Setup(PICI, 2, epoch=1),
    "pici_train": Setup(PICI, 2, epoch=2),
    "pici_boost": Setup(PICI, 2, epoch=3),
    "pici_official_boost": Setup([*PICI, "model.variant=official"], 2, epoch=3),
    "vtcc": Setup(["model=vtcc", *VIT, "model.depth=1"], 2),
    # fusion=own (four views, one fused pair of blocks) with the CLIP anchor token
    "mfavbs": Setup(["model=mfavbs", *VIT, "model.depth=2"], 4, prepare=_random_clip_anchors),
}


def _views(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return [torch.rand(GLOBAL_BATCH, 3, 16, 16, generator=g) for _ in range(n)]


class _Images:
    """predict_outputs' view of the data: the global batch's first view as the unaugmented images."""

    n_samples = GLOBAL_BATCH

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def eval_batch(self, index):
        return [self.images[index]]


class _GlobalPatchMasks:
    """PICI's random patch masks as one process draws them for the global batch, this share's
    rows: the masks, like the augmentations, are randomness that a DDP run draws per process;
    the test holds them equal to compare the arithmetic. A training step draws one global noise
    per call; an evaluation pass (the official variant's masked pseudo-label features) one noise
    for all samples, read at the batch's sample indices."""

    def __init__(self) -> None:
        self.rows: slice | torch.Tensor = slice(None)
        self.evaluating = False
        self.calls = itertools.count()

    @contextlib.contextmanager
    def installed(self):
        original = vit.random_masking

        def masking(tokens, ratio):
            seed = 200 if self.evaluating else 100 + next(self.calls)
            noise = torch.rand(GLOBAL_BATCH, tokens.shape[1], generator=torch.Generator().manual_seed(seed))[self.rows]
            with mock.patch.object(torch, "rand", lambda *args, **kwargs: noise.clone()):
                return original(tokens, ratio)

        vit.random_masking = masking
        try:
            yield self
        finally:
            vit.random_masking = original

    def predict_all(self, method, images: torch.Tensor):
        """`ctx.predict_all` through the engine's predict_outputs, in batches of one process's
        share (so the official variant's per-batch feature scaling sees the same batches)."""

        def run(fn):
            def at_rows(views, index):
                self.rows, self.evaluating = index, True
                return fn(views, index)

            out = predict_outputs(method, _Images(images), GLOBAL_BATCH // WORLD, _Hardware(), at_rows)
            self.evaluating = False
            return out

        return run


def one_step(name: str, rows: slice | None = None) -> dict:
    """The method's epoch start (its k-means targets), then one training step on this process's
    share of the global batch: loss terms (mean over ranks), gradients (averaged over ranks)
    and the weights after the optimiser step and `on_train_batch_end` (HTCN's EMA target)."""
    setup = SETUPS[name]
    cfg = compose_config([*setup.overrides, *SGD])
    torch.manual_seed(0)
    method = build_method(cfg, setup.info)
    _confident_clusters(method)
    if setup.prepare:
        setup.prepare(method)
    # eval mode: BatchNorm running statistics, so the only difference between the runs is how
    # the batch is spread over processes (train-mode BN is per process without SyncBatchNorm)
    method.eval()
    ctx = _RecordingContext(build_optimizers(method, cfg.trainer), torch.device("cpu"))
    views = _views(setup.views)
    masks = _GlobalPatchMasks()
    ctx.predict_all = masks.predict_all(method, views[0])
    rank, local = collectives.rank(), GLOBAL_BATCH // collectives.world_size()
    share = rows or slice(rank * local, (rank + 1) * local)
    with masks.installed():
        # each process its own random stream, as the engine reseeds rank r > 0 (PICI's k-means seed)
        torch.manual_seed(50 + rank)
        method.on_epoch_start(setup.epoch, ctx)
        masks.rows = share
        terms = method.training_step([v[share] for v in views], torch.arange(GLOBAL_BATCH)[share], ctx)
    ctx.optimize("main", terms["loss"].sum())
    method.on_train_batch_end(ctx)
    loss_terms = {k: collectives.mean_over_ranks(v.detach().float().reshape(-1)) for k, v in terms.items()}
    return {"terms": loss_terms, "grads": ctx.grads, "params": {k: v.detach().clone() for k, v in method.state_dict().items()}}


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.save({name: one_step(name) for name in SETUPS}, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return spawn_ranks(_worker, WORLD, tmp_path_factory.mktemp("ddp_methods"))


@pytest.mark.parametrize("name", list(SETUPS))
def test_two_processes_give_the_global_batch_loss_and_gradients(two_ranks, name):
    assert not collectives.is_distributed()  # the reference: this process, the whole global batch
    reference = one_step(name)
    for rank, results in enumerate(two_ranks):
        got = results[name]
        assert got["terms"].keys() == reference["terms"].keys()
        for term, value in reference["terms"].items():
            assert _close(got["terms"][term], value), (rank, term, got["terms"][term], value)
        assert len(got["grads"]) == len(reference["grads"])
        for step, (mine, ref) in enumerate(zip(got["grads"], reference["grads"])):
            assert mine.keys() == ref.keys()
            for key in ref:
                assert _close(mine[key], ref[key]), (rank, step, key, (mine[key] - ref[key]).abs().max())
        # after the step (and HTCN's EMA), every rank holds the one-process weights and buffers
        # (DCSM's epoch clusters, PICI's pseudo-labels: rank 0's k-means, broadcast)
        for key, value in reference["params"].items():
            assert torch.equal(got["params"][key], value) if not value.is_floating_point() else _close(got["params"][key], value), (
                rank,
                key,
            )
    # not vacuous: one process on rank 0's half alone (no global batch) gets other gradients
    half = one_step(name, rows=slice(0, GLOBAL_BATCH // WORLD))["grads"][-1]
    assert any(not _close(half[k], v) for k, v in reference["grads"][-1].items())


@pytest.mark.parametrize("model", ["htcn", "dcsm", "pici", "vtcc", "mfavbs"])
def test_image_methods_accept_hardware_ddp(model):
    from clusterbench.config_check import check_ddp_contract

    check_ddp_contract(compose_config([f"model={model}", "hardware=ddp"]))


def test_a_method_with_per_process_losses_refuses_ddp_in_one_line():
    from clusterbench.config_check import check_ddp_contract
    from clusterbench.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        check_ddp_contract(compose_config(["model=mflvc", "dataset=handwritten", "hardware=ddp"]))
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        "hardware=ddp: MFLVC computes its losses on each process's share of the batch, not the global batch; "
        "train it on one process (hardware=gpu or cpu)"
    )
