"""Augmented views per second: the batched on-device pipeline (clusterbench.data.augment,
configs/augment/cc.yaml) against a torchvision (v1, PIL) per-sample DataLoader pipeline with the
same transforms, in one run on this machine.

    python scripts/bench_augment.py                                        # 32 px, CPU, workers 0 and 2
    python scripts/bench_augment.py --out-size 224 --batches 4 --warmup 2  # the papers' 224 px
    python scripts/bench_augment.py --device cuda                          # ours on the GPU

Data: ``--n`` random uint8 images of ``--channels`` x ``--size`` x ``--size`` held in memory
(CIFAR-like 3 x 32 x 32 by default). Both pipelines make two views per sample:

- baseline: a Dataset over a list of PIL images (built once, outside the timing) whose
  ``__getitem__`` applies a torchvision.transforms Compose twice: RandomResizedCrop(out,
  scale=(0.08, 1)), RandomHorizontalFlip(), RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)],
  p=0.8), RandomGrayscale(0.2), ToTensor(); a DataLoader(batch_size, shuffle=True,
  num_workers=W, persistent_workers=W > 0) for each W in ``--workers``;
- ours: ``build_augment(OmegaConf.load("configs/augment/cc.yaml"))`` with ``size=out``, the
  images as one uint8 tensor on ``--device``; per batch a slice of a random permutation indexes
  the batch and ``augment(batch, generator)`` returns the two float views;
  ``torch.set_num_threads(--threads)``; on CUDA one synchronise at the end of the timing.

Same batch size and number of timed batches for every pipeline, after ``--warmup`` batches.
views/s = 2 x samples / s. Prints a markdown table, the ratio ours / each baseline, a sanity line
(per-sample parameters) and one JSON line; ``main(argv)`` returns the same dict.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from clusterbench.data.augment import RandomResizedCrop, build_augment

ROOT = Path(__file__).resolve().parents[1]
CC_CONFIG = ROOT / "configs" / "augment" / "cc.yaml"


# --------------------------------------------------------------------------- data
def random_images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)


# --------------------------------------------------------------------------- baseline
class TwoViewPIL(torch.utils.data.Dataset):
    """Two torchvision (PIL) views of each image of a prebuilt PIL list."""

    def __init__(self, pil_images: list, transform) -> None:
        self.images = pil_images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i]
        return self.transform(image), self.transform(image)


def torchvision_transform(out_size: int):
    import torchvision.transforms as T

    return T.Compose(
        [
            T.RandomResizedCrop(out_size, scale=(0.08, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.ToTensor(),
        ]
    )


def to_pil(images: torch.Tensor) -> list:
    from PIL import Image

    arrays = images.permute(0, 2, 3, 1).contiguous().numpy()
    if images.shape[1] == 1:
        return [Image.fromarray(a[..., 0], mode="L") for a in arrays]
    return [Image.fromarray(a, mode="RGB") for a in arrays]


def forever(loader):
    """Batches of a DataLoader across epochs (persistent workers are reused per epoch)."""
    while True:
        yield from loader


def bench_torchvision(pil_images: list, out_size: int, batch_size: int, workers: int, warmup: int, batches: int, seed: int) -> float:
    """Seconds for ``batches`` DataLoader batches after ``warmup`` ones."""
    dataset = TwoViewPIL(pil_images, torchvision_transform(out_size))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    it = forever(loader)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        a, b = next(it)
    elapsed = time.perf_counter() - start
    assert a.shape == b.shape == (batch_size, len(pil_images[0].getbands()), out_size, out_size)
    del it, loader  # shuts the persistent workers down
    return elapsed


# --------------------------------------------------------------------------- ours
def build_cc(out_size: int):
    cfg = OmegaConf.load(CC_CONFIG)
    cfg.size = out_size
    return build_augment(cfg)


def bench_ours(images: torch.Tensor, out_size: int, batch_size: int, warmup: int, batches: int, seed: int) -> float:
    """Seconds for ``batches`` batches (index a permutation slice, two views) after ``warmup``."""
    augment = build_cc(out_size)
    device = images.device
    n = images.shape[0]
    g = torch.Generator().manual_seed(seed)  # CPU generator, the usual case (docs/augmentation.md)

    def batch_stream():
        while True:
            perm = torch.randperm(n, generator=g).to(device)
            for i in range(n // batch_size):  # drop_last, as the baseline
                yield perm[i * batch_size : (i + 1) * batch_size]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    stream = batch_stream()
    for _ in range(warmup):
        augment(images[next(stream)], g)
    sync()
    start = time.perf_counter()
    for _ in range(batches):
        a, b = augment(images[next(stream)], g)
    sync()
    elapsed = time.perf_counter() - start
    assert a.shape == b.shape == (batch_size, images.shape[1], out_size, out_size) and a.dtype == torch.float32
    return elapsed


def sanity(images: torch.Tensor, out_size: int, batch_size: int, seed: int) -> dict:
    """Per-sample parameters: the two views of a sample differ; identical inputs get different
    crop boxes and different outputs."""
    augment = build_cc(out_size)
    n = min(batch_size, images.shape[0])
    g = torch.Generator().manual_seed(seed)
    a, b = augment(images[:n], g)
    views_differ = int(((a - b).abs().flatten(1).amax(1) > 0).sum())
    same = images[:1].expand(n, -1, -1, -1)
    crop = next(op for op in augment.views[0].ops if isinstance(op, RandomResizedCrop))
    boxes = crop.boxes(same, torch.Generator().manual_seed(seed + 1))
    distinct_boxes = len({tuple(row) for row in boxes.cpu().tolist()})
    v, _ = augment(same, torch.Generator().manual_seed(seed + 2))
    distinct_outputs = int(torch.unique(v.flatten(1), dim=0).shape[0])
    return {
        "samples": n,
        "views_differ": views_differ,
        "distinct_crop_boxes_same_image": distinct_boxes,
        "distinct_outputs_same_image": distinct_outputs,
        "ok": views_differ == n and distinct_boxes == n and distinct_outputs == n,
    }


# --------------------------------------------------------------------------- main
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000, help="images held in memory")
    parser.add_argument("--size", type=int, default=32, help="input side (px)")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--out-size", type=int, default=None, help="output side of every view (default: --size)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per pipeline")
    parser.add_argument("--warmup", type=int, default=4, help="untimed batches first (>= workers)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers, one baseline each")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for ours (and the main process)")
    parser.add_argument("--device", default="cpu", help="ours: cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    out_size = args.out_size or args.size
    argv = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "scripts/bench_augment.py", *argv])
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda asked but CUDA is not available")
    torch.set_num_threads(args.threads)
    if args.n < args.batch_size:
        sys.exit(f"error: --n {args.n} < --batch-size {args.batch_size}")

    load_before = os.getloadavg()  # the machine may be shared: note its load
    images = random_images(args.n, args.channels, args.size, args.seed)
    pil_images = to_pil(images)  # once, outside the timing
    samples = args.batch_size * args.batches

    rows = []
    for workers in args.workers:
        seconds = bench_torchvision(pil_images, out_size, args.batch_size, workers, args.warmup, args.batches, args.seed)
        rows.append(
            {
                "pipeline": "torchvision (PIL) DataLoader",
                "device": "cpu",
                "threads": 1 if workers else args.threads,
                "workers": workers,
                "seconds": seconds,
                "views_per_s": 2 * samples / seconds,
            }
        )
    on_device = images.to(device)
    seconds = bench_ours(on_device, out_size, args.batch_size, args.warmup, args.batches, args.seed)
    ours = {
        "pipeline": "ours (batched, cc.yaml)",
        "device": str(device),
        "threads": args.threads,
        "workers": 0,
        "seconds": seconds,
        "views_per_s": 2 * samples / seconds,
    }
    rows.append(ours)
    ratio = {f"workers={r['workers']}": ours["views_per_s"] / r["views_per_s"] for r in rows[:-1]}
    check = sanity(on_device, out_size, args.batch_size, args.seed)

    result = {
        "command": command,
        "torch": torch.__version__,
        "config": {
            "n": args.n,
            "in": [args.channels, args.size, args.size],
            "out_size": out_size,
            "batch_size": args.batch_size,
            "batches": args.batches,
            "warmup": args.warmup,
            "threads": args.threads,
            "cpu_count": os.cpu_count(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        },
        "results": rows,
        "ratio": ratio,
        "sanity": check,
    }

    print(f"command: {command}")
    print(
        f"torch {torch.__version__}; {args.n} random uint8 images {args.channels}x{args.size}x{args.size} -> "
        f"{out_size} px, 2 views, batch {args.batch_size}, {args.batches} timed batches after {args.warmup} warm-up; "
        f"{os.cpu_count()} CPUs, load average (1 min) {load_before[0]:.2f} before, {result['config']['loadavg_after'][0]:.2f} after"
    )
    print()
    print("| pipeline | device | threads / workers | views/s | ours / this |")
    print("|---|---|---|---:|---:|")
    for r in rows:
        who = (
            f"{r['threads']} threads"
            if r is ours
            else (f"{r['workers']} workers" if r["workers"] else f"main process, {r['threads']} threads")
        )
        rel = ours["views_per_s"] / r["views_per_s"]
        print(f"| {r['pipeline']} | {r['device']} | {who} | {r['views_per_s']:.0f} | {rel:.2f}x |")
    print()
    print(
        "sanity: "
        + ", ".join(
            [
                f"the two views differ for {check['views_differ']}/{check['samples']} samples",
                f"{check['distinct_crop_boxes_same_image']}/{check['samples']} distinct crop boxes for one image repeated",
                f"{check['distinct_outputs_same_image']}/{check['samples']} distinct views of it",
                "OK" if check["ok"] else "FAILED",
            ]
        )
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
