"""CC training steps per second: clusterbench's engine step against a plain PyTorch loop over the
same model and losses, in one run on this machine.

    python scripts/bench_cc_step.py                                  # ResNet34, 32 px, batch 64, CPU
    python scripts/bench_cc_step.py --workers 0                      # baseline loads in the main process
    python scripts/bench_cc_step.py --device cuda --bf16 --channels-last --steps 50 --warmup 5

Data: ``--n`` random uint8 images 3 x 32 x 32 held in memory (default 64 x (warmup + steps), so
each pipeline sees every image once and every batch is fresh), 10 clusters.

Both pipelines train the same ContrastiveClustering (``model=cc backbone=<--backbone>``, built
from the composed Hydra config with the same seed: same class, same initial weights, same
CCObjective losses) on two augmented views of each image, batch ``--batch-size``:

- clusterbench: the engine's own pieces (clusterbench/engine/loop.py): ``build_method``,
  ``build_optimizers`` (the config's Adam, lr 3e-4, fused), ``ImageInputs`` with
  ``configs/augment/cc.yaml`` (uint8 images on the device, batched per-sample augmentation drawn
  from a device generator), ``Hardware.autocast`` (``--bf16``), channels_last weights and views
  (``--channels-last``), and the engine's step: a slice of a device permutation ->
  ``inputs.train_batch`` -> ``method.training_step`` -> ``_StepContext.optimize`` (zero_grad
  set_to_none / backward / step) -> ``_accumulate`` the loss terms on the device; ONE host sync
  (``tolist``) at the end of the timed steps, as the engine's one sync per epoch; on CUDA
  ``Hardware.setup`` turns TF32 matmuls on, as in a run;
- plain PyTorch: the usual hand-written loop: a Dataset over PIL images (built once, outside the
  timing) whose ``__getitem__`` applies a torchvision.transforms (v1) Compose twice
  (RandomResizedCrop(32), RandomHorizontalFlip(), RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)],
  p=0.8), RandomGrayscale(0.2), ToTensor()); DataLoader(batch_size, shuffle=True,
  num_workers=--workers, drop_last=True, persistent_workers=workers > 0, pin_memory on CUDA);
  ``torch.optim.Adam(lr=3e-4)`` with its defaults (not fused: the per-tensor loop on CPU,
  foreach on CUDA); fp32 with PyTorch's default TF32 flags; ``loss.item()`` logged every step
  (a host sync per step).

``torch.set_num_threads(--threads)`` for the compute of both (the DataLoader's worker processes
use one thread each, as DataLoader sets). Same number of timed steps (``--steps``) after
``--warmup`` untimed ones; on CUDA a synchronise at each timing boundary. Per-step breakdown:
"data" is the time to get the step's two views on the device (ours: ``train_batch``; baseline:
waiting on the DataLoader + ``.to(device)``), "compute" the rest (forward, losses, backward,
optimiser, logging); on CUDA measured with CUDA events (no extra syncs). Prints a markdown table,
the ratio clusterbench / plain and one JSON line; ``main(argv)`` returns the same dict.
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
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from clusterbench.engine.hardware import Hardware
from clusterbench.engine.inputs import ImageInputs
from clusterbench.engine.loop import AUGMENT_SEED_OFFSET, _accumulate, _StepContext, build_method, build_optimizers
from clusterbench.data.augment import build_augment
from clusterbench.methods.base import DataInfo

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = str(ROOT / "configs")
N_CLUSTERS = 10


# --------------------------------------------------------------------------- shared
def compose_cc(backbone: str):
    """The composed `model=cc backbone=<backbone>` config (its model, loss, augment, optimiser)."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("train", overrides=["model=cc", f"backbone={backbone}"])


def random_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def build_model(cfg, info: DataInfo, seed: int):
    """The engine's `build_method` from a fixed seed: both pipelines start from the same weights."""
    torch.manual_seed(seed)
    return build_method(cfg, info)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Clock:
    """Per-step data / compute intervals: perf_counter on the CPU (ops are synchronous there),
    CUDA events on the GPU (read after the final synchronise, so no extra syncs in the loop)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        """Seconds between consecutive marks (after the caller's synchronise)."""
        if self.cuda:
            return [a.elapsed_time(b) / 1e3 for a, b in zip(self.marks, self.marks[1:])]
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(name: str, seconds: float, steps: int, marks: list[float], extra: dict) -> dict:
    # marks: start, after data, after compute, after data, ... -> even intervals data, odd compute
    data = sum(marks[0::2])
    compute = sum(marks[1::2])
    return {
        "pipeline": name,
        "seconds": seconds,
        "steps": steps,
        "steps_per_s": steps / seconds,
        "ms_per_step": 1e3 * seconds / steps,
        "data_ms_per_step": 1e3 * data / steps,
        "compute_ms_per_step": 1e3 * compute / steps,
        "other_ms_per_step": 1e3 * (seconds - data - compute) / steps,
        **extra,
    }


# --------------------------------------------------------------------------- clusterbench
def bench_clusterbench(cfg, images: torch.Tensor, args, device: torch.device) -> tuple[dict, torch.nn.Module]:
    hardware = Hardware(device=str(device), precision="bf16" if args.bf16 else "fp32", deterministic=False,
                        num_threads=args.threads, channels_last=args.channels_last)
    hardware.setup()
    generator = torch.Generator().manual_seed(args.seed)  # the engine's permutation stream (CPU)
    augment_generator = torch.Generator(device=device).manual_seed(args.seed + AUGMENT_SEED_OFFSET)
    inputs = ImageInputs(images, build_augment(cfg.augment), device, hardware.channels_last)
    info = DataInfo(dims=(images[0].numel(),), n_clusters=N_CLUSTERS, n_samples=inputs.n_samples, image_shape=inputs.image_shape)
    method = build_model(cfg, info, args.seed).to(device)
    if hardware.channels_last:
        method = method.to(memory_format=torch.channels_last)
    optimizers = build_optimizers(method, cfg.trainer)
    ctx = _StepContext(optimizers, device)
    method.train()
    n = inputs.n_samples
    batch_size = args.batch_size
    total = args.warmup + args.steps
    clock = Clock(device)

    def batches():
        while True:
            order = torch.randperm(n, generator=generator).to(device)
            for b in range(n // batch_size):  # drop_last, as the engine's default
                yield order[b * batch_size : (b + 1) * batch_size]

    stream = batches()
    sums: dict[str, torch.Tensor] = {}
    for step in range(total):
        if step == args.warmup:
            sync(device)
            sums = {}
            clock.marks = []
            start = time.perf_counter()
            clock.mark()
        index = next(stream)
        views = inputs.train_batch(index, augment_generator)
        if step >= args.warmup:
            clock.mark()
        with hardware.autocast():
            terms = method.training_step(views, index, ctx)
        ctx.optimize("main", terms["loss"].sum())
        method.on_train_batch_end(ctx)
        ctx.step += 1
        _accumulate(sums, terms, scale=1.0 / args.steps)
        if step >= args.warmup:
            clock.mark()
    # the engine's one host sync per epoch: the mean terms and the last batch's loss
    names = [*sums, "last_batch_loss"]
    values = torch.stack([*sums.values(), terms["loss"].detach().float().reshape(-1)]).t().tolist()[0]
    sync(device)
    seconds = time.perf_counter() - start
    logged = dict(zip(names, values))
    optimizer = optimizers["main"]
    extra = {
        "device": str(device),
        "precision": hardware.precision,
        "channels_last": hardware.channels_last,
        "optimizer": f"Adam(lr={optimizer.defaults['lr']}, fused={optimizer.defaults.get('fused')})",
        "data_pipeline": "ImageInputs + cc.yaml (batched, on device)",
        "workers": 0,
        "host_syncs": 1,
        "mean_loss": logged["loss"],
        "params": n_params(method),
    }
    return summarize("clusterbench", seconds, args.steps, clock.intervals(), extra), method


# --------------------------------------------------------------------------- plain PyTorch
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


def cc_transform(size: int):
    import torchvision.transforms as T

    return T.Compose(
        [
            T.RandomResizedCrop(size),  # scale (0.08, 1), ratio (3/4, 4/3): torchvision defaults
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.ToTensor(),
        ]
    )


def to_pil(images: torch.Tensor) -> list:
    from PIL import Image

    return [Image.fromarray(a, mode="RGB") for a in images.permute(0, 2, 3, 1).contiguous().numpy()]


def forever(loader):
    while True:
        yield from loader


def build_plain_model(cfg, info: DataInfo, seed: int):
    """The same class, backbone config and CCObjective, hand-built as a plain script would
    (no engine): from the same seed, the same initial weights as `build_model`."""
    from clusterbench.methods.cc import ContrastiveClustering

    torch.manual_seed(seed)
    objective = instantiate(cfg.loss, _convert_="all")
    model = ContrastiveClustering(info, cfg.backbone, objective, **{k: v for k, v in cfg.model.items() if k != "_target_"})
    return model, objective


def bench_plain(cfg, images: torch.Tensor, args, device: torch.device) -> tuple[dict, torch.nn.Module]:
    torch.set_num_threads(args.threads)
    if device.type == "cuda":  # PyTorch's defaults (Hardware.setup of ours turns TF32 matmuls on)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True
    pil_images = to_pil(images)  # once, outside the timing
    info = DataInfo(dims=(images[0].numel(),), n_clusters=N_CLUSTERS, n_samples=len(pil_images), image_shape=tuple(images.shape[1:]))
    model, objective = build_plain_model(cfg, info, args.seed)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.trainer.optimizer.lr))
    loader = torch.utils.data.DataLoader(
        TwoViewPIL(pil_images, cc_transform(images.shape[-1])),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(args.seed),
    )
    model.train()
    it = forever(loader)
    clock = Clock(device)
    total = args.warmup + args.steps
    losses = []
    for step in range(total):
        if step == args.warmup:
            sync(device)
            losses = []
            clock.marks = []
            start = time.perf_counter()
            clock.mark()
        x_a, x_b = next(it)
        x_a, x_b = x_a.to(device, non_blocking=True), x_b.to(device, non_blocking=True)
        if step >= args.warmup:
            clock.mark()
        z_a, c_a = model._heads(x_a)  # backbone, instance head, cluster head; one call per view
        z_b, c_b = model._heads(x_b)
        loss = objective(z_a, z_b, c_a, c_b)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())  # the usual per-step logging: one host sync per step
        if step >= args.warmup:
            clock.mark()
    sync(device)
    seconds = time.perf_counter() - start
    del it, loader  # shuts the persistent workers down
    extra = {
        "device": str(device),
        "precision": "fp32",
        "channels_last": False,
        "optimizer": f"Adam(lr={optimizer.defaults['lr']}, defaults: fused={optimizer.defaults.get('fused')}, foreach={optimizer.defaults.get('foreach')})",
        "data_pipeline": "torchvision v1 PIL Dataset + DataLoader",
        "workers": args.workers,
        "host_syncs": args.steps,
        "mean_loss": sum(losses) / len(losses),
        "params": n_params(model),
    }
    return summarize("plain PyTorch", seconds, args.steps, clock.intervals(), extra), model


# --------------------------------------------------------------------------- main
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet34", help="configs/backbone/<name> (resnet34: the issue's setting)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per pipeline (CPU ResNet34: ~7-25 s a step)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--n", type=int, default=None, help="images (default batch x (warmup + steps): fresh batches)")
    parser.add_argument("--workers", type=int, default=2, help="baseline DataLoader num_workers (2 = the cores here)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both pipelines' compute")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both pipelines)")
    parser.add_argument("--bf16", action="store_true", help="clusterbench: bf16 autocast (Hardware precision=bf16)")
    parser.add_argument("--channels-last", action="store_true", help="clusterbench: channels_last weights and views")
    parser.add_argument("--order", choices=("plain-first", "ours-first"), default="plain-first")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "scripts/bench_cc_step.py", *argv])
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda asked but CUDA is not available")
    n = args.n or args.batch_size * (args.warmup + args.steps)
    if n < args.batch_size:
        sys.exit(f"error: --n {n} < --batch-size {args.batch_size}")
    torch.set_num_threads(args.threads)
    cfg = compose_cc(args.backbone)
    images = random_images(n, seed=args.seed)

    load_before = os.getloadavg()
    runners = {"plain": bench_plain, "ours": bench_clusterbench}
    order = ["plain", "ours"] if args.order == "plain-first" else ["ours", "plain"]
    rows, models = {}, {}
    for key in order:
        rows[key], models[key] = runners[key](cfg, images, args, device)
    load_after = os.getloadavg()
    ours, plain = rows["ours"], rows["plain"]
    ratio = ours["steps_per_s"] / plain["steps_per_s"]
    # same model: identical parameter shapes (initial weights were equal: same seed, same builder)
    same_shapes = [p.shape for p in models["ours"].parameters()] == [p.shape for p in models["plain"].parameters()]

    result = {
        "command": command,
        "torch": torch.__version__,
        "config": {"backbone": args.backbone, "image": [3, 32, 32], "n": n, "clusters": N_CLUSTERS, "batch_size": args.batch_size,
                   "steps": args.steps, "warmup": args.warmup, "workers": args.workers, "threads": args.threads,
                   "device": str(device), "bf16": args.bf16, "channels_last": args.channels_last, "order": args.order,
                   "cpu_count": os.cpu_count(), "loadavg_before": [round(v, 2) for v in load_before],
                   "loadavg_after": [round(v, 2) for v in load_after]},
        "results": [rows[k] for k in order],
        "ratio": ratio,
        "same_parameter_shapes": same_shapes,
        "params": {"clusterbench": ours["params"], "plain": plain["params"]},
    }

    print(f"command: {command}")
    print(f"torch {torch.__version__}; CC, backbone {args.backbone}, {n} random uint8 images 3x32x32, {N_CLUSTERS} clusters, "
          f"batch {args.batch_size}, 2 views, {args.steps} timed steps after {args.warmup} warm-up; {args.threads} compute threads; "
          f"{os.cpu_count()} CPUs, load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{ours['params']:,} parameters in both models")
    print()
    print("| pipeline | data | optimiser | precision | host syncs | steps/s | ms/step | data ms | compute ms | mean loss |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in result["results"]:
        data = r["data_pipeline"] + (f", {r['workers']} workers" if r["pipeline"] != "clusterbench" else "")
        prec = r["precision"] + (", channels_last" if r["channels_last"] else "")
        print(f"| {r['pipeline']} ({r['device']}) | {data} | {r['optimizer']} | {prec} | {r['host_syncs']} | "
              f"{r['steps_per_s']:.3f} | {r['ms_per_step']:.0f} | {r['data_ms_per_step']:.0f} | {r['compute_ms_per_step']:.0f} | {r['mean_loss']:.4f} |")
    print()
    print(f"ratio clusterbench / plain PyTorch: {ratio:.2f}x steps/s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
