"""The one training loop: every method runs through `fit`."""
from __future__ import annotations

import logging
import math
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
    atomic_write_bytes,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    seed_everything,
    write_json,
)
from clusterbench.engine.provenance import git_state, package_versions
from clusterbench.errors import ClusterbenchError, ConfigError, TrainingError
from clusterbench.methods.base import ClusteringMethod, DataInfo
from clusterbench.metrics import collapse_stats, evaluate_clustering

log = logging.getLogger(__name__)


def build(node, *args, **kwargs):
    """hydra.utils.instantiate that lets our one-line errors through unwrapped."""
    try:
        return instantiate(node, *args, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None:
            if isinstance(cause, ClusterbenchError):
                raise cause from None
            cause = cause.__cause__
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


class _StepContext:
    """Passed to `training_step`: lets a method take extra optimiser steps (critics)."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], device: torch.device) -> None:
        self.optimizers = optimizers
        self.device = device
        self.epoch = 0
        self.step = 0

    def optimize(self, group: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[group]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def build_method(cfg: DictConfig, info: DataInfo) -> ClusteringMethod:
    """The `model` of a composed config, with its backbone config and built `loss` object."""
    loss = build(cfg.loss, _convert_="all") if "_target_" in cfg.loss else None
    backbone = cfg.backbone if "_target_" in cfg.backbone else None
    # objects built here (not config) are passed to the partial, so Hydra does not convert them
    make_method = build(cfg.model, _partial_=True, _recursive_=False, _convert_="all")
    return make_method(data_info=info, backbone=backbone, loss=loss)


def build_optimizers(method: ClusteringMethod, trainer_cfg: DictConfig) -> dict[str, torch.optim.Optimizer]:
    optimizers = {}
    for group, params in method.param_groups().items():
        spec = trainer_cfg.optimizers.get(group, trainer_cfg.optimizer)
        optimizers[group] = build(spec)(params)
    return optimizers


@torch.no_grad()
def predict_outputs(method: ClusteringMethod, views: list[torch.Tensor], batch_size: int, hardware) -> torch.Tensor:
    """`method.predict` on every sample in eval mode, batch by batch (with the batch's sample
    indices, for transductive methods), concatenated in sample order."""
    method.eval()
    n = views[0].shape[0]
    outputs = []
    with hardware.autocast():
        for start in range(0, n, batch_size):
            index = torch.arange(start, min(start + batch_size, n), device=views[0].device)
            outputs.append(method.predict([v[start : start + batch_size] for v in views], index).float())
    return torch.cat(outputs)


def predict_all(method: ClusteringMethod, views: list[torch.Tensor], batch_size: int, hardware) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hard (and soft) assignments for every sample, in eval mode."""
    return method.assign(predict_outputs(method, views, batch_size, hardware))


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


def evaluate_candidates(method, views, labels: np.ndarray, n_clusters: int, batch_size: int, hardware) -> tuple[dict[str, Any], np.ndarray, dict[str, Any] | None]:
    """Metrics and hard labels of the method's partition; for a method with several candidate
    partitions, those of the one kept by `method.candidate_selection`, and a record of all."""
    outputs = predict_outputs(method, views, batch_size, hardware)
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


def evaluate(method, views, labels: np.ndarray, n_clusters: int, batch_size: int, hardware) -> tuple[dict[str, Any], np.ndarray]:
    metrics, pred, _ = evaluate_candidates(method, views, labels, n_clusters, batch_size, hardware)
    return metrics, pred


def fit(cfg: DictConfig, run_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains and evaluates `cfg.model` on `cfg.dataset`; writes everything into `run_dir`.

    With `cfg.resume` set, `run_dir` is the folder being resumed and training continues from
    its checkpoints/last.pt (same seed, RNG states and optimiser states: CPU results are equal
    bit for bit to an uninterrupted run).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    meta = dict(meta or {})
    trainer = cfg.trainer
    hardware = build(cfg.hardware)
    hardware.setup()
    generator = seed_everything(cfg.seed)

    data = build(cfg.dataset)
    n_clusters = int(data.n_clusters)
    info = DataInfo(dims=tuple(int(d) for d in data.dims), n_clusters=n_clusters, n_samples=int(data.n_samples))
    method = build_method(cfg, info).to(hardware.device)
    views = [v.to(hardware.device) for v in data.views]
    labels = data.labels.cpu().numpy()
    optimizers = build_optimizers(method, trainer)
    ctx = _StepContext(optimizers, hardware.device)

    checkpoint_path = run_dir / CHECKPOINT
    start_epoch = 0
    evaluations: list[dict[str, Any]] = []
    previous_wall = 0.0
    if cfg.get("resume"):
        if not checkpoint_path.exists():
            raise ConfigError(f"resume={cfg.resume}: no checkpoint at {checkpoint_path}")
        state = load_checkpoint(checkpoint_path)
        if state["dataset_checksum"] != data.checksum:
            raise ConfigError(f"resume={cfg.resume}: dataset file changed since the run started (checksum differs)")
        method.load_state_dict(state["method"])
        for group, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][group])
        restore_rng(state["rng"], generator)
        start_epoch = state["epoch"]
        evaluations = state["evaluations"]
        previous_wall = state["wall_time_s"]
        ctx.step = state["step"]
        log.info("resuming %s from epoch %d", run_dir, start_epoch)

    logger = build(cfg.logger)
    logger.start(run_dir, OmegaConf.to_container(cfg, resolve=True), run_dir.name, resume_epoch=start_epoch if cfg.get("resume") else None)
    max_epochs = int(trainer.max_epochs) if method.trainable else 0

    def save(epoch: int) -> None:
        state = {
            "epoch": epoch,
            "step": ctx.step,
            "method": method.state_dict(),
            "optimizers": {g: o.state_dict() for g, o in optimizers.items()},
            "rng": capture_rng(generator),
            "evaluations": evaluations,
            "wall_time_s": previous_wall + time.perf_counter() - started,
            "dataset_checksum": data.checksum,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        save_checkpoint(checkpoint_path, state)
        if trainer.keep_checkpoints:
            save_checkpoint(run_dir / "checkpoints" / f"epoch_{epoch:04d}.pt", state)

    def record_evaluation(epoch: int, row: dict[str, Any]) -> dict[str, Any]:
        metrics, pred, candidates = evaluate_candidates(method, views, labels, n_clusters, trainer.eval_batch_size, hardware)
        evaluations.append({"epoch": epoch, "loss": row.get("loss"), "last_batch_loss": row.get("last_batch_loss"), "metrics": metrics})
        if candidates is not None:
            evaluations[-1]["candidates"] = candidates
        if _select(evaluations, trainer.selection) is evaluations[-1]:
            atomic_write_bytes(
                run_dir / "predictions.npz", lambda f: np.savez_compressed(f, y_true=labels, y_pred=pred, epoch=epoch)
            )
        return metrics

    if start_epoch == 0:
        method.on_fit_start(views)
    n = info.n_samples
    batch_size = min(int(trainer.batch_size), n)
    n_batches = n // batch_size if trainer.drop_last else math.ceil(n / batch_size)
    latest: dict[str, Any] = evaluations[-1]["metrics"] if evaluations else {}
    bar = tqdm(total=max_epochs, initial=start_epoch, disable=not trainer.progress, desc="train", unit="epoch", dynamic_ncols=True)
    try:
        for epoch in range(start_epoch + 1, max_epochs + 1):
            method.train()
            ctx.epoch = epoch
            method.on_epoch_start(epoch)
            order = torch.randperm(n, generator=generator).to(hardware.device)
            sums: dict[str, torch.Tensor] = {}
            for b in range(n_batches):
                index = order[b * batch_size : (b + 1) * batch_size]
                with hardware.autocast():
                    terms = method.training_step([v[index] for v in views], index, ctx)
                ctx.optimize("main", terms["loss"])
                ctx.step += 1
                for name, value in terms.items():
                    value = value.detach().float()
                    sums[name] = sums[name] + value if name in sums else value
            # one host sync per epoch
            names = list(sums)
            last_batch_loss = terms["loss"].detach().float()
            values = torch.stack([*(sums[k] / n_batches for k in names), last_batch_loss]).tolist()
            row: dict[str, Any] = {"epoch": epoch, **dict(zip([*names, "last_batch_loss"], values))}
            if not all(math.isfinite(v) for v in values):
                bad = ", ".join(f"{k}={v}" for k, v in row.items() if k != "epoch" and not math.isfinite(v))
                kept = f"the last good checkpoint is {checkpoint_path}" if checkpoint_path.exists() else "no checkpoint had been written yet"
                raise TrainingError(f"non-finite loss at epoch {epoch} ({bad}); training stopped, {kept}")
            if epoch % trainer.eval_every == 0 or epoch == max_epochs:
                latest = record_evaluation(epoch, row)
                row.update({k: latest[k] for k in MONITORED})
            logger.log(row)
            if epoch % trainer.checkpoint_every == 0 or epoch == max_epochs:
                save(epoch)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", **{k: f"{latest[k]:.3f}" for k in ("acc", "nmi", "ari") if k in latest})
    except TrainingError as err:
        _write_failure(run_dir, cfg, meta, data, str(err))
        raise
    finally:
        bar.close()

    if not method.trainable:
        latest = record_evaluation(0, {})
        logger.log({"epoch": 0, **{k: latest[k] for k in MONITORED}})
        save(0)

    chosen = _select(evaluations, trainer.selection)
    selection = {"rule": trainer.selection, "epoch": chosen["epoch"], "uses_labels": trainer.selection in LABEL_SELECTED}
    candidates = {}
    if "candidates" in chosen:  # a method with several candidate partitions (KM, Ncuts: one per view)
        record = chosen["candidates"]
        selection["candidate"] = {k: record[k] for k in ("rule", "chosen", "uses_labels")}
        selection["uses_labels"] = selection["uses_labels"] or record["uses_labels"]
        candidates = {"candidates": record["candidates"]}
    results = {
        "status": "finished",
        "metrics": chosen["metrics"],
        **candidates,
        "selection": selection,
        "last_epoch_metrics": evaluations[-1]["metrics"],
        "model": meta.get("model"),
        "method": cfg.model._target_,
        "dataset": _dataset_record(data, meta),
        "seed": int(cfg.seed),
        "epochs": max_epochs,
        "hardware": hardware.describe(),
        "overrides": meta.get("overrides", []),
        "versions": package_versions(),
        "git": git_state(),
        "wall_time_s": round(previous_wall + time.perf_counter() - started, 3),
    }
    write_json(run_dir / "results.json", results)
    logger.summary(results)
    logger.finish()
    return results


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
        {"status": "failed", "error": error, "model": meta.get("model"), "dataset": _dataset_record(data, meta), "seed": int(cfg.seed)},
    )
