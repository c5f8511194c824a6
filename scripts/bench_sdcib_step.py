"""Benchmarks the two speed choices in SDCIB's training step, each against its plain baseline,
in one run on this machine:

1. fused Adam (`trainer.optimizer.fused=true`, the default) vs the per-tensor loop
   (`fused=false, foreach=false`): seconds per full SDCIB step on handwritten, batch 32, paper
   architecture;
2. all modality pairs in one `pairwise_nt_xent` call vs one `nt_xent` call per pair
   (forward + backward, 6 modalities, batch 32, 1024-d features).

    python scripts/bench_sdcib_step.py [--steps 30]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from clusterbench.engine.loop import _StepContext, build_method, build_optimizers
from clusterbench.losses.contrastive import nt_xent, pairwise_nt_xent
from clusterbench.methods.base import DataInfo

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")


def seconds_per_call(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def sdcib_step_seconds(overrides: list[str], steps: int) -> float:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    torch.manual_seed(0)
    data = instantiate(cfg.dataset)
    info = DataInfo(tuple(data.dims), data.n_clusters, data.n_samples)
    method = build_method(cfg, info)
    ctx = _StepContext(build_optimizers(method, cfg.trainer), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        index = torch.randint(0, data.n_samples, (cfg.trainer.batch_size,), generator=g)
        terms = method.training_step([v[index] for v in data.views], index, ctx)
        ctx.optimize("main", terms["loss"])

    return seconds_per_call(step, steps)


def nt_xent_seconds(batched: bool, repeats: int, m: int = 6, n: int = 32, d: int = 1024) -> float:
    z = torch.randn(m, n, d, requires_grad=True)

    def once() -> None:
        if batched:
            loss = pairwise_nt_xent(z, 0.1).sum()
        else:
            loss = sum(nt_xent(z[i], z[j], 0.1) for i in range(m) for j in range(i + 1, m))
        loss.backward()

    return seconds_per_call(once, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    plain = sdcib_step_seconds(["trainer.optimizer.fused=false", "+trainer.optimizer.foreach=false"], args.steps)
    fused = sdcib_step_seconds(["trainer.optimizer.fused=true"], args.steps)
    print(f"SDCIB step, plain Adam loop: {plain * 1e3:.1f} ms; fused Adam: {fused * 1e3:.1f} ms; ratio {plain / fused:.2f}x")
    loop = nt_xent_seconds(False, 10 * args.steps)
    batched = nt_xent_seconds(True, 10 * args.steps)
    print(
        f"NT-Xent over 15 modality pairs, one call per pair: {loop * 1e3:.2f} ms; one batched call: {batched * 1e3:.2f} ms; ratio {loop / batched:.2f}x"
    )


if __name__ == "__main__":
    main()
