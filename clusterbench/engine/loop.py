"""The one training loop: every method runs through `fit`.

A fit is a `FitRun` with named phases, called in this order by `FitRun.fit`:
setup (hardware, data, method, optimisers; values checked against the data), restore (resume
from a checkpoint), train_epoch, evaluate, checkpoint (per epoch, as configured), finish
(results.json). A vectorised sweep fits G members at once. What is per member (claiming the
folders, loggers, evaluation records and predictions.npz, checkpoint slices, results.json) is
one `Members` object (engine/ensemble.py): a phase here calls one of its methods and never
loops over members; a plain run is a `Members` of one. The command's path to `FitRun.fit` is
four calls (engine/jobs.py).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from clusterbench.console import say
from clusterbench.engine import distributed as ddp
from clusterbench.engine.build import build, build_method, build_optimizers, build_schedulers
from clusterbench.engine.checkpoint import DiskWriteError, capture_rng, disk_write_message, restore_rng, seed_everything, storage_error
from clusterbench.engine.ensemble import CHECKPOINT, MONITORED, Members, build_members, clip_grad_norm, release_memory
from clusterbench.engine.inputs import build_inputs
from clusterbench.engine.results import LABEL_SELECTED, SELECTION_RULES, finished_results
from clusterbench.engine.resume import checkpoint_to_continue, optimizers_restarted
from clusterbench.engine.throughput import RunClock, epoch_samples
from clusterbench.errors import ConfigError, TrainingError
from clusterbench.methods.base import ClusteringMethod, DataInfo
from clusterbench.metrics import collapse_stats, evaluate_clustering, label_free_scores, score_sample

log = logging.getLogger(__name__)

__all__ = [
    "fit",
    "fit_members",
    "build",
    "build_method",
    "build_optimizers",
    "predict_outputs",
    "CHECKPOINT",
    "MONITORED",
    "LABEL_SELECTED",
    "SELECTION_RULES",
]

AUGMENT_SEED_OFFSET = 1_000_003  # the augmentation stream's seed is seed + this
# DDP: rank r > 0 reseeds its torch and augmentation streams at every epoch from
# (seed, rank, epoch), so its noise and views differ from rank 0's and a resume re-derives them;
# rank 0 keeps the single-process streams (engine/distributed.py)
RANK_SEED_OFFSET = 7_919_993


class _StepContext:
    """Passed to `training_step`: lets a method take extra optimiser steps (critics)."""

    def __init__(
        self, optimizers: dict[str, torch.optim.Optimizer], device: torch.device, grad_clip: float | None = None, members: int = 1
    ) -> None:
        self.optimizers = optimizers
        self.device = device
        self.grad_clip = grad_clip
        self.members = members
        self.epoch = 0
        self.step = 0
        # set by the loop: fn over every sample's unaugmented view, in eval mode, concatenated in
        # sample order; train mode is restored afterwards (PICI's k-means over all samples)
        self.predict_all = None

    def optimize(self, group: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[group]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.apply_gradients(group)

    def apply_gradients(self, group: str) -> None:
        """Steps `group` on the gradients it already holds (e.g. those the main loss's backward
        left on a critic, as SDCIB's released code updates its critics)."""
        optimizer = self.optimizers[group]
        params = [p for g in optimizer.param_groups for p in g["params"]]
        # DDP: the mean gradient over ranks (a no-op in one process), see engine/distributed.py
        ddp.average_gradients(params)
        if self.grad_clip is not None:
            clip_grad_norm(params, float(self.grad_clip), self.members)
        optimizer.step()


def _predict_in_eval_mode(method: ClusteringMethod, inputs, batch_size: int, hardware, fn) -> torch.Tensor | None:
    """`ctx.predict_all(fn)`: `fn` on every sample (predict_outputs), then train mode again."""
    outputs = predict_outputs(method, inputs, batch_size, hardware, fn)
    method.train()
    return outputs


@torch.no_grad()
def predict_outputs(method: ClusteringMethod, inputs, batch_size: int, hardware, fn=None) -> torch.Tensor | None:
    """`method.predict` (or `fn`, e.g. `method.embed`) on every sample in eval mode, batch by
    batch (`inputs.eval_batch`: unaugmented; with the batch's sample indices, for transductive
    methods), concatenated in sample order."""
    fn = fn or method.predict
    method.eval()
    n = inputs.n_samples
    if ddp.is_distributed():
        ddp.broadcast_buffers(method)  # one model: rank 0's BatchNorm statistics on every rank
        # DDP: each rank predicts its padded share; the gathered shares, in rank order and cut
        # to n rows, are every sample once in sample order (the padding duplicates dropped)
        indices, _ = ddp.shard(n)
        indices = indices.to(hardware.device)
    else:
        indices = torch.arange(n, device=hardware.device)
    outputs = []
    with hardware.autocast():
        for start in range(0, len(indices), batch_size):
            index = indices[start : start + batch_size]
            out = fn(inputs.eval_batch(index), index)
            if out is None:
                return None
            outputs.append(out.float())
    outputs = torch.cat(outputs)
    if ddp.is_distributed():
        # outputs are batch-first (members, if any, come after the batch dimension)
        outputs = ddp.gather_nograd(outputs, dim=0)[:n]
    return outputs


def _score(labels: np.ndarray | None, pred: np.ndarray, n_clusters: int, sample=None) -> dict[str, Any]:
    """ACC, NMI, ARI, purity against the labels; without labels (None), the label-free scores of
    metrics.label_free_scores on `sample` = (row indices, their features) of metrics.score_sample.
    The collapse monitor either way."""
    if labels is None:
        index, features = sample
        metrics = label_free_scores(features, pred[index], n_clusters)
    else:
        metrics = evaluate_clustering(labels, pred)
    metrics.update(collapse_stats(pred, n_clusters))
    return metrics


def choose_candidate(rule: str | int, metrics: dict[str, dict[str, Any]], scores: dict[str, float]) -> tuple[str, bool]:
    """(name of the kept candidate partition, whether choosing it read the labels); see methods/base.py."""
    names = list(metrics)
    if rule == "best_acc":
        if "acc" not in metrics[names[0]]:
            raise ConfigError("model.view_selection=best_acc reads the labels, and the data have none: choose a label-free rule")
        return max(names, key=lambda name: metrics[name]["acc"]), True
    if isinstance(rule, int) and not isinstance(rule, bool):
        if not 0 <= rule < len(names):
            raise ConfigError(f"model.view_selection={rule}: there are {len(names)} candidates (0..{len(names) - 1})")
        return names[rule], False
    if set(scores) != set(names):
        raise ConfigError(f"model.view_selection={rule!r}: the method gives no such label-free score for its candidates")
    return max(names, key=lambda name: scores[name]), False


def evaluate_candidates(
    method, outputs: torch.Tensor, labels: np.ndarray | None, n_clusters: int, sample=None
) -> tuple[dict[str, Any], np.ndarray, dict[str, Any] | None]:
    """Metrics and hard labels of the partition `method.assign` makes of `outputs` (one
    member's predictions for all samples); for a method with several candidate partitions,
    those of the one kept by `method.candidate_selection`, and a record of all. Without labels
    (None), label-free scores on `sample` (see _score)."""
    parts = method.candidates(outputs)
    if not parts:
        pred = method.assign(outputs)[0].cpu().numpy()
        return _score(labels, pred, n_clusters, sample), pred, None
    preds = {name: hard.cpu().numpy() for name, hard in parts.items()}
    table = {name: _score(labels, pred, n_clusters, sample) for name, pred in preds.items()}
    scores = method.candidate_scores()
    rule = method.candidate_selection
    chosen, uses_labels = choose_candidate(rule, table, scores)
    metrics = dict(table[chosen])
    for name, value in scores.items():
        table[name][str(rule)] = value
    return metrics, preds[chosen], {"rule": rule, "chosen": chosen, "uses_labels": uses_labels, "candidates": table}


def check_data(cfg: DictConfig, data, trainable: bool) -> None:
    """What can only be checked once the data are loaded, each as one line naming the key and
    value: the number of clusters against the samples, a batch of one sample, one class."""
    n, k = int(data.n_samples), int(data.n_clusters)
    if k < 2 and data.labels is not None and cfg.dataset.get("n_clusters") is None:
        # the number of clusters came from the labels, not from the user: name the labels
        labels = cfg.dataset.get("labels") or data.source or "the dataset file"
        names = getattr(data, "class_names", None)
        classes = f"one class, {names[0]!r}" if names else "one class"
        raise ConfigError(
            f"dataset '{data.name}': its labels ({labels}) hold {classes}, and the number of clusters is "
            "taken from them: give labels with at least 2 classes, or set dataset.n_clusters (at least 2)"
        )
    if k < 2:
        raise ConfigError(f"dataset.n_clusters={k}: clustering needs at least 2 clusters (dataset '{data.name}')")
    if k > n:
        raise ConfigError(f"dataset.n_clusters={k}: more clusters than samples ({n} in dataset '{data.name}')")
    if data.labels is None and cfg.trainer.selection in LABEL_SELECTED:
        raise ConfigError(f"trainer.selection={cfg.trainer.selection}: reads the labels, and dataset '{data.name}' has none")
    if data.labels is not None and int(data.n_classes) < 2:
        say(f"warning: dataset '{data.name}': its labels hold one class, so ACC, NMI and ARI say nothing about the clusters", error=True)
    if not trainable:
        return
    batch = min(int(cfg.trainer.batch_size), n)
    if batch < 2:
        raise ConfigError(f"trainer.batch_size={cfg.trainer.batch_size}: a training batch needs at least 2 samples")
    if not cfg.trainer.drop_last and n % batch == 1:
        raise ConfigError(
            f"trainer.batch_size={batch} with trainer.drop_last=false leaves a last batch of 1 sample ({n} samples); "
            "set trainer.drop_last=true or another batch size"
        )


def _accumulate(sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], prefix: str = "", scale: float = 1.0) -> None:
    """Adds a step's loss terms (scaled: the epoch mean) to the running sums, on the device."""
    for name, value in terms.items():
        value = value.detach().float().reshape(-1) * scale
        key = prefix + name
        sums[key] = sums[key] + value if key in sums else value


def _due(epoch: int, every: int, last: int) -> bool:
    return epoch % every == 0 or epoch == last


def checkpoint_due(epoch: int, trainer, last: int, since_last_s: float) -> bool:
    """Every `checkpoint_every` epochs and at the last, but at most once in
    `checkpoint_interval_s` seconds (0, or epoch copies asked for: every k epochs): a full
    checkpoint of a multi-view model is ~100 MB, and at hundreds of sub-second epochs writing
    one every 5 epochs took a third of a DealMVC run (docs/benchmark.md)."""
    if not _due(epoch, trainer.checkpoint_every, last):
        return False
    interval = 0 if trainer.keep_checkpoints else trainer.get("checkpoint_interval_s", 0)  # absent from older saved configs
    return epoch == last or since_last_s >= interval


class FitRun:
    """One fit of one run, or of G vectorised members (one batched model, one folder each)."""

    def __init__(self, cfgs: list[DictConfig], run_dirs: list[Path], metas: list[dict[str, Any]]) -> None:
        self.started = self.last_checkpoint = time.perf_counter()
        self.cfg = cfgs[0]  # every setting but the member keys is shared
        self.trainer = self.cfg.trainer
        # phase times, samples and FLOPs: results.json's throughput, profile.json (engine/throughput.py)
        self.clock = RunClock(profile=bool(self.trainer.get("profile", False)))
        self.resumed = bool(self.cfg.get("resume"))
        self.members = Members(cfgs, run_dirs, metas)  # folders, loggers, records (engine/ensemble.py)
        self.start_epoch = 0
        self.previous_wall = 0.0
        # epochs after which a resume restarted the optimisers (no optimiser state was kept)
        self.optimizers_restarted: list[int] = []

    # --- phases --------------------------------------------------------------------------------

    def setup(self) -> None:
        """Hardware, data, method, optimisers: everything a first epoch needs."""
        cfg, trainer, n_members = self.cfg, self.trainer, len(self.members)
        self.hardware = hardware = build(cfg.hardware)
        hardware.setup()
        self.clock.attach(hardware)
        self.rank, self.world = ddp.rank(), ddp.world_size()
        self.main_process = self.rank == 0  # only rank 0 writes into the run folders
        if self.world > 1 and not getattr(hardware, "distributed", False):
            raise ConfigError(f"started on {self.world} processes (torchrun) without hardware=ddp: add hardware=ddp")
        if self.world > 1:
            if n_members > 1:
                raise ConfigError("hardware=ddp trains one run; a vectorised sweep (+launcher=vectorized) cannot use it")
            if not trainer.drop_last or int(trainer.batch_size) % self.world:
                raise ConfigError(
                    f"trainer.batch_size={trainer.batch_size} with hardware=ddp on {self.world} processes: the global batch must "
                    f"divide by {self.world} and trainer.drop_last must be true (every rank gets an equal share)"
                )
        if self.resumed and n_members > 1:
            raise ConfigError("resume= continues one run folder; resume each member of a vectorised sweep on its own")
        self.generator = seed_everything(cfg.seed)
        # augmentation draws its per-sample parameters on the training device (no host copies in
        # the step), from its own stream derived from the seed
        self.augment_generator = torch.Generator(device=hardware.device).manual_seed(int(cfg.seed) + AUGMENT_SEED_OFFSET)

        self.data = data = build(cfg.dataset)
        augment = build(cfg.augment) if cfg.get("augment") else None
        self.inputs = build_inputs(data, augment, hardware.device, hardware.channels_last)
        self.clock.watch_augmentation(self.inputs)
        self.n_clusters = int(data.n_clusters)
        self.info = DataInfo.of(data, self.inputs.image_shape)
        method = build_members(self.members.cfgs, build_method, self.info, self.generator, hardware.device).to(hardware.device)
        check_data(cfg, data, method.trainable)
        if hardware.channels_last:
            method = method.to(memory_format=torch.channels_last)
        if self.world > 1 and getattr(hardware, "sync_batchnorm", False):
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)  # replaces BatchNorm children in place
        self.method = method
        self.step_fn = hardware.maybe_compile(method.training_step)
        self.labels = data.labels.cpu().numpy() if data.labels is not None else None
        # without labels: the rows (and features) the label-free scores are computed on
        self.score_sample = (
            None if self.labels is not None else score_sample([data.images] if getattr(data, "images", None) is not None else data.views)
        )
        self.optimizers = build_optimizers(method, trainer)
        self.max_epochs = int(trainer.max_epochs) if method.trainable else 0
        # a G-member fit evaluates G models per row: its evaluation batches hold eval_batch_size
        # rows over all members, as one run's do (a paper-size SDCIB group of about 20 members,
        # evaluating 2000 rows at once, was OOM-killed at 24 GB); outputs do not depend on the batching in eval
        # mode, except for methods that predict with batch statistics (one batch of everything)
        self.eval_batch = self.info.n_samples if method.full_batch_predict else max(1, int(trainer.eval_batch_size) // n_members)
        self.ctx = _StepContext(self.optimizers, hardware.device, trainer.get("grad_clip"), n_members)
        # not a bound method of this run: run -> ctx -> method -> run would be a reference cycle,
        # which keeps the whole fit (a vectorised group's GiB of weights and optimiser states)
        # alive after it returns, until Python's cyclic collector happens to run
        self.ctx.predict_all = functools.partial(_predict_in_eval_mode, method, self.inputs, self.eval_batch, hardware)

        n = self.info.n_samples
        self.batch_size = min(int(trainer.batch_size), n)
        if int(trainer.batch_size) > n and method.trainable and self.main_process:
            self.warn_whole_data_batch(int(trainer.batch_size), n)
        if self.batch_size % self.world:  # trainer.batch_size above n: the batch is the whole data set
            raise ConfigError(
                f"hardware=ddp on {self.world} processes: the global batch ({self.batch_size} samples) must divide by {self.world}"
            )
        self.local = self.batch_size // self.world  # DDP: this rank's share of each global batch
        self.n_batches = n // self.batch_size if trainer.drop_last else math.ceil(n / self.batch_size)
        self.repeats = int(trainer.repeats_per_batch)
        # STL-10's unlabeled split: instance-only steps before each epoch's labelled batches
        self.n_unlabeled = self.inputs.n_unlabeled if method.unlabeled_step is not None else 0
        self.unlabeled_batches = self.n_unlabeled // self.batch_size if self.n_unlabeled else 0
        steps_per_epoch = self.unlabeled_batches + self.n_batches * self.repeats
        self.epoch_samples = epoch_samples(n, self.batch_size, bool(trainer.drop_last), self.repeats, self.unlabeled_batches)
        self.schedulers = build_schedulers(self.optimizers, trainer, steps_per_epoch, self.max_epochs)

    def restore(self) -> None:
        """Resume: the method, optimisers, schedulers, RNG streams and evaluations of the
        checkpoint engine/resume.py picks (last.pt, or previous.pt when last.pt is damaged). A
        method without training (k-means) has no epochs to continue: it is fitted again, from
        the same seed."""
        member = self.members[0]
        if not self.method.trainable:
            say(
                f"resume={self.cfg.resume}: {member.meta.get('model') or 'the method'} is fitted in one step, nothing to continue; fitting it again (same seed)"
            )
            return
        state = checkpoint_to_continue(member.run_dir / CHECKPOINT, self.cfg.resume, self.data.checksum, self.max_epochs)
        self.method.load_state_dict(state["method"])
        self.optimizers_restarted = optimizers_restarted(state, self.cfg.resume)
        if "optimizers" in state:  # else the optimisers start afresh (a finished run's extendable checkpoint)
            for group, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][group])
        for group, scheduler in self.schedulers.items():
            if group in state.get("schedulers", {}):
                scheduler.load_state_dict(state["schedulers"][group])
        restore_rng(state["rng"], self.generator)
        if "augment_rng" in state:
            self.augment_generator.set_state(state["augment_rng"])
        self.start_epoch = state["epoch"]
        self.members.resume_evaluations(state["evaluations"])
        self.previous_wall = state["wall_time_s"]
        self.ctx.step = state["step"]
        log.info("resuming %s from epoch %d", member.run_dir, self.start_epoch)

    def train_epoch(self, epoch: int) -> list[dict[str, Any]]:
        """One epoch's optimiser steps; one row of mean loss terms per member."""
        method, ctx, inputs, hardware = self.method, self.ctx, self.inputs, self.hardware
        method.train()
        ctx.epoch = epoch
        if self.rank > 0:
            rank_seed = int(self.cfg.seed) + RANK_SEED_OFFSET * self.rank + epoch
            torch.manual_seed(rank_seed)
            self.augment_generator.manual_seed(rank_seed + AUGMENT_SEED_OFFSET)
        clock = self.clock
        with clock.detail("epoch_start"):
            method.on_epoch_start(epoch, ctx)
        sums: dict[str, torch.Tensor] = {}
        size = self.batch_size
        if self.unlabeled_batches:
            order = torch.randperm(self.n_unlabeled, generator=self.generator).to(hardware.device)
            for b in range(self.unlabeled_batches):
                index = self._share(order[b * size : (b + 1) * size])
                with hardware.autocast(), clock.detail("data"):
                    views = inputs.unlabeled_batch(index, self.augment_generator)
                with clock.step("unlabeled"), clock.detail("step"):
                    with hardware.autocast():
                        terms = method.unlabeled_step(views, ctx)
                    self._step(terms)
                _accumulate(sums, terms, prefix="unlabeled_", scale=1.0 / self.unlabeled_batches)
        order = torch.randperm(self.info.n_samples, generator=self.generator).to(hardware.device)
        for b in range(self.n_batches):
            index = self._share(order[b * size : (b + 1) * size])
            # DCSM trains each batch several times; every repetition draws fresh views
            for _ in range(self.repeats):
                with hardware.autocast(), clock.detail("data"):
                    views = inputs.train_batch(index, self.augment_generator)
                with clock.step("labelled"), clock.detail("step"):
                    with hardware.autocast():
                        terms = self.step_fn(views, index, ctx)
                    self._step(terms)
                _accumulate(sums, terms, scale=1.0 / (self.n_batches * self.repeats))
        # one host sync per epoch: a (terms + 1) x members table
        names = [*sums, "last_batch_loss"]
        table = torch.stack([*sums.values(), terms["loss"].detach().float().reshape(-1)])
        # DDP: the mean over ranks, so every rank logs and stops (non-finite) alike
        table = ddp.mean_over_ranks(table).t().tolist()
        return [{"epoch": epoch, **dict(zip(names, values))} for values in table]

    def stop_non_finite(self, epoch: int, rows: list[dict[str, Any]]) -> None:
        """A member whose epoch losses are not finite stops, its last good checkpoint kept."""
        self.members.stop_non_finite(epoch, rows, self.data, self.main_process)

    def evaluate(self, epoch: int, rows: list[dict[str, Any]]) -> None:
        """Every sample in eval mode; each member's metrics (and the collapse monitor) into its
        row, its evaluation record, and predictions.npz when the selection rule keeps it."""
        self.clock.evaluated(self.info.n_samples)
        outputs = self.method.member_outputs(predict_outputs(self.method, self.inputs, self.eval_batch, self.hardware))
        predictions = self.predictions if self.main_process else None
        self.members.record_evaluations(epoch, rows, outputs, self.evaluate_outputs, self.trainer.selection, predictions)

    def evaluate_outputs(self, outputs: torch.Tensor) -> tuple[dict[str, Any], np.ndarray, dict[str, Any] | None]:
        """One member's metrics, hard labels and candidates record (evaluate_candidates)."""
        return evaluate_candidates(self.method, outputs, self.labels, self.n_clusters, self.score_sample)

    def predictions(self, outputs: torch.Tensor, pred: np.ndarray, candidates, epoch: int) -> dict[str, Any]:
        """predictions.npz's arrays: y_true when there are labels; the soft assignments where
        the method gives them."""
        saved = {"y_pred": pred, "epoch": epoch}
        if self.labels is not None:
            saved["y_true"] = self.labels
        soft = None if candidates is not None else self.method.assign(outputs)[1]
        if soft is not None and soft.ndim == 2 and soft.shape[0] == len(pred):
            saved["probabilities"] = soft.float().cpu().numpy()
        return saved

    def checkpoint(self, epoch: int) -> None:
        """checkpoints/last.pt of every active member, as `trainer.checkpoint` says: full (what
        resume needs: optimisers, schedulers, RNG streams; previous.pt kept), weights (the
        method's state only) or none."""
        mode = self.trainer.get("checkpoint", "full")
        if not self.main_process or mode == "none":
            return
        method_state = self.method.state_dict()
        optimizer_states = {g: o.state_dict() for g, o in self.optimizers.items()} if mode == "full" else {}
        shared = {}
        if mode == "full":
            shared = {
                "step": self.ctx.step,
                "rng": capture_rng(self.generator),
                "augment_rng": self.augment_generator.get_state(),
                "schedulers": {g: s.state_dict() for g, s in self.schedulers.items()},
                "wall_time_s": self.previous_wall + time.perf_counter() - self.started,
                "dataset_checksum": self.data.checksum,
            }
        self.members.write_checkpoints(
            epoch, mode, method_state, optimizer_states, shared, self.optimizers_restarted, bool(self.trainer.keep_checkpoints)
        )

    def finish(self) -> list[dict[str, Any] | TrainingError]:
        """embedding.npz and results.json of every member that did not fail."""
        if self.trainer.save_embedding:
            with self.clock.phase("embedding"):
                self.save_embeddings(self.eval_batch)
        wall = round(self.previous_wall + time.perf_counter() - self.started, 3)
        extra: dict[str, Any] = {"throughput": self.clock.summary()}  # shared by a vectorised group's members, like the wall time
        if self.optimizers_restarted:  # results.json tells how the run was trained
            extra["optimizers_restarted_at"] = self.optimizers_restarted

        def results_of(member) -> dict[str, Any]:
            return finished_results(
                member.cfg, member.meta, member.evaluations, self.data, self.hardware, self.max_epochs, wall, member.config_sha256
            )

        profile = self.clock.profile_record if self.clock.profile else None
        when_done = self.trainer.get("checkpoint_when_done", "extendable")
        return self.members.finish(results_of, extra, self.main_process, profile, when_done)

    # --- the order of the phases -----------------------------------------------------------------

    def fit(self) -> list[dict[str, Any] | TrainingError]:
        self.claim_folders()
        try:
            self.setup()
            if self.resumed:
                self.restore()
            self.start_loggers()
            if self.main_process:
                say(self.start_line())
            self.clock.lap("setup")
            if self.start_epoch == 0:
                with self.clock.phase("fit_start"):
                    self.method.on_fit_start(self.inputs.full())
            ddp.broadcast_module(self.method)  # DDP: every rank starts from rank 0's weights
            show = self.trainer.progress and self.method.trainable  # k-means has no epochs to show
            bar = tqdm(total=self.max_epochs, initial=self.start_epoch, disable=not show, desc="train", unit="epoch", dynamic_ncols=True)
            try:
                for epoch in range(self.start_epoch + 1, self.max_epochs + 1):
                    with self.clock.phase("train"):
                        rows = self.train_epoch(epoch)
                    self.clock.trained(self.epoch_samples)
                    self.stop_non_finite(epoch, rows)
                    if not self.members.any_active:
                        break
                    if _due(epoch, self.trainer.eval_every, self.max_epochs):
                        with self.clock.phase("evaluation"):
                            self.evaluate(epoch, rows)
                    with self.clock.detail("log"):
                        self.log(rows)
                    if checkpoint_due(epoch, self.trainer, self.max_epochs, time.perf_counter() - self.last_checkpoint):
                        with self.clock.phase("checkpoint"):
                            self.checkpoint(epoch)
                        self.last_checkpoint = time.perf_counter()
                    bar.update(1)
                    bar.set_postfix(self.progress_fields(rows))
            finally:
                bar.close()
            if not self.method.trainable:  # one evaluation of the fitted method (k-means)
                rows = [{"epoch": 0} for _ in range(len(self.members))]
                with self.clock.phase("evaluation"):
                    self.evaluate(0, rows)
                self.log(rows)
                self.checkpoint(0)
            return self.finish()
        except (OSError, RuntimeError) as err:
            cause = storage_error(err)
            if cause is None:
                raise
            # nothing more can be written (not even a failed results.json): one line, exit 1
            raise DiskWriteError(disk_write_message(cause, self.members.folder_of(cause.filename))) from None
        finally:
            self.members.unlock()

    # --- helpers ---------------------------------------------------------------------------------

    def claim_folders(self) -> None:
        """Each member's folder: writable, locked for this process, and (a fresh run) not holding
        a finished or resumable run unless overwrite=true (engine/sweep.py). Under DDP rank 0
        alone claims them: every rank shares the folder, only rank 0 writes into it."""
        if not ddp.secondary_rank():
            self.members.claim(self.resumed)

    def start_line(self) -> str:
        """What a run prints first: its folder and the settings that identify it."""
        cfg, trainer, member = self.cfg, self.trainer, self.members[0]
        model = member.meta.get("model") or cfg.model._target_.rsplit(".", 1)[-1]
        what = f"{model} on {self.data.name}, seed {cfg.seed}"
        if self.method.trainable:
            whole = " (all samples)" if int(trainer.batch_size) > self.info.n_samples else ""
            what += f", {self.max_epochs} epochs of batch {self.batch_size}{whole}, selection {trainer.selection}"
            if trainer.get("scheduler") and trainer.scheduler.get("name", "none") != "none":
                what += f", {trainer.scheduler.name} schedule"
        what += f", {self.hardware.device} {self.hardware.precision}"
        if self.hardware.device.type == "cpu":
            what += f", {self.hardware.threads_text()}"
        if self.resumed:
            return f"resuming: {what}, from epoch {self.start_epoch} -> {member.run_dir}"
        return f"run: {what}{self.members.destination()}"

    def warn_whole_data_batch(self, asked: int, n: int) -> None:
        """trainer.batch_size above the number of samples: every batch is all of them. Said in
        the start line always; a warning when this command line asked for that batch size (a
        method's own whole-data schedule, ICMVC's or DIVIDE's on small sets, is not warned about)."""
        if any(o.startswith("trainer.batch_size=") for o in self.members.overrides()):
            say(
                f"warning: trainer.batch_size={asked} is larger than dataset '{self.data.name}' ({n} samples): every epoch is "
                f"one batch of all {n} samples (few optimiser steps); a smaller trainer.batch_size gives more steps",
                error=True,
            )

    def start_loggers(self) -> None:
        self.members.start_loggers(self.main_process, resume_epoch=self.start_epoch if self.resumed else None)

    def log(self, rows: list[dict[str, Any]]) -> None:
        self.members.log(rows)

    def progress_fields(self, rows: list[dict[str, Any]]) -> dict[str, str]:
        return self.members.progress_fields(rows)

    def _share(self, index: torch.Tensor) -> torch.Tensor:
        return index if self.world == 1 else index[self.rank * self.local : (self.rank + 1) * self.local]

    def _step(self, terms: dict[str, torch.Tensor]) -> None:
        # members are independent: the gradient of the sum is each member's own gradient
        self.ctx.optimize("main", terms["loss"].sum())
        self.method.on_train_batch_end(self.ctx)
        self.ctx.step += 1
        for scheduler in self.schedulers.values():
            scheduler.step()

    def save_embeddings(self, batch_size: int) -> None:
        """embedding.npz per member: the final model's representation (report's t-SNE input) with
        the clusters of the final evaluation. One pass over the data at the end of the run."""
        embedded = predict_outputs(self.method, self.inputs, batch_size, self.hardware, fn=self.method.embed)
        if embedded is not None and self.main_process:
            self.members.save_embeddings(self.method.member_outputs(embedded))


def fit(cfg: DictConfig, run_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains and evaluates `cfg.model` on `cfg.dataset`; writes everything into `run_dir`.

    With `cfg.resume` set, `run_dir` is the folder being resumed and training continues from
    its checkpoints/last.pt (same seed, RNG states and optimiser states: CPU results are equal
    bit for bit to an uninterrupted run).
    """
    return fit_members([cfg], [Path(run_dir)], [meta or {}])[0]


def fit_members(cfgs: list[DictConfig], run_dirs: list[Path], metas: list[dict[str, Any]]) -> list[dict[str, Any] | TrainingError]:
    """`fit` for G runs that differ only in the method's member keys (a vectorised sweep group):
    one batched model, one loop, one folder per member. Returns each member's results, or the
    TrainingError that stopped it (a one-member fit raises it instead)."""
    outcomes = FitRun(cfgs, [Path(d) for d in run_dirs], metas).fit()
    release_memory()  # the next job of this process finds the fit's memory free
    return outcomes
