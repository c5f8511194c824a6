"""Seconds per training epoch of VTCC, MFAVBs-CC and PICI's three stages on synthetic images,
for MFAVBs-CC's Table 6 (VTCC 6.4 s, MFAVBs-CC 8.4 s per RSOD epoch on a V100).

    python scripts/bench_vit_epoch.py hardware=gpu                      # paper size: 976 x 3 x 224 x 224 (RSOD)
    python scripts/bench_vit_epoch.py hardware=cpu --presets tiny --n 256   # CPU smoke run (the *_tiny presets)
    python scripts/bench_vit_epoch.py hardware=cpu hardware.num_threads=1 --presets mnist --n 2048 --size 28 \
        --clusters 10 --precisions fp32,bf16,fp32,bf16                  # the CPU presets, float32 against bf16

Data: `--n` random uint8 images (RSOD's 976 by default) of 3 x `--size` x `--size` held on the
device, as the engine holds a dataset. For each preset (`vtcc_rsod`, `mfavbs_rsod` with
`model.clip=cached` fed random 512-d anchors, `pici_rsod`; with --presets tiny the `*_tiny` presets)
the model, augmentation and optimiser are built from the composed config (the arguments are
extra Hydra overrides, e.g. `hardware=gpu`), and one epoch is n // batch steps of what the
engine does per batch: augmented views of a random batch, the training step under the
hardware's autocast (bf16 on `hardware=gpu`), backward, optimiser step. `--warmup` steps first
(not timed); on CUDA one synchronise after the timed steps. PICI is timed per stage (the stage
is set directly). `--presets mnist` times the `*_mnist` CPU presets on grey images (`--channels`:
1 for them, 3 otherwise); `--precisions fp32,bf16,...` times every preset once per listed
precision in this one process, in that order (repeat the list to interleave rounds; the last
round of each precision is kept), and adds each preset's fp32 / bf16 ratio. Prints a Markdown
table and one JSON line; `main(argv)` returns the dict.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from clusterbench.engine.loop import build_method
from clusterbench.methods.base import DataInfo

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


class _Ctx:
    epoch = 0
    step = 0

    def __init__(self, device):
        self.device = device


def _compose(preset: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=[f"+experiment={preset}", *overrides])


def time_epoch(cfg, images: torch.Tensor, n_clusters: int, warmup: int, stage: str | None = None) -> float:
    hardware = instantiate(cfg.hardware)
    hardware.setup()
    device = hardware.device
    augment = instantiate(cfg.augment)
    size = augment.size or tuple(images.shape[-2:])
    info = DataInfo(dims=(int(images[0].numel()),), n_clusters=n_clusters, n_samples=images.shape[0], image_shape=(images.shape[1], *size))
    method = build_method(cfg, info).to(device)
    if hardware.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if hasattr(method, "clip_features"):
        method.clip_features.normal_()  # random anchors: the cost does not depend on their values
    if stage is not None:
        method.stage = stage
    optimizer = instantiate(cfg.trainer.optimizer)([p for p in method.parameters() if p.requires_grad])
    generator = torch.Generator(device=device).manual_seed(0)
    batch = min(int(cfg.trainer.batch_size), images.shape[0])
    steps = images.shape[0] // batch
    ctx = _Ctx(device)
    memory = torch.channels_last if hardware.channels_last else torch.contiguous_format

    def step() -> None:
        index = torch.randint(0, images.shape[0], (batch,), device=device)
        views = [v.contiguous(memory_format=memory) for v in augment(images[index], generator)]
        with hardware.autocast():
            loss = method.training_step(views, index, ctx)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    method.train()
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--n", type=int, default=976, help="images (RSOD: 976)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--channels", type=int, default=None, help="image channels (default: 1 for --presets mnist, else 3)")
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--presets", choices=("rsod", "tiny", "mnist"), default="rsod", help="which presets: *_rsod, *_tiny or *_mnist")
    parser.add_argument("--precisions", default=None, help="comma-separated hardware.precision values, timed in this order")
    args = parser.parse_args(argv)
    suffix = args.presets
    channels = args.channels or (1 if suffix == "mnist" else 3)
    runs = [("vtcc", f"vtcc_{suffix}", None), ("mfavbs", f"mfavbs_{suffix}", None)]
    runs += [(f"pici {stage}", f"pici_{suffix}", stage) for stage in ("pretrain", "train", "boost")]
    precisions = args.precisions.split(",") if args.precisions else [None]
    images = None
    rows: dict[str, float] = {}
    for precision in precisions:
        for name, preset, stage in runs:
            extra = ["model.clip=cached", "model.representation=anchor"] if name == "mfavbs" and suffix != "mnist" else []
            chosen = [f"hardware.precision={precision}"] if precision else []
            cfg = _compose(preset, [*extra, *args.overrides, *chosen])
            if images is None:
                device = instantiate(cfg.hardware).device
                images = torch.randint(0, 256, (args.n, channels, args.size, args.size), dtype=torch.uint8, device=device)
            key = f"{name} {precision}" if precision else name
            rows[key] = round(time_epoch(cfg, images, args.clusters, args.warmup, stage), 3)
    device_name = torch.cuda.get_device_name() if images.is_cuda else "cpu"
    print(f"| method | s / epoch ({args.n} images, {args.size} px, {device_name}) |\n| --- | --- |")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds} |")
    result = {"device": device_name, "n": args.n, "size": args.size, "presets": suffix, "seconds_per_epoch": rows}
    if {"fp32", "bf16"} <= set(precisions):
        result["fp32_over_bf16"] = {name: round(rows[f"{name} fp32"] / rows[f"{name} bf16"], 2) for name, _, _ in runs}
        print("fp32 / bf16:", ", ".join(f"{name} {ratio}" for name, ratio in result["fp32_over_bf16"].items()))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
