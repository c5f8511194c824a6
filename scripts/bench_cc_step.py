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
``--warmup`` untimed ones.

Schedule (``--schedule``): "interleaved" (the CPU default) alternates the pipelines step by step
(plain, ours, plain, ours, ...) and times each step on its own, so a shared machine's load drift
hits both alike (the baseline's workers may prefetch during our steps, which only costs ours);
"sequential" (the CUDA default) runs all of one pipeline, then the other, timed from the first to
the last step with a CUDA synchronise only at those boundaries, so ours keeps its one host sync.

Per-step breakdown: "data" = getting the step's two views on the device (ours: ``train_batch``;
baseline: waiting on the DataLoader + ``.to(device)``), "forward" = model + losses, "backward +
step" = zero_grad, backward, optimiser step (and the baseline's ``loss.item()``); on CUDA read
from CUDA events (no extra syncs). After the timing, each pipeline's own optimiser step is timed
alone on its trained model (``--optim-repeats`` calls): the fused vs default Adam share.
Prints a markdown table, the ratio clusterbench / plain and one JSON line; ``main(argv)`` returns
the same dict.
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

from clusterbench.data.augment import build_augment
from clusterbench.engine.hardware import Hardware
from clusterbench.engine.inputs import ImageInputs
from clusterbench.engine.loop import AUGMENT_SEED_OFFSET, _accumulate, _StepContext, build_method, build_optimizers
from clusterbench.methods.base import DataInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script, also when loaded by path
from bench_augment import TwoViewPIL, torchvision_transform  # noqa: E402  (the same PIL baseline)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = str(ROOT / "configs")
N_CLUSTERS = 10
PHASES = ("data", "forward", "backward_step")


# --------------------------------------------------------------------------- shared
def compose_cc(backbone: str):
    """The composed `model=cc backbone=<backbone>` config (its model, loss, augment, optimiser)."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("train", overrides=["model=cc", f"backbone={backbone}"])


def random_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Per-step phase marks: perf_counter on the CPU (ops are synchronous there), CUDA events on
    the GPU (read after the caller's final synchronise, so no extra syncs in the loop)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.steps: list[list] = []
        self.on = False

    def begin(self) -> None:
        if self.on:
            self.steps.append([])
            self.mark()

    def mark(self) -> None:
        if not self.on:
            return
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.steps[-1].append(event)
        else:
            self.steps[-1].append(time.perf_counter())

    def phase_seconds(self) -> list[float]:
        """Seconds per phase, summed over the timed steps."""
        totals = [0.0] * len(PHASES)
        for marks in self.steps:
            for i, (a, b) in enumerate(zip(marks, marks[1:])):
                totals[i] += a.elapsed_time(b) / 1e3 if self.cuda else b - a
        return totals


# --------------------------------------------------------------------------- clusterbench
def build_model(cfg, info: DataInfo, seed: int):
    """The engine's `build_method` from a fixed seed: both pipelines start from the same weights."""
    torch.manual_seed(seed)
    return build_method(cfg, info)


class Clusterbench:
    """The engine's step (fit_members' inner loop) over ImageInputs."""

    name = "clusterbench"

    def __init__(self, cfg, images: torch.Tensor, args, device: torch.device) -> None:
        self.hardware = Hardware(
            device=str(device),
            precision="bf16" if args.bf16 else "fp32",
            deterministic=False,
            num_threads=args.threads,
            channels_last=args.channels_last,
        )
        self.hardware.setup()
        self.device = device
        self.generator = torch.Generator().manual_seed(args.seed)  # the engine's permutation stream (CPU)
        self.augment_generator = torch.Generator(device=device).manual_seed(args.seed + AUGMENT_SEED_OFFSET)
        self.inputs = ImageInputs(images, build_augment(cfg.augment), device, self.hardware.channels_last)
        info = DataInfo(
            dims=(images[0].numel(),), n_clusters=N_CLUSTERS, n_samples=self.inputs.n_samples, image_shape=self.inputs.image_shape
        )
        method = build_model(cfg, info, args.seed).to(device)
        if self.hardware.channels_last:
            method = method.to(memory_format=torch.channels_last)
        self.model = method
        self.optimizer = build_optimizers(method, cfg.trainer)["main"]
        self.ctx = _StepContext({"main": self.optimizer}, device)
        self.batch_size = args.batch_size
        self.clock = Clock(device)
        self.stream = self._batches()
        self.sums: dict[str, torch.Tensor] = {}
        self.scale = 1.0 / args.steps
        self.terms = None
        method.train()

    def _batches(self):
        n = self.inputs.n_samples
        while True:
            order = torch.randperm(n, generator=self.generator).to(self.device)
            for b in range(n // self.batch_size):  # drop_last, the engine's default
                yield order[b * self.batch_size : (b + 1) * self.batch_size]

    def enter(self) -> None:
        """Global settings of this pipeline (the pipelines alternate in one process)."""
        self.hardware.setup()

    def reset(self) -> None:
        """Start of the timed steps: a fresh epoch's sums."""
        self.sums = {}

    def step(self) -> None:
        clock = self.clock
        clock.begin()
        index = next(self.stream)
        views = self.inputs.train_batch(index, self.augment_generator)
        clock.mark()
        with self.hardware.autocast():
            terms = self.model.training_step(views, index, self.ctx)
        clock.mark()
        self.ctx.optimize("main", terms["loss"].sum())
        self.model.on_train_batch_end(self.ctx)
        self.ctx.step += 1
        _accumulate(self.sums, terms, scale=self.scale)
        self.terms = terms
        clock.mark()

    def finish(self) -> dict:
        """The engine's one host sync per epoch: the mean terms and the last batch's loss."""
        names = [*self.sums, "last_batch_loss"]
        values = torch.stack([*self.sums.values(), self.terms["loss"].detach().float().reshape(-1)]).t().tolist()[0]
        logged = dict(zip(names, values))
        return {"mean_loss": logged["loss"]}

    def describe(self) -> dict:
        return {
            "device": str(self.device),
            "precision": self.hardware.precision,
            "channels_last": self.hardware.channels_last,
            "optimizer": f"Adam(lr={self.optimizer.defaults['lr']}, fused={self.optimizer.defaults.get('fused')})",
            "data_pipeline": "ImageInputs + cc.yaml (batched, on device)",
            "workers": 0,
        }

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- plain PyTorch
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


class Plain:
    """The common hand-written loop: DataLoader of PIL transforms, default Adam, loss.item() per step."""

    name = "plain PyTorch"

    def __init__(self, cfg, images: torch.Tensor, args, device: torch.device) -> None:
        self.threads = args.threads
        self.device = device
        self.enter()
        pil_images = to_pil(images)  # once, outside the timing
        info = DataInfo(dims=(images[0].numel(),), n_clusters=N_CLUSTERS, n_samples=len(pil_images), image_shape=tuple(images.shape[1:]))
        model, self.objective = build_plain_model(cfg, info, args.seed)
        self.model = model.to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=float(cfg.trainer.optimizer.lr))
        self.workers = args.workers
        self.loader = torch.utils.data.DataLoader(
            TwoViewPIL(pil_images, torchvision_transform(images.shape[-1])),
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.workers,
            drop_last=True,
            persistent_workers=args.workers > 0,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(args.seed),
        )
        self.it = forever(self.loader)
        self.clock = Clock(device)
        self.losses: list[float] = []
        self.model.train()

    def enter(self) -> None:
        """Global settings of this pipeline (the pipelines alternate in one process)."""
        torch.set_num_threads(self.threads)
        if self.device.type == "cuda":  # PyTorch's defaults (ours' Hardware.setup turns TF32 matmuls on)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = True

    def reset(self) -> None:
        self.losses = []

    def step(self) -> None:
        clock = self.clock
        clock.begin()
        x_a, x_b = next(self.it)
        x_a, x_b = x_a.to(self.device, non_blocking=True), x_b.to(self.device, non_blocking=True)
        clock.mark()
        z_a, c_a = self.model._heads(x_a)  # backbone, instance head, cluster head; one call per view
        z_b, c_b = self.model._heads(x_b)
        loss = self.objective(z_a, z_b, c_a, c_b)["loss"]
        clock.mark()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.losses.append(loss.item())  # the usual per-step logging: one host sync per step
        clock.mark()

    def finish(self) -> dict:
        return {"mean_loss": sum(self.losses) / len(self.losses)}

    def describe(self) -> dict:
        d = self.optimizer.defaults
        return {
            "device": str(self.device),
            "precision": "fp32",
            "channels_last": False,
            "optimizer": f"Adam(lr={d['lr']}, defaults: fused={d.get('fused')}, foreach={d.get('foreach')})",
            "data_pipeline": "torchvision v1 PIL Dataset + DataLoader",
            "workers": self.workers,
        }

    def close(self) -> None:
        del self.it, self.loader  # shuts the persistent workers down


# --------------------------------------------------------------------------- timing
def optimizer_step_ms(pipeline, repeats: int) -> float:
    """One optimiser step alone (the trained model's last gradients), ms per call."""
    if repeats <= 0:
        return float("nan")
    pipeline.enter()
    sync(pipeline.device)
    start = time.perf_counter()
    for _ in range(repeats):
        pipeline.optimizer.step()
    sync(pipeline.device)
    return 1e3 * (time.perf_counter() - start) / repeats


def warm_up(p, steps: int) -> None:
    """Untimed steps, then the pipeline's counters reset and its clock on."""
    p.enter()
    for _ in range(steps):
        p.step()
    sync(p.device)
    p.reset()
    p.clock.on = True


def run_sequential(pipelines: list, args) -> dict:
    seconds = {}
    for p in pipelines:
        warm_up(p, args.warmup)
        start = time.perf_counter()
        for _ in range(args.steps):
            p.step()
        p.logged = p.finish()
        sync(p.device)
        seconds[p.name] = time.perf_counter() - start
        p.clock.on = False
    return seconds


def run_interleaved(pipelines: list, args) -> dict:
    for p in pipelines:
        warm_up(p, args.warmup)
    seconds = {p.name: 0.0 for p in pipelines}
    for _ in range(args.steps):
        for p in pipelines:
            p.enter()
            start = time.perf_counter()
            p.step()
            sync(p.device)
            seconds[p.name] += time.perf_counter() - start
    for p in pipelines:
        p.enter()
        start = time.perf_counter()
        p.logged = p.finish()
        sync(p.device)
        seconds[p.name] += time.perf_counter() - start
        p.clock.on = False
    return seconds


def summarize(p, seconds: float, steps: int, optim_ms: float) -> dict:
    phases = dict(zip(PHASES, p.clock.phase_seconds()))
    row = {
        "pipeline": p.name,
        "seconds": seconds,
        "steps": steps,
        "steps_per_s": steps / seconds,
        "ms_per_step": 1e3 * seconds / steps,
        **{f"{k}_ms_per_step": 1e3 * v / steps for k, v in phases.items()},
        "other_ms_per_step": 1e3 * (seconds - sum(phases.values())) / steps,
        "optimizer_step_alone_ms": optim_ms,
        "host_syncs": 1 if p.name == "clusterbench" else steps,
        **p.logged,
        **p.describe(),
        "params": n_params(p.model),
    }
    return row


# --------------------------------------------------------------------------- main
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet34", help="configs/backbone/<name> (resnet34: the issue's setting)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per pipeline (CPU ResNet34: 15-25 s a step on 2 shared cores)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first, per pipeline")
    parser.add_argument("--n", type=int, default=None, help="images (default batch x (warmup + steps): fresh batches)")
    parser.add_argument("--workers", type=int, default=2, help="baseline DataLoader num_workers (2 = the cores here)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both pipelines' compute")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both pipelines)")
    parser.add_argument("--bf16", action="store_true", help="clusterbench: bf16 autocast (Hardware precision=bf16)")
    parser.add_argument("--channels-last", action="store_true", help="clusterbench: channels_last weights and views")
    parser.add_argument(
        "--schedule", choices=("auto", "interleaved", "sequential"), default="auto", help="auto: interleaved on CPU, sequential on CUDA"
    )
    parser.add_argument("--order", choices=("plain-first", "ours-first"), default="plain-first")
    parser.add_argument("--optim-repeats", type=int, default=3, help="optimiser steps timed alone afterwards (0: skip)")
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
    schedule = args.schedule if args.schedule != "auto" else ("sequential" if device.type == "cuda" else "interleaved")
    torch.set_num_threads(args.threads)
    cfg = compose_cc(args.backbone)
    images = random_images(n, seed=args.seed)

    load_before = os.getloadavg()
    plain = Plain(cfg, images, args, device)
    ours = Clusterbench(cfg, images, args, device)
    pipelines = [plain, ours] if args.order == "plain-first" else [ours, plain]
    try:
        seconds = (run_interleaved if schedule == "interleaved" else run_sequential)(pipelines, args)
        load_after = os.getloadavg()
        rows = [summarize(p, seconds[p.name], args.steps, optimizer_step_ms(p, args.optim_repeats)) for p in pipelines]
    finally:
        plain.close()
    by_name = {r["pipeline"]: r for r in rows}
    ratio = by_name["clusterbench"]["steps_per_s"] / by_name["plain PyTorch"]["steps_per_s"]
    same_shapes = [p.shape for p in ours.model.parameters()] == [p.shape for p in plain.model.parameters()]

    result = {
        "command": command,
        "torch": torch.__version__,
        "config": {
            "backbone": args.backbone,
            "image": [3, 32, 32],
            "n": n,
            "clusters": N_CLUSTERS,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "workers": args.workers,
            "threads": args.threads,
            "device": str(device),
            "bf16": args.bf16,
            "channels_last": args.channels_last,
            "schedule": schedule,
            "order": args.order,
            "cpu_count": os.cpu_count(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in load_after],
        },
        "results": rows,
        "ratio": ratio,
        "same_parameter_shapes": same_shapes,
        "params": {"clusterbench": n_params(ours.model), "plain": n_params(plain.model)},
    }

    print(f"command: {command}")
    print(
        f"torch {torch.__version__}; CC, backbone {args.backbone}, {n} random uint8 images 3x32x32, {N_CLUSTERS} clusters, "
        f"batch {args.batch_size}, 2 views, {args.steps} timed steps after {args.warmup} warm-up, {schedule}; "
        f"{args.threads} compute threads; {os.cpu_count()} CPUs, load average (1 min) {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; {result['params']['clusterbench']:,} parameters in both models"
    )
    print()
    print(
        "| pipeline | data | optimiser | precision | host syncs | steps/s | ms/step | data ms | forward ms | backward+step ms | optimiser step alone ms | mean loss |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        data = r["data_pipeline"] + (f", {r['workers']} workers" if r["pipeline"] != "clusterbench" else "")
        prec = r["precision"] + (", channels_last" if r["channels_last"] else "")
        print(
            f"| {r['pipeline']} ({r['device']}) | {data} | {r['optimizer']} | {prec} | {r['host_syncs']} | "
            f"{r['steps_per_s']:.4f} | {r['ms_per_step']:.0f} | {r['data_ms_per_step']:.0f} | {r['forward_ms_per_step']:.0f} | "
            f"{r['backward_step_ms_per_step']:.0f} | {r['optimizer_step_alone_ms']:.0f} | {r['mean_loss']:.4f} |"
        )
    print()
    print(f"ratio clusterbench / plain PyTorch: {ratio:.2f}x steps/s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
