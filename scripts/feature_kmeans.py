"""Does a finished run's cluster head use what its network learned? k-means on the learned
features against the head's own clusters.

    python scripts/feature_kmeans.py outputs/runs/<run folder> [--n-init 5] [--seed 0]

Rebuilds the run's data and method from checkpoints/last.pt and scores, against the labels:
`head` (the method's `predict`, what results.json reports), `embed` (k-means on the method's
`embed`, e.g. CC's normalised instance features, HTCN's target projection) and `backbone`
(k-means on the L2-normalised backbone output; HTCN's target backbone, the network it
clusters with). A head far below k-means on its own features means the clustering objective,
not the representation, holds the method back. For a multi-modal method (SDCIB: one head and
one embedding part per modality) it also scores `head[v]`, modality v's own head, and
`embed[v]`, k-means on modality v's part of the embedding; `head` is then the method's final
partition (SDCIB: the aligned vote). Reads the labels: a diagnostic, not a model-selection tool.
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


def scores_of(labels, assignment) -> dict[str, float]:
    metrics = evaluate_clustering(labels, torch.as_tensor(assignment).cpu().numpy())
    return {name: float(metrics[name]) for name in SCORES}


def kmeans_scores(features: torch.Tensor, labels, k: int, n_init: int, seed: int) -> dict[str, float]:
    return scores_of(labels, KMeans(k, n_init=n_init, random_state=seed).fit_predict(features.double().numpy()))


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished run folder (checkpoints/last.pt)")
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

    head = method.member_outputs(predict_outputs(method, inputs, args.batch, hardware))[0]
    results = {"head": scores_of(labels, method.assign(head)[0])}
    modalities = head.shape[1] if head.dim() == 3 else 0  # batch x modalities x clusters
    for v in range(modalities):
        results[f"head[{v}]"] = scores_of(labels, head[:, v].argmax(dim=-1))
    embedded = predict_outputs(method, inputs, args.batch, hardware, fn=method.embed)
    if embedded is not None:
        embedded = method.member_outputs(embedded)[0]
        results["embed"] = kmeans_scores(embedded, labels, k, args.n_init, args.seed)
        for v, part in enumerate(embedded.chunk(modalities, dim=1) if modalities else []):
            results[f"embed[{v}]"] = kmeans_scores(part, labels, k, args.n_init, args.seed)
    backbone = backbone_of(method)
    if backbone is not None:
        features = predict_outputs(
            method, inputs, args.batch, hardware, fn=lambda views, index: torch.nn.functional.normalize(backbone(views[0]), dim=1)
        )
        results["backbone"] = kmeans_scores(features, labels, k, args.n_init, args.seed)
    for name, scores in results.items():
        print(f"{name:>9}: " + "  ".join(f"{m.upper()} {v:.4f}" for m, v in scores.items()))
    return results


if __name__ == "__main__":
    main()
