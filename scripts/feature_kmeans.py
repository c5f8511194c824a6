"""Does a finished run's cluster head use what its network learned? k-means on the learned
features against the head's own clusters.

    python scripts/feature_kmeans.py outputs/runs/<run folder> [--n-init 5] [--seed 0]

Rebuilds the run's data and method from checkpoints/last.pt and scores, against the labels:
`head` (the method's `predict`, what results.json reports), `embed` (k-means on the method's
`embed`, e.g. CC's normalised instance features, HTCN's target projection) and `backbone`
(k-means on the L2-normalised backbone output; HTCN's target backbone, the network it
clusters with). A head far below k-means on its own features means the clustering objective,
not the representation, holds the method back. Reads the labels: a diagnostic, not a
model-selection tool.
"""
from __future__ import annotations

import argparse

import torch
from sklearn.cluster import KMeans

from clusterbench.engine.build import load_trained
from clusterbench.engine.hardware import Hardware
from clusterbench.engine.loop import predict_outputs
from clusterbench.metrics import evaluate_clustering

SCORES = ("acc", "nmi", "ari")


def backbone_of(method) -> torch.nn.Module | None:
    """The backbone the method clusters with: an EMA target's when it has one (HTCN)."""
    target = getattr(method, "target_backbone", None)
    return target if target is not None else getattr(method, "backbone", None)


def kmeans_scores(features: torch.Tensor, labels, k: int, n_init: int, seed: int) -> dict[str, float]:
    assign = KMeans(k, n_init=n_init, random_state=seed).fit_predict(features.double().numpy())
    metrics = evaluate_clustering(labels, assign)
    return {name: float(metrics[name]) for name in SCORES}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished run folder (checkpoints/last.pt) of an image method")
    parser.add_argument("--n-init", type=int, default=5, help="k-means restarts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1024, help="evaluation batch size")
    args = parser.parse_args(argv)
    run = load_trained(args.run)
    data, inputs, method = run.data, run.inputs, run.method
    if data.labels is None:
        raise SystemExit(f"{args.run}: the data have no labels to score against")
    hardware = Hardware(device="cpu")
    k, labels = int(data.n_clusters), data.labels.cpu().numpy()

    head = predict_outputs(method, inputs, args.batch, hardware)
    metrics = evaluate_clustering(labels, head.argmax(1).numpy())
    results = {"head": {name: float(metrics[name]) for name in SCORES}}
    embedded = predict_outputs(method, inputs, args.batch, hardware, fn=method.embed)
    if embedded is not None:
        results["embed"] = kmeans_scores(embedded, labels, k, args.n_init, args.seed)
    backbone = backbone_of(method)
    if backbone is not None:
        features = predict_outputs(method, inputs, args.batch, hardware,
                                   fn=lambda views, index: torch.nn.functional.normalize(backbone(views[0]), dim=1))
        results["backbone"] = kmeans_scores(features, labels, k, args.n_init, args.seed)
    for name, scores in results.items():
        print(f"{name:>8}: " + "  ".join(f"{m.upper()} {v:.4f}" for m, v in scores.items()))
    return results


if __name__ == "__main__":
    main()
