"""Where does an SDCIB run's clustering come from? Per-modality ACC, the voted partition, and
k-means on the learned representation H_L, from a finished run folder.

    python scripts/sdcib_diagnostics.py outputs/runs/<sdcib run folder>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.cluster import KMeans

from clusterbench.engine.checkpoint import load_checkpoint
from clusterbench.engine.loop import CHECKPOINT, build_method
from clusterbench.methods.base import DataInfo
from clusterbench.metrics import evaluate_clustering


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    cfg = OmegaConf.load(args.run / ".hydra" / "config.yaml")
    data = instantiate(cfg.dataset)
    info = DataInfo(tuple(data.dims), data.n_clusters, data.n_samples)
    method = build_method(cfg, info)
    method.load_state_dict(load_checkpoint(args.run / CHECKPOINT)["method"])
    method.eval()
    y = data.labels.numpy()
    with torch.no_grad():
        # every tensor carries a leading member dimension; a saved run has one member
        layers = [[out.__class__(out.sample[0], out.mean[0], out.std[0]) for out in enc(x)] for enc, x in zip(method.encoders, data.views)]
        probs = method.predict(data.views)[:, 0]  # batch x modalities x clusters
    names = getattr(data, "view_names", None) or [str(v) for v in range(data.n_views)]
    print(f"{'partition':<34} ACC    NMI    clusters")
    for v, name in enumerate(names):
        m = evaluate_clustering(y, probs[:, v].argmax(1).numpy())
        print(f"modality {v} ({name}) cluster layer      {m['acc']:.4f} {m['nmi']:.4f} {m['n_clusters']}")
    voted, _ = method.assign(probs)
    m = evaluate_clustering(y, voted.numpy())
    print(f"{'voted (Eq. 2)':<34} {m['acc']:.4f} {m['nmi']:.4f} {m['n_clusters']}")
    h_last = torch.cat([out[-1].mean for out in layers], dim=1).numpy()
    pred = KMeans(data.n_clusters, n_init=10, random_state=0).fit_predict(h_last)
    m = evaluate_clustering(y, pred)
    print(f"{'k-means on concatenated H_L means':<34} {m['acc']:.4f} {m['nmi']:.4f} {m['n_clusters']}")
    for l in range(len(layers[0])):
        active = np.mean([(out[l].mean > 1e-3).float().mean().item() for out in layers])
        std = np.mean([out[l].std.mean().item() for out in layers])
        print(f"layer {l + 1}: share of active mean units {active:.3f}, mean posterior std {std:.3f}")


if __name__ == "__main__":
    main()
