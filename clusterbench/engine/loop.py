"""The one training loop: every method runs through `fit`."""
from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from clusterbench.engine.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    capture_rng,
    load_latest_checkpoint,
    restore_rng,
    save_checkpoint,
    seed_everything,
    write_json,
)
from clusterbench.data.augment import build_augment
from clusterbench.engine import distributed as ddp
from clusterbench.engine.ensemble import check_members, member_optimizer_state, member_state, stack_states
from clusterbench.engine.inputs import build_inputs
from clusterbench.engine.provenance import config_hash, git_state, package_versions
from clusterbench.engine.sweep import folder_problem
from clusterbench.errors import ClusterbenchError, ConfigError, TrainingError, first_line
from clusterbench.methods.base import ClusteringMethod, DataInfo
from clusterbench.metrics import collapse_stats, evaluate_clustering

log = logging.getLogger(__name__)


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

CHECKPOINT = Path("checkpoints") / "last.pt"
# evaluation values written into metrics.csv at every evaluation (the collapse monitor included)
MONITORED = ("acc", "nmi", "ari", "nonempty_clusters", "largest_cluster_share", "assignment_entropy")
# model selection within a run: which evaluation's metrics a run reports. `best_acc` reads the
# labels, so results.json flags it (selection.uses_labels) and report marks it.
SELECTION_RULES = {
    "last": None,  # the final evaluation
    "min_loss": "loss",  # lowest mean training loss of the epoch
    "last_batch_loss": "last_batch_loss",  # lowest loss of the epoch's last batch (SDCIB's released code)
    "best_acc": "acc",  # highest ACC over evaluations: label-selected
}
LABEL_SELECTED = {"best_acc"}
AUGMENT_SEED_OFFSET = 1_000_003  # the augmentation stream's seed is seed + this
# DDP: rank r > 0 reseeds its torch and augmentation streams at every epoch from
# (seed, rank, epoch), so its noise and views differ from rank 0's and a resume re-derives them;
# rank 0 keeps the single-process streams (engine/distributed.py)
RANK_SEED_OFFSET = 7_919_993


class _StepContext:
    """Passed to `training_step`: lets a method take extra optimiser steps (critics)."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], device: torch.device) -> None:
        self.optimizers = optimizers
        self.device = device
        self.epoch = 0
        self.step = 0
        # set by the loop: fn over every sample's unaugmented view, in eval mode, concatenated in
        # sample order; train mode is restored afterwards (PICI's k-means over all samples)
        self.predict_all = None

    def optimize(self, group: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[group]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # DDP: the mean gradient over ranks (a no-op in one process), see engine/distributed.py
        ddp.average_gradients(p for g in optimizer.param_groups for p in g["params"])
        optimizer.step()

    def apply_gradients(self, group: str) -> None:
        """Steps `group` on the gradients it already holds (e.g. those the main loss's backward
        left on a critic, as SDCIB's released code updates its critics)."""
        optimizer = self.optimizers[group]
        ddp.average_gradients(p for g in optimizer.param_groups for p in g["params"])
        optimizer.step()


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


def _score(labels: np.ndarray, pred: np.ndarray, n_clusters: int) -> dict[str, Any]:
    metrics = evaluate_clustering(labels, pred)
    metrics.update(collapse_stats(pred, n_clusters))
    return metrics


def choose_candidate(rule: str | int, metrics: dict[str, dict[str, Any]], scores: dict[str, float]) -> tuple[str, bool]:
    """(name of the kept candidate partition, whether choosing it read the labels); see methods/base.py."""
    names = list(metrics)
    if rule == "best_acc":
        return max(names, key=lambda name: metrics[name]["acc"]), True
    if isinstance(rule, int) and not isinstance(rule, bool):
        if not 0 <= rule < len(names):
            raise ConfigError(f"model.view_selection={rule}: there are {len(names)} candidates (0..{len(names) - 1})")
        return names[rule], False
    if set(scores) != set(names):
        raise ConfigError(f"model.view_selection={rule!r}: the method gives no such label-free score for its candidates")
    return max(names, key=lambda name: scores[name]), False


def evaluate_candidates(method, outputs: torch.Tensor, labels: np.ndarray, n_clusters: int) -> tuple[dict[str, Any], np.ndarray, dict[str, Any] | None]:
    """Metrics and hard labels of the partition `method.assign` makes of `outputs` (one
    member's predictions for all samples); for a method with several candidate partitions,
    those of the one kept by `method.candidate_selection`, and a record of all."""
    parts = method.candidates(outputs)
    if not parts:
        pred = method.assign(outputs)[0].cpu().numpy()
        return _score(labels, pred, n_clusters), pred, None
    preds = {name: hard.cpu().numpy() for name, hard in parts.items()}
    table = {name: _score(labels, pred, n_clusters) for name, pred in preds.items()}
    scores = method.candidate_scores()
    rule = method.candidate_selection
    chosen, uses_labels = choose_candidate(rule, table, scores)
    metrics = dict(table[chosen])
    for name, value in scores.items():
        table[name][str(rule)] = value
    return metrics, preds[chosen], {"rule": rule, "chosen": chosen, "uses_labels": uses_labels, "candidates": table}


def fit(cfg: DictConfig, run_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains and evaluates `cfg.model` on `cfg.dataset`; writes everything into `run_dir`.

    With `cfg.resume` set, `run_dir` is the folder being resumed and training continues from
    its checkpoints/last.pt (same seed, RNG states and optimiser states: CPU results are equal
    bit for bit to an uninterrupted run).
    """
    return fit_members([cfg], [Path(run_dir)], [meta or {}])[0]


def check_writable(folder: Path) -> None:
    """Creates `folder` and probes it with a temporary file (engine/sweep.py's folder_problem);
    ConfigError naming the folder when that fails, before any data are loaded or trained."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"output folder {folder} is not writable ({err.strerror or first_line(err)})") from None
    problem = folder_problem(folder)
    if problem is not None:
        raise ConfigError(f"output folder {folder} is not writable ({problem})")


def _warn(message: str) -> None:
    log.warning(message)
    print(message, file=sys.stderr)


class _NullLogger:
    """DDP ranks other than 0 log nothing (rank 0 writes metrics.csv and wandb)."""

    def start(self, *args, **kwargs) -> None:
        pass

    def log(self, row) -> None:
        pass

    def summary(self, results) -> None:
        pass

    def finish(self) -> None:
        pass


class _Member:
    """One run's own share of a (possibly vectorised) fit: its folder, config, logs, evaluations."""

    def __init__(self, cfg: DictConfig, run_dir: Path, meta: dict[str, Any]) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        check_writable(self.run_dir)
        self.meta = dict(meta)
        self.evaluations: list[dict[str, Any]] = []
        self.latest: dict[str, Any] = {}
        self.error: TrainingError | None = None
        self.latest_pred: tuple[int, np.ndarray] | None = None  # (epoch, hard labels) of the last evaluation
        self.logger = None
        self.config_sha256 = config_hash(cfg)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT


def build_members(cfgs: list[DictConfig], info: DataInfo, generator: torch.Generator) -> ClusteringMethod:
    """The method of one run, or G runs' methods stacked into one G-member method. Every member
    is built from the same RNG state, as its separate run would be, so it starts from the
    same weights (engine/ensemble.py)."""
    if len(cfgs) == 1:
        return build_method(cfgs[0], info)
    check_members(cfgs)
    rng = capture_rng(generator)
    stacked = build_method(cfgs[0], info, members=len(cfgs))
    states = []
    for cfg in cfgs:
        restore_rng(rng, generator)
        states.append(build_method(cfg, info).state_dict())
    stacked.load_state_dict(stack_states(states))
    return stacked


def fit_members(cfgs: list[DictConfig], run_dirs: list[Path], metas: list[dict[str, Any]]) -> list[dict[str, Any] | TrainingError]:
    """`fit` for G runs that differ only in the method's member keys (a vectorised sweep group):
    one batched model, one loop, one folder per member. Returns each member's results, or the
    TrainingError that stopped it (a one-member fit raises it instead)."""
    started = time.perf_counter()
    members = [_Member(cfg, run_dir, meta) for cfg, run_dir, meta in zip(cfgs, run_dirs, metas)]
    cfg = cfgs[0]  # every setting but the member keys is shared
    n_members = len(members)
    trainer = cfg.trainer
    hardware = build(cfg.hardware)
    hardware.setup()
    rank, world = ddp.rank(), ddp.world_size()
    main_process = rank == 0  # only rank 0 writes into the run folders
    if world > 1 and not getattr(hardware, "distributed", False):
        raise ConfigError(f"started on {world} processes (torchrun) without hardware=ddp: add hardware=ddp")
    if world > 1:
        if n_members > 1:
            raise ConfigError("hardware=ddp trains one run; a vectorised sweep (+launcher=vectorized) cannot use it")
        if not trainer.drop_last or int(trainer.batch_size) % world:
            raise ConfigError(
                f"trainer.batch_size={trainer.batch_size} with hardware=ddp on {world} processes: the global batch must "
                f"divide by {world} and trainer.drop_last must be true (every rank gets an equal share)"
            )
    generator = seed_everything(cfg.seed)
    # augmentation draws its per-sample parameters on the training device (no host copies in
    # the step), from its own stream derived from the seed
    augment_generator = torch.Generator(device=hardware.device).manual_seed(int(cfg.seed) + AUGMENT_SEED_OFFSET)

    data = build(cfg.dataset)
    augment = build(cfg.augment) if cfg.get("augment") else None
    inputs = build_inputs(data, augment, hardware.device, hardware.channels_last)
    n_clusters = int(data.n_clusters)
    info = DataInfo(
        dims=tuple(int(d) for d in data.dims), n_clusters=n_clusters, n_samples=int(data.n_samples), image_shape=inputs.image_shape
    )
    method = build_members(cfgs, info, generator).to(hardware.device)
    if hardware.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if world > 1 and getattr(hardware, "sync_batchnorm", False):
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)  # replaces BatchNorm children in place
    step_fn = hardware.maybe_compile(method.training_step)
    labels = data.labels.cpu().numpy()
    optimizers = build_optimizers(method, trainer)
    ctx = _StepContext(optimizers, hardware.device)

    start_epoch = 0
    previous_wall = 0.0
    resumed = bool(cfg.get("resume"))
    if resumed:
        if n_members > 1:
            raise ConfigError("resume= continues one run folder; resume each member of a vectorised sweep on its own")
        member = members[0]
        # checkpoints/last.pt, or previous.pt when last.pt is missing, truncated or corrupted
        try:
            state, _ = load_latest_checkpoint(member.checkpoint_path, warn=_warn)
        except CheckpointError as err:
            raise ConfigError(f"resume={cfg.resume}: {err}") from None
        if state["dataset_checksum"] != data.checksum:
            raise ConfigError(f"resume={cfg.resume}: dataset file changed since the run started (checksum differs)")
        method.load_state_dict(state["method"])
        for group, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][group])
        restore_rng(state["rng"], generator)
        if "augment_rng" in state:
            augment_generator.set_state(state["augment_rng"])
        start_epoch = state["epoch"]
        member.evaluations = state["evaluations"]
        member.latest = member.evaluations[-1]["metrics"] if member.evaluations else {}
        previous_wall = state["wall_time_s"]
        ctx.step = state["step"]
        log.info("resuming %s from epoch %d", member.run_dir, start_epoch)

    for member in members:
        member.logger = build(member.cfg.logger) if main_process else _NullLogger()
        member.logger.start(
            member.run_dir, OmegaConf.to_container(member.cfg, resolve=True), member.run_dir.name, resume_epoch=start_epoch if resumed else None
        )
    max_epochs = int(trainer.max_epochs) if method.trainable else 0
    active = [m for m in members if m.error is None]

    def save(epoch: int) -> None:
        if not main_process:
            return
        method_state = method.state_dict()
        optimizer_states = {g: o.state_dict() for g, o in optimizers.items()}
        rng = capture_rng(generator)
        for g, member in enumerate(members):
            if member.error is not None:
                continue
            one = n_members == 1
            state = {
                "epoch": epoch,
                "step": ctx.step,
                "method": method_state if one else member_state(method_state, g, n_members),
                "optimizers": {k: s if one else member_optimizer_state(s, g, n_members) for k, s in optimizer_states.items()},
                "rng": rng,
                "augment_rng": augment_generator.get_state(),
                "evaluations": member.evaluations,
                "wall_time_s": previous_wall + time.perf_counter() - started,
                "dataset_checksum": data.checksum,
                "config": OmegaConf.to_container(member.cfg, resolve=True),
                "config_sha256": member.config_sha256,
            }
            save_checkpoint(member.checkpoint_path, state, keep_previous=True)
            if trainer.keep_checkpoints:
                save_checkpoint(member.run_dir / "checkpoints" / f"epoch_{epoch:04d}.pt", state)

    def record_evaluations(epoch: int, rows: list[dict[str, Any]]) -> None:
        batch = info.n_samples if method.full_batch_predict else trainer.eval_batch_size
        outputs = method.member_outputs(predict_outputs(method, inputs, batch, hardware))
        for member, member_out, row in zip(members, outputs, rows):
            if member.error is not None:
                continue
            metrics, pred, candidates = evaluate_candidates(method, member_out, labels, n_clusters)
            member.evaluations.append({"epoch": epoch, "loss": row.get("loss"), "last_batch_loss": row.get("last_batch_loss"), "metrics": metrics})
            if candidates is not None:
                member.evaluations[-1]["candidates"] = candidates
            if main_process and _select(member.evaluations, trainer.selection) is member.evaluations[-1]:
                atomic_write_bytes(
                    member.run_dir / "predictions.npz", lambda f: np.savez_compressed(f, y_true=labels, y_pred=pred, epoch=epoch)
                )
            member.latest = metrics
            member.latest_pred = (epoch, pred)
            row.update({k: metrics[k] for k in MONITORED})

    def fail(member: _Member, message: str) -> None:
        member.error = TrainingError(message)
        if main_process:
            _write_failure(member.run_dir, member.cfg, member.meta, data, message)
        member.logger.finish()
        if n_members == 1:
            raise member.error

    def predict_all(fn):
        outputs = predict_outputs(method, inputs, trainer.eval_batch_size, hardware, fn)
        method.train()
        return outputs

    ctx.predict_all = predict_all
    if start_epoch == 0:
        method.on_fit_start(inputs.full())
    ddp.broadcast_module(method)  # DDP: every rank starts from rank 0's weights
    n = info.n_samples
    batch_size = min(int(trainer.batch_size), n)
    local = batch_size // world  # DDP: this rank's share of each global batch
    if batch_size % world:  # trainer.batch_size above n: the batch is the whole data set
        raise ConfigError(f"hardware=ddp on {world} processes: the global batch ({batch_size} samples) must divide by {world}")

    def share(index: torch.Tensor) -> torch.Tensor:
        return index if world == 1 else index[rank * local : (rank + 1) * local]
    n_batches = n // batch_size if trainer.drop_last else math.ceil(n / batch_size)
    repeats = int(trainer.repeats_per_batch)
    # STL-10's unlabeled split: instance-only steps before each epoch's labelled batches
    n_unlabeled = inputs.n_unlabeled if method.unlabeled_step is not None else 0
    unlabeled_batches = n_unlabeled // batch_size if n_unlabeled else 0
    bar = tqdm(total=max_epochs, initial=start_epoch, disable=not trainer.progress, desc="train", unit="epoch", dynamic_ncols=True)
    try:
        for epoch in range(start_epoch + 1, max_epochs + 1):
            method.train()
            ctx.epoch = epoch
            if rank > 0:
                rank_seed = int(cfg.seed) + RANK_SEED_OFFSET * rank + epoch
                torch.manual_seed(rank_seed)
                augment_generator.manual_seed(rank_seed + AUGMENT_SEED_OFFSET)
            method.on_epoch_start(epoch, ctx)
            sums: dict[str, torch.Tensor] = {}
            if unlabeled_batches:
                order = torch.randperm(n_unlabeled, generator=generator).to(hardware.device)
                for b in range(unlabeled_batches):
                    index = share(order[b * batch_size : (b + 1) * batch_size])
                    with hardware.autocast():
                        terms = method.unlabeled_step(inputs.unlabeled_batch(index, augment_generator), ctx)
                    ctx.optimize("main", terms["loss"].sum())
                    method.on_train_batch_end(ctx)
                    ctx.step += 1
                    _accumulate(sums, terms, prefix="unlabeled_", scale=1.0 / unlabeled_batches)
            order = torch.randperm(n, generator=generator).to(hardware.device)
            for b in range(n_batches):
                index = share(order[b * batch_size : (b + 1) * batch_size])
                # DCSM trains each batch several times; every repetition draws fresh views
                for _ in range(repeats):
                    with hardware.autocast():
                        terms = step_fn(inputs.train_batch(index, augment_generator), index, ctx)
                    # members are independent: the gradient of the sum is each member's own gradient
                    ctx.optimize("main", terms["loss"].sum())
                    method.on_train_batch_end(ctx)
                    ctx.step += 1
                    _accumulate(sums, terms, scale=1.0 / (n_batches * repeats))
            # one host sync per epoch: a (terms + 1) x members table
            names = [*sums, "last_batch_loss"]
            table = torch.stack([*sums.values(), terms["loss"].detach().float().reshape(-1)])
            # DDP: the mean over ranks, so every rank logs and stops (non-finite) alike
            table = ddp.mean_over_ranks(table).t().tolist()
            rows = [{"epoch": epoch, **dict(zip(names, values))} for values in table]
            for member, row in zip(members, rows):
                if member.error is None and not all(math.isfinite(row[k]) for k in names):
                    bad = ", ".join(f"{k}={row[k]}" for k in names if not math.isfinite(row[k]))
                    path = member.checkpoint_path
                    kept = f"the last good checkpoint is {path}" if path.exists() else "no checkpoint had been written yet"
                    fail(member, f"non-finite loss at epoch {epoch} ({bad}); training stopped, {kept}")
            if all(m.error is not None for m in members):
                break
            if epoch % trainer.eval_every == 0 or epoch == max_epochs:
                record_evaluations(epoch, rows)
            for member, row in zip(members, rows):
                if member.error is None:
                    member.logger.log(row)
            if epoch % trainer.checkpoint_every == 0 or epoch == max_epochs:
                save(epoch)
            bar.update(1)
            shown = rows[0] if n_members == 1 else {"loss": min(r["loss"] for r in rows)}
            bar.set_postfix(loss=f"{shown['loss']:.4f}", **{k: f"{members[0].latest[k]:.3f}" for k in ("acc", "nmi", "ari") if k in members[0].latest})
    finally:
        bar.close()

    if not method.trainable:
        record_evaluations(0, [{} for _ in members])
        for member in members:
            member.logger.log({"epoch": 0, **{k: member.latest[k] for k in MONITORED}})
        save(0)

    if trainer.save_embedding:
        save_embeddings(
            method, members, inputs, info.n_samples if method.full_batch_predict else trainer.eval_batch_size, hardware, main_process
        )

    wall = round(previous_wall + time.perf_counter() - started, 3)
    outcomes: list[dict[str, Any] | TrainingError] = []
    for g, member in enumerate(members):
        if member.error is not None:
            outcomes.append(member.error)
            continue
        results = _results(member, trainer, data, hardware, max_epochs, wall)
        if n_members > 1:
            results["vectorised"] = {"members": n_members, "member": g, "wall_time_is_shared": True}
        if main_process:
            write_json(member.run_dir / "results.json", results)
        member.logger.summary(results)
        member.logger.finish()
        outcomes.append(results)
    return outcomes


def _accumulate(sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], prefix: str = "", scale: float = 1.0) -> None:
    """Adds a step's loss terms (scaled: the epoch mean) to the running sums, on the device."""
    for name, value in terms.items():
        value = value.detach().float().reshape(-1) * scale
        key = prefix + name
        sums[key] = sums[key] + value if key in sums else value


def save_embeddings(method: ClusteringMethod, members: list[_Member], inputs, batch_size: int, hardware, write: bool = True) -> None:
    """embedding.npz per member: the final model's representation (report's t-SNE input) with
    the clusters of the final evaluation. One pass over the data at the end of the run."""
    embedded = predict_outputs(method, inputs, batch_size, hardware, fn=method.embed)
    if embedded is None or not write:
        return
    for member, features in zip(members, method.member_outputs(embedded)):
        if member.error is None and member.latest_pred is not None:
            epoch, pred = member.latest_pred
            features = features.cpu().numpy().astype(np.float16)  # for t-SNE: half precision is plenty
            atomic_write_bytes(
                member.run_dir / "embedding.npz", lambda f: np.savez_compressed(f, features=features, y_pred=pred, epoch=epoch)
            )


def _results(member: _Member, trainer, data, hardware, max_epochs: int, wall: float) -> dict[str, Any]:
    chosen = _select(member.evaluations, trainer.selection)
    selection = {"rule": trainer.selection, "epoch": chosen["epoch"], "uses_labels": trainer.selection in LABEL_SELECTED}
    candidates = {}
    if "candidates" in chosen:  # a method with several candidate partitions (KM, Ncuts: one per view)
        record = chosen["candidates"]
        selection["candidate"] = {k: record[k] for k in ("rule", "chosen", "uses_labels")}
        selection["uses_labels"] = selection["uses_labels"] or record["uses_labels"]
        candidates = {"candidates": record["candidates"]}
    return {
        "status": "finished",
        "metrics": chosen["metrics"],
        **candidates,
        "selection": selection,
        "last_epoch_metrics": member.evaluations[-1]["metrics"],
        "model": member.meta.get("model"),
        "method": member.cfg.model._target_,
        "dataset": _dataset_record(data, member.meta),
        "seed": int(member.cfg.seed),
        "epochs": max_epochs,
        "hardware": hardware.describe(),
        "overrides": member.meta.get("overrides", []),
        # sha256 of the full resolved config (`resume` left out): a resumed sweep skips a job whose
        # finished results.json carries its config's hash
        "config_sha256": member.config_sha256,
        "versions": package_versions(),
        "git": git_state(),
        "wall_time_s": wall,
    }


def _select(evaluations: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    key = SELECTION_RULES[rule]
    if key == "acc":
        return max(evaluations, key=lambda e: e["metrics"]["acc"])
    candidates = [e for e in evaluations if key is not None and e.get(key) is not None]
    return min(candidates, key=lambda e: e[key]) if candidates else evaluations[-1]


def _dataset_record(data, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": data.name,
        "config": meta.get("dataset"),
        "checksum_sha256": data.checksum,
        "source": data.source,
        "n_samples": int(data.n_samples),
        "n_views": int(data.n_views),
        "dims": [int(d) for d in data.dims],
        "n_classes": int(data.n_classes),
        "n_clusters": int(data.n_clusters),
    }


def _write_failure(run_dir: Path, cfg: DictConfig, meta: dict[str, Any], data, error: str) -> None:
    write_json(
        run_dir / "results.json",
        {
            "status": "failed",
            "error": error,
            "model": meta.get("model"),
            "dataset": _dataset_record(data, meta),
            "seed": int(cfg.seed),
            "overrides": meta.get("overrides", []),
            "config_sha256": config_hash(cfg),
            "versions": package_versions(),
            "git": git_state(),
        },
    )
