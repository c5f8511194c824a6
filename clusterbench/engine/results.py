"""What a run folder's results.json says: a finished run's metrics and protocol, or why it failed.

`write_failure` is the one writer of failed results, for the engine (a non-finite loss) and for
the command line (a config error or a bug in a sweep job), so every failed results.json has the
same fields and a sweep summary, report and a re-run of the sweep read them alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from clusterbench.engine.checkpoint import write_json
from clusterbench.engine.provenance import config_hash, git_state, package_versions
from clusterbench.engine.sweep import read_results

# model selection within a run: which evaluation's metrics a run reports. `best_acc` reads the
# labels, so results.json flags it (selection.uses_labels) and report marks it.
SELECTION_RULES = {
    "last": None,  # the final evaluation
    "min_loss": "loss",  # lowest mean training loss of the epoch
    "last_batch_loss": "last_batch_loss",  # lowest loss of the epoch's last batch (SDCIB's released code)
    "best_acc": "acc",  # highest ACC over evaluations: label-selected
}
LABEL_SELECTED = {"best_acc"}


def select(evaluations: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    """The evaluation a selection rule keeps."""
    key = SELECTION_RULES[rule]
    if key == "acc":
        return max(evaluations, key=lambda e: e["metrics"]["acc"])
    candidates = [e for e in evaluations if key is not None and e.get(key) is not None]
    return min(candidates, key=lambda e: e[key]) if candidates else evaluations[-1]


def collapse_share(n_clusters: int) -> float:
    """The share of the samples above which one cluster "holds most of them": halfway between a
    balanced partition (1/K) and all in one cluster, (1 + 1/K) / 2 (0.55 for K = 10, 0.75 for
    K = 2). A data set whose largest class is that large is flagged too: read the labels then."""
    return (1.0 + 1.0 / n_clusters) / 2.0


def collapse_verdict(metrics: dict[str, Any], n_clusters: int) -> dict[str, Any] | None:
    """None, or why the final clustering collapsed (the collapse monitor's nonempty_clusters and
    largest_cluster_share): fewer non-empty clusters than asked, or one cluster above
    collapse_share(K). results.json's `collapse` and the console's last line say it."""
    used, largest = metrics.get("nonempty_clusters"), metrics.get("largest_cluster_share")
    if used is None or largest is None:
        return None
    threshold = collapse_share(n_clusters)
    reasons = []
    if used < n_clusters:
        reasons.append(f"{used} of {n_clusters} clusters used")
    if largest > threshold:
        reasons.append(f"one cluster holds {largest:.0%} of the samples (above {threshold:.0%})")
    if not reasons:
        return None
    return {
        "nonempty_clusters": int(used),
        "n_clusters": int(n_clusters),
        "largest_cluster_share": float(largest),
        "share_threshold": threshold,
        "message": "collapsed: " + ", ".join(reasons),
    }


def dataset_record(data, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": data.name,
        "config": meta.get("dataset"),
        "checksum_sha256": data.checksum,
        "source": data.source,
        "n_samples": int(data.n_samples),
        "n_views": int(data.n_views),
        "dims": [int(d) for d in data.dims],
        "n_classes": None if data.n_classes is None else int(data.n_classes),
        "n_clusters": int(data.n_clusters),
        "has_labels": data.labels is not None,
        "class_names": [str(c) for c in getattr(data, "class_names", None) or []] or None,
    }


def finished_results(
    cfg: DictConfig, meta: dict[str, Any], evaluations: list[dict[str, Any]], data, hardware, max_epochs: int, wall: float, digest: str
) -> dict[str, Any]:
    """results.json of a finished run: the selected evaluation's metrics and the protocol."""
    rule = cfg.trainer.selection
    chosen = select(evaluations, rule)
    selection = {"rule": rule, "epoch": chosen["epoch"], "uses_labels": rule in LABEL_SELECTED}
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
        "collapse": collapse_verdict(chosen["metrics"], int(data.n_clusters)),  # None: not collapsed
        "model": meta.get("model"),
        "method": cfg.model._target_,
        "dataset": dataset_record(data, meta),
        "seed": int(cfg.seed),
        "epochs": max_epochs,
        "hardware": hardware.describe(),
        "overrides": meta.get("overrides", []),
        # sha256 of the full resolved config (`resume` left out): a resumed sweep skips a job whose
        # finished results.json carries its config's hash
        "config_sha256": digest,
        "versions": package_versions(),
        "git": git_state(),
        "wall_time_s": wall,
    }
    if meta.get("resume_overrides"):
        results["resume_overrides"] = list(meta["resume_overrides"])
    return results


def write_failure(run_dir: Path, cfg: DictConfig, meta: dict[str, Any], error: str, data=None) -> None:
    """results.json with status failed: the error's one line, and what is known of the run (the
    dataset when it was loaded). A record of this very failure with the dataset is kept."""
    existing = read_results(run_dir)
    if data is None and existing is not None and existing.get("status") == "failed" and existing.get("error") == error:
        return
    try:
        digest = config_hash(cfg)
    except Exception:  # an unresolvable config: the failure itself
        digest = None
    payload = {"status": "failed", "error": error, "model": meta.get("model")}
    if data is not None:
        payload["dataset"] = dataset_record(data, meta)
    try:
        payload["seed"] = int(cfg.seed)
    except Exception:  # noqa: BLE001 - a seed that is not an integer is the failure
        payload["seed"] = None
    payload.update({"overrides": meta.get("overrides", []), "config_sha256": digest, "versions": package_versions(), "git": git_state()})
    write_json(Path(run_dir) / "results.json", payload)
