"""DDP (hardware=ddp): 2 CPU processes (gloo, torch.multiprocessing spawn), each with half of
a global batch, give the loss and the gradients of 1 process with the whole global batch, to
1e-5, for CC and SDCIB; evaluation gathers every sample once, in order."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import ROOT, compose_config

from clusterbench.engine import distributed as ddp
from clusterbench.engine.loop import _StepContext, build_method, build_optimizers, predict_outputs
from clusterbench.methods.base import DataInfo

WORLD = 2
GLOBAL_BATCH = 8
SETUPS = {
    # CC on 3x16x16 images through the small CNN (two augmented views)
    "cc": (
        ["model=cc", "backbone.widths=[4,8]", "backbone.out_dim=16", "model.feature_dim=8", "hardware=cpu"],
        DataInfo(dims=(3 * 16 * 16,), n_clusters=3, n_samples=GLOBAL_BATCH, image_shape=(3, 16, 16)),
    ),
    # SDCIB (paper variant: shuffled negatives for the critics, one critic step first) on 2 modalities
    "sdcib": (
        ["backbone.hidden_dims=[12,6]", "model.critic_hidden_dims=[8]", "hardware=cpu"],
        DataInfo(dims=(5, 7), n_clusters=3, n_samples=GLOBAL_BATCH),
    ),
}


def _views(name: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    if name == "cc":
        return [torch.rand(GLOBAL_BATCH, 3, 16, 16, generator=g) for _ in range(2)]
    return [torch.randn(GLOBAL_BATCH, d, generator=g) for d in SETUPS[name][1].dims]


class _RecordingContext(_StepContext):
    """The engine's step context (gradients averaged over ranks), keeping every step's gradients."""

    def __init__(self, optimizers, device) -> None:
        super().__init__(optimizers, device)
        self.grads: list[dict[str, torch.Tensor]] = []

    def optimize(self, group, loss):
        super().optimize(group, loss)
        named = {}
        for g in self.optimizers[group].param_groups:
            for i, p in enumerate(g["params"]):
                if p.grad is not None:
                    named[f"{group}.{len(named)}.{i}"] = p.grad.detach().clone()
        self.grads.append(named)


def one_step(name: str, rows: slice | None = None) -> dict:
    """One training step (with the method's own extra critic steps) on this process's share of
    the global batch: its loss terms (mean over ranks) and all gradients (averaged over ranks)."""
    overrides, info = SETUPS[name]
    cfg = compose_config(overrides)
    torch.manual_seed(0)
    method = build_method(cfg, info)
    # eval mode: BatchNorm running statistics and no sampling noise, so that the only difference
    # between the runs is how the batch is spread over processes
    method.eval()
    optimizers = build_optimizers(method, cfg.trainer)
    ctx = _RecordingContext(optimizers, torch.device("cpu"))
    rank, world = ddp.rank(), ddp.world_size()
    local = GLOBAL_BATCH // world
    share = rows or slice(rank * local, (rank + 1) * local)
    views = [v[share] for v in _views(name)]
    index = torch.arange(GLOBAL_BATCH)[share]
    torch.manual_seed(1234)  # the same shuffled negatives (drawn over the global batch) everywhere
    terms = method.training_step(views, index, ctx)
    ctx.optimize("main", terms["loss"].sum())
    loss_terms = {k: ddp.mean_over_ranks(v.detach().float().reshape(-1)) for k, v in terms.items()}
    return {"terms": loss_terms, "grads": ctx.grads, "params": {k: v.detach().clone() for k, v in method.state_dict().items()}}


class _Inputs:
    """predict_outputs' view of a data set: 7 samples whose prediction is their index."""

    n_samples = 7

    def eval_batch(self, index):
        return [index.float()[:, None]]


class _Hardware:
    device = torch.device("cpu")

    def autocast(self):
        import contextlib

        return contextlib.nullcontext()


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {name: one_step(name) for name in SETUPS}
        method = torch.nn.Linear(1, 1)
        results["predicted"] = predict_outputs(method, _Inputs(), 3, _Hardware(), fn=lambda views, index: views[0])
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(worker, world: int, out) -> list:
    """Runs `worker(rank, world, port, out)` in `world` processes; returns each rank's saved rank{r}.pt."""
    try:
        mp.spawn(worker, args=(world, _free_port(), str(out)), nprocs=world, join=True)
    except mp.ProcessExitedException:
        # gloo's threads now and then abort a process at its exit, after its results are saved
        # (seen once in ~10 runs); a failure before that leaves a rank's file missing
        if not all((out / f"rank{r}.pt").exists() for r in range(world)):
            raise
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return spawn_ranks(_worker, WORLD, tmp_path_factory.mktemp("ddp"))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(SETUPS))
def test_two_processes_give_the_global_batch_loss_and_gradients(two_ranks, name):
    assert not ddp.is_distributed()  # the reference: this process, the whole global batch
    reference = one_step(name)
    for rank, results in enumerate(two_ranks):
        got = results[name]
        for term, value in reference["terms"].items():
            assert _close(got["terms"][term], value), (rank, term, got["terms"][term], value)
        assert len(got["grads"]) == len(reference["grads"])  # SDCIB: a critic step, then the main step
        for step, (mine, ref) in enumerate(zip(got["grads"], reference["grads"])):
            assert mine.keys() == ref.keys()
            for key in ref:
                assert _close(mine[key], ref[key]), (rank, step, key, (mine[key] - ref[key]).abs().max())
        # after the optimiser steps, every rank holds the one-process weights
        for key, value in reference["params"].items():
            assert _close(got["params"][key], value), (rank, key)
    # not vacuous: one process on rank 0's half alone (no global batch) gets other gradients
    half = one_step(name, rows=slice(0, GLOBAL_BATCH // WORLD))["grads"][-1]
    assert any(not _close(half[k], v) for k, v in reference["grads"][-1].items())


def test_gather_is_the_identity_in_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert ddp.gather(x) is x and ddp.gather_nograd(x) is x
    assert ddp.world_size() == 1 and ddp.rank() == 0 and ddp.is_main_process()


def test_evaluation_gathers_every_sample_once_in_order(two_ranks):
    for results in two_ranks:
        assert results["predicted"].flatten().tolist() == [0, 1, 2, 3, 4, 5, 6]


def test_shard_pads_only_after_the_last_sample(monkeypatch):
    monkeypatch.setattr(ddp, "world_size", lambda: 4)
    shares = []
    for r in range(4):
        monkeypatch.setattr(ddp, "rank", lambda r=r: r)
        shares.append(ddp.shard(9))
    assert [real for _, real in shares] == [3, 3, 3, 0]
    flat = torch.cat([index for index, _ in shares])
    assert flat[:9].tolist() == list(range(9)) and len(flat) == 12


def test_ddp_hardware_outside_torchrun_is_one_line(tiny_config, tmp_path, monkeypatch):
    from clusterbench.errors import ConfigError
    from clusterbench.train import run

    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="hardware=ddp: start the run with torchrun"):
        run(tiny_config("hardware=ddp", "hardware.device=cpu"), tmp_path)


@pytest.mark.slow  # two training processes under torchrun: about a minute on 2 busy cores
def test_torchrun_two_processes_write_one_run_folder(tmp_path):
    outputs = tmp_path / "outputs"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "clusterbench.train",
            "hardware=ddp",
            "hardware.device=cpu",
            "hardware.num_threads=1",
            "backbone.hidden_dims=[16]",
            "model.critic_hidden_dims=[8]",
            "trainer.max_epochs=2",
            "trainer.batch_size=200",
            "trainer.progress=false",
            f"paths.log_dir={outputs}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folders = list((outputs / "runs").iterdir())
    assert len(folders) == 1, folders  # both ranks named the same folder
    results = json.loads((folders[0] / "results.json").read_text())
    assert results["status"] == "finished" and results["hardware"]["world_size"] == 2
    assert (folders[0] / ".hydra" / "config.yaml").exists()
    rows = (folders[0] / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs, written once (rank 0)
    assert result.stdout.count("ACC") == 2  # each rank prints its summary line


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "clusterbench.train", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


@pytest.mark.slow  # three torchrun launches
def test_torchrun_resume_is_bit_exact(tmp_path):
    """A DDP run resumed from its epoch-2 checkpoint ends like the uninterrupted one: rank 0's
    streams come from the checkpoint, rank 1 re-derives its own from (seed, rank, epoch)."""
    common = [
        "hardware=ddp",
        "hardware.device=cpu",
        "hardware.num_threads=1",
        "backbone.hidden_dims=[16]",
        "model.critic_hidden_dims=[8]",
        "trainer.max_epochs=3",
        "trainer.checkpoint_every=1",
        "trainer.checkpoint_interval_s=0",
        "trainer.batch_size=200",
        "trainer.progress=false",
        "trainer.save_embedding=false",
        "trainer.checkpoint_when_done=full",
    ]
    full = tmp_path / "full"
    first = _torchrun(*common, f"hydra.run.dir={full}")
    assert first.returncode == 0, first.stderr[-3000:]
    expected = json.loads((full / "results.json").read_text())
    (full / "results.json").unlink()
    (full / "checkpoints" / "previous.pt").replace(full / "checkpoints" / "last.pt")  # back to epoch 2
    again = _torchrun(f"resume={full}", f"hydra.run.dir={tmp_path / 'resume_log'}")
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads((full / "results.json").read_text())
    assert resumed["metrics"] == expected["metrics"]
    assert resumed["last_epoch_metrics"] == expected["last_epoch_metrics"]
