"""Objects the engine builds from config: the method, its optimisers and their schedules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from clusterbench.errors import ClusterbenchError
from clusterbench.methods.base import ClusteringMethod, DataInfo


def _raise_our_error(err: InstantiationException) -> None:
    """Raises the one-line ClusterbenchError that Hydra's wrapping hides, if there is one."""
    cause = err.__cause__
    while cause is not None:
        if isinstance(cause, ClusterbenchError):
            raise cause from None
        cause = cause.__cause__


def build(node, *args, **kwargs):
    """hydra.utils.instantiate that lets our one-line errors through unwrapped."""
    try:
        return instantiate(node, *args, **kwargs)
    except InstantiationException as err:
        _raise_our_error(err)
        raise


def build_method(cfg: DictConfig, info: DataInfo, **extra) -> ClusteringMethod:
    """The `model` of a composed config, with its backbone config and built `loss` object."""
    loss = build(cfg.loss, _convert_="all") if "_target_" in cfg.loss else None
    backbone = cfg.backbone if "_target_" in cfg.backbone else None
    # objects built here (not config) are passed to the partial, so Hydra does not convert them
    make_method = build(cfg.model, _partial_=True, _recursive_=False, _convert_="all")
    try:
        return make_method(data_info=info, backbone=backbone, loss=loss, **extra)
    except InstantiationException as err:  # the method builds its backbone with instantiate
        _raise_our_error(err)
        raise


def build_optimizers(method: ClusteringMethod, trainer_cfg: DictConfig) -> dict[str, torch.optim.Optimizer]:
    optimizers = {}
    for group, params in method.param_groups().items():
        spec = trainer_cfg.optimizers.get(group, trainer_cfg.optimizer)
        optimizers[group] = build(spec)(params)
    return optimizers


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> float:
    """`trainer.scheduler.name=cosine`: the learning rate's factor before optimiser step
    `step` (0-based): linear warmup from 1/warmup_steps to 1 over the first `warmup_steps`
    steps, then a cosine from 1 down to `min_lr_ratio` at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_schedulers(
    optimizers: dict[str, torch.optim.Optimizer], trainer_cfg: DictConfig, steps_per_epoch: int, max_epochs: int
) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
    """One per-step learning-rate schedule per optimiser (`trainer.scheduler`), stepped after
    every step of the main group; none for `name: none`. Their states go into the checkpoint."""
    spec = trainer_cfg.get("scheduler") or {}
    if spec.get("name", "none") == "none":
        return {}
    warmup = int(round(float(spec.get("warmup_epochs", 0)) * steps_per_epoch))
    total = max_epochs * steps_per_epoch
    ratio = float(spec.get("min_lr_ratio", 0.0))
    return {
        group: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total, ratio))
        for group, optimizer in optimizers.items()
    }


@dataclass
class TrainedRun:
    """A finished run rebuilt from its checkpoint: config, data, model inputs, trained method."""

    cfg: DictConfig
    data: Any
    inputs: Any
    method: ClusteringMethod


def load_trained(run_dir: str | Path, checkpoint: str = "last.pt") -> TrainedRun:
    """Rebuilds a run's data, inputs and method (on the CPU, in eval mode) from
    `run_dir`/checkpoints/`checkpoint`: what the diagnostics in scripts/ start from.
    CheckpointError (one line, naming the file) when it is missing or damaged."""
    from clusterbench.engine.checkpoint import read_checkpoint
    from clusterbench.engine.inputs import build_inputs

    state = read_checkpoint(Path(run_dir) / "checkpoints" / checkpoint, resume=False)
    cfg = OmegaConf.create(state["config"])
    data = build(cfg.dataset)
    augment = build(cfg.augment) if cfg.get("augment") else None
    inputs = build_inputs(data, augment, torch.device("cpu"), False)
    method = build_method(cfg, DataInfo.of(data, inputs.image_shape))
    method.load_state_dict(state["method"])
    return TrainedRun(cfg, data, inputs, method.eval())
