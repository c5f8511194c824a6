"""How noisy are DCSM's k-means targets (Eq. 2) on a trained model? Per-batch k-means against
one k-means over all samples, on random batches of a finished image run.

    python scripts/dcsm_target_noise.py outputs/runs/<dcsm run folder> [--batches 200]

Reports, averaged over the batches: the share of same-class pairs whose target is r = 0, the
share of different-class pairs whose target is r = 1, and how many classes a batch misses.
Reads the labels: a diagnostic, not a model-selection tool.
"""

from __future__ import annotations

import argparse

import torch

from clusterbench.engine.build import load_trained
from clusterbench.engine.hardware import Hardware
from clusterbench.engine.loop import predict_outputs
from clusterbench.methods.dcsm import batch_kmeans


def pair_errors(assign: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(same-class pairs with different clusters, different-class pairs with the same cluster),
    as shares of their pairs; i = j excluded."""
    same_class = labels[:, None] == labels[None, :]
    same_cluster = assign[:, None] == assign[None, :]
    off = ~torch.eye(len(labels), dtype=torch.bool)
    split = (same_class & ~same_cluster & off).sum() / (same_class & off).sum().clamp_min(1)
    merged = (~same_class & same_cluster).sum() / (~same_class).sum().clamp_min(1)
    return split.item(), merged.item()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished model=dcsm run folder (checkpoints/last.pt)")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run = load_trained(args.run)
    cfg, data, inputs, method = run.cfg, run.data, run.inputs, run.method
    features = predict_outputs(method, inputs, 1024, Hardware(device="cpu"))
    labels = data.labels.cpu()
    k, iters, batch = method.kmeans_clusters, method.objective.kmeans_iters, int(cfg.trainer.batch_size)
    whole = batch_kmeans(features, k, iters)
    generator = torch.Generator().manual_seed(args.seed)
    totals = {"batch_split": 0.0, "batch_merged": 0.0, "dataset_split": 0.0, "dataset_merged": 0.0, "missing_classes": 0.0}
    for _ in range(args.batches):
        index = torch.randperm(len(labels), generator=generator)[:batch]
        split, merged = pair_errors(batch_kmeans(features[index], k, iters), labels[index])
        totals["batch_split"] += split
        totals["batch_merged"] += merged
        split, merged = pair_errors(whole[index], labels[index])
        totals["dataset_split"] += split
        totals["dataset_merged"] += merged
        totals["missing_classes"] += int(data.n_clusters) - labels[index].unique().numel()
    result = {key: value / args.batches for key, value in totals.items()}
    print(
        f"per-batch k-means ({batch} samples, K={k}): same-class pairs at r=0 {result['batch_split']:.3f}, "
        f"different-class pairs at r=1 {result['batch_merged']:.3f}; classes missing per batch {result['missing_classes']:.2f}"
    )
    print(
        f"one k-means over all {len(labels)} samples: same-class pairs at r=0 {result['dataset_split']:.3f}, "
        f"different-class pairs at r=1 {result['dataset_merged']:.3f}"
    )
    return result


if __name__ == "__main__":
    main()
