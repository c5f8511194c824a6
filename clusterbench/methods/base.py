"""The small contract between a clustering method and the one training loop (engine/loop.py).

A method is an nn.Module built by Hydra from `configs/model/<name>.yaml` with three extra
keyword arguments supplied by the engine: `data_info` (DataInfo: dims, clusters, samples),
`backbone` (the backbone config node, to instantiate per view with its input width) and `loss`
(the instantiated `loss` group object, or None).

The engine calls:
- `param_groups()` -> {group name: parameters}; each group gets its own optimiser (SDCIB's
  MINE critics are a second group). Empty for methods that do not train.
- `on_fit_start(views)` once, with all samples on the training device (k-means fits here).
- `on_epoch_start(epoch, ctx)` before each epoch's batches; `ctx.predict_all(fn)` there runs
  `fn(views, index)` over every sample's unaugmented view (eval mode, then train mode again).
- `training_step(views, index, ctx)` -> dict of named scalar tensors; the key "loss" is
  minimised by the "main" optimiser, the other keys are logged. A method may take extra
  optimiser steps itself through `ctx.optimize(group, loss)` (critic updates, Algorithm 1).
- `on_train_batch_end(ctx)` after each main optimiser step (HTCN's EMA target update);
  `unlabeled_step(views, ctx)`, optional, on samples that are never evaluated (STL-10's
  unlabeled split), at the start of every epoch.
- Image methods: with an `augment` config the views of a training step are the augmented
  views of a batch of images (engine/inputs.py) and evaluation's single view is the
  unaugmented image; `data_info.image_shape` is their (C, H, W).
- `predict(views, index)` per evaluation batch in eval mode -> tensor with the batch first.
  `index` (int64, on the device) holds the batch's sample indices into the full data that
  `on_fit_start` saw, so transductive methods (spectral clustering has no out-of-sample rule)
  can return what they assigned to those samples at fit time.
- `assign(outputs)` on the concatenated predictions -> (hard labels (N,), soft (N, K) or None).
- optional, for methods that produce several candidate partitions (KM and Ncuts: one per
  view): `candidates(outputs)` -> {name: hard labels (N,)} (empty, the default, means one
  partition, from `assign`). The engine evaluates every candidate, writes each one's metrics
  into results.json and keeps one by the rule in `candidate_selection`: "best_acc" (highest
  ACC: reads the labels, so results.json flags it), an int (the candidate at that position,
  label-free) or the name of a label-free score that the method gives per candidate in
  `candidate_scores()` (higher is better).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from hydra.utils import instantiate
from torch import nn

from clusterbench.errors import ConfigError


def term_weights(weights: dict[str, float] | None, terms: tuple[str, ...], what: str = "") -> dict[str, float]:
    """`loss.weights` of a method's named loss terms: every term's multiplier (1 unless given);
    an unknown name is a one-line ConfigError (`what` names the method, e.g. "SDCIB ")."""
    weights = dict(weights or {})
    unknown = set(weights) - set(terms)
    if unknown:
        raise ConfigError(f"loss.weights.{sorted(unknown)[0]}: unknown {what}term (terms: {', '.join(terms)})")
    return {name: float(weights.get(name, 1.0)) for name in terms}


@dataclass(frozen=True)
class DataInfo:
    dims: tuple[int, ...]
    n_clusters: int
    n_samples: int
    # (C, H, W) of the image views a step sees (after augmentation's resize); None: feature views
    image_shape: tuple[int, int, int] | None = None

    @property
    def n_views(self) -> int:
        return len(self.dims)

    @classmethod
    def of(cls, data, image_shape: tuple[int, int, int] | None = None) -> "DataInfo":
        """What a method needs to know of a loaded dataset (`data.dims`, `n_clusters`, `n_samples`)."""
        return cls(
            dims=tuple(int(d) for d in data.dims), n_clusters=int(data.n_clusters), n_samples=int(data.n_samples), image_shape=image_shape
        )


class StepContext(Protocol):
    epoch: int
    step: int
    device: torch.device

    def optimize(self, group: str, loss: torch.Tensor) -> None: ...

    def apply_gradients(self, group: str) -> None: ...

    def predict_all(self, fn) -> torch.Tensor | None: ...


class ClusteringMethod(nn.Module):
    # Vectorised sweeps (engine/ensemble.py): a method that accepts `members=G` keeps G
    # independent copies in parameters and buffers with a leading member dimension (a plain
    # run is G = 1), returns loss terms of shape (G,), and names the model keys that may differ
    # between members (held in buffers, e.g. SDCIB's alpha and beta). Empty: not vectorisable.
    member_keys: tuple[str, ...] = ()
    members: int = 1
    # predict on all samples in one batch (a method whose predictions use batch statistics)
    full_batch_predict: bool = False
    # DDP contract: True when the losses see the global batch under hardware=ddp (gathered
    # across processes, engine/distributed.py); False makes hardware=ddp refuse the method
    global_batch_losses: bool = True

    def embed(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor | None:
        """The representation the clusters are read from, batch first (members second for a
        member-batched method), saved as embedding.npz for report's t-SNE; None: no such thing."""
        return None

    def member_outputs(self, outputs: torch.Tensor) -> list[torch.Tensor]:
        """Splits the concatenated predictions into one tensor per member, for `assign`."""
        return [outputs]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        params = [p for p in self.parameters() if p.requires_grad]
        return {"main": params} if params else {}

    @property
    def trainable(self) -> bool:
        return bool(self.param_groups())

    def on_fit_start(self, views: list[torch.Tensor]) -> None:
        pass

    def on_epoch_start(self, epoch: int, ctx: StepContext) -> None:
        """Before each epoch's batches; `ctx.predict_all(fn)` runs `fn(views, index)` on every
        sample's unaugmented view in eval mode (e.g. features for a k-means over the whole set)."""

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def on_train_batch_end(self, ctx: StepContext) -> None:
        """After each optimiser step of the main group (EMA target updates go here)."""

    # Optional `unlabeled_step(views, ctx)` -> loss terms, for samples without evaluation
    # (STL-10's unlabeled split): when a method defines it and the data have such samples,
    # the engine runs it over them at the start of every epoch (CC's instance-only steps).
    unlabeled_step = None

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def assign(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if outputs.dim() == 1:
            return outputs.long(), None
        return outputs.argmax(dim=-1), outputs

    # how the engine picks one of several candidate partitions (see the module docstring)
    candidate_selection: str | int = "best_acc"

    def candidates(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def candidate_scores(self) -> dict[str, float]:
        return {}


# --- parts the image methods share ----------------------------------------------------------------


def build_backbone(backbone, data_info: DataInfo, model: str) -> nn.Module:
    """The `backbone` config instantiated for the data's image channels."""
    if data_info.image_shape is None:
        raise ConfigError(f"model={model} trains on augmented image views: use an image dataset with an augmentation (augment=cc)")
    if backbone is None:
        raise ConfigError(f"model={model} needs an image backbone (backbone=small_cnn | resnet18 | resnet34 | resnet50)")
    net = instantiate(backbone, in_channels=data_info.image_shape[0])
    if not isinstance(getattr(net, "out_dim", None), int):
        raise ConfigError(f"backbone={backbone.get('_target_')}: not an image backbone (it has no out_dim)")
    return net


def check_views(views: list[torch.Tensor], expected: int, model: str) -> None:
    if len(views) != expected:
        raise ConfigError(f"model={model} needs {expected} augmented views per image, the augmentation gives {len(views)}")


# --- parts the multi-stage methods share ----------------------------------------------------------


class StageSchedule:
    """Named training stages by epoch count (PICI: pretrain / train / boost; MFLVC, DealMVC:
    pretrain / contrastive / tune): `stage_epochs` gives each stage's epochs, they must sum to
    trainer.max_epochs (`max_epochs`, None: not checked), and `stage_of(epoch)` (1-based) names
    the stage an epoch belongs to. A bad list is one line naming model.stage_epochs."""

    def __init__(self, names: tuple[str, ...], stage_epochs, max_epochs: int | None) -> None:
        epochs = [int(e) for e in (stage_epochs or [])]
        if len(epochs) != len(names) or min(epochs) < 0:
            raise ConfigError(f"model.stage_epochs={epochs}: expected {len(names)} epoch counts ({', '.join(names)}), each >= 0")
        if max_epochs is not None and sum(epochs) != int(max_epochs):
            raise ConfigError(f"model.stage_epochs={epochs} sums to {sum(epochs)} but trainer.max_epochs={max_epochs}: they must agree")
        self.names = tuple(names)
        self.epochs = epochs
        self.ends = [sum(epochs[: i + 1]) for i in range(len(epochs))]

    def stage_of(self, epoch: int) -> str:
        for stage, end in zip(self.names, self.ends):
            if epoch <= end:
                return stage
        return self.names[-1]
