"""SDCIB's time per epoch on Event-shaped data (1579 samples, 3 modalities of 1000-d counts,
8 classes), at each precision asked for, measured in one run of this script, interleaved.

    python scripts/bench_sdcib_epoch.py                                  # official, fp32 and bf16, 1 thread
    python scripts/bench_sdcib_epoch.py --variant paper --threads 2
    python scripts/bench_sdcib_epoch.py --released-epoch-s 24.8          # the authors' train.py, timed by you

The data are random Poisson counts with Event's shape and dtype (uint16), written as the
authors' .npz (n_views, labels 1..8, view_0..2). The epoch time is (T(3 epochs) - T(1 epoch)) / 2
of two full command-line runs, so start-up, data loading and the final evaluation cancel out
while the per-epoch evaluation (as in the released code) and the 100 extra critic steps stay in.
The precisions take turns (1-epoch runs, then 3-epoch runs), so a change in the machine's load
during the run falls on all of them. The released code is not part of clusterbench: time its
train.py on the same machine and thread count, and pass its seconds per epoch to get the ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_event_like(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n, k = 1579, 8
    labels = rng.integers(1, k + 1, n)
    views = {}
    for v in range(3):
        rates = rng.gamma(0.5, 2.0, size=(k, 1000))  # class-dependent bag-of-words rates
        views[f"view_{v}"] = rng.poisson(rates[labels - 1]).astype(np.uint16)
    np.savez(folder / "event.npz", n_views=3, labels=labels, **views)


def timed_run(folder: Path, epochs: int, args: list[str]) -> float:
    command = [
        sys.executable,
        "-m",
        "clusterbench.train",
        *args,
        "dataset=event",
        f"paths.data_dir={folder}",
        f"trainer.max_epochs={epochs}",
        "trainer.progress=false",
        "trainer.checkpoint=none",
        "trainer.save_embedding=false",
        f"hydra.run.dir={folder}/run_{len(list(folder.glob('run_*')))}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=("official", "paper"), default="official")
    parser.add_argument("--precisions", default="fp32,bf16", help="hardware.precision values, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="hardware.num_threads of every run")
    parser.add_argument(
        "--released-epoch-s", type=float, default=None, help="seconds per epoch of the authors' train.py on this machine, same threads"
    )
    args = parser.parse_args()
    variant = ["+experiment=sdcib_official"] if args.variant == "official" else ["+experiment=sdcib_event"]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    per_precision = {p: [*variant, f"hardware.precision={p}", f"hardware.num_threads={args.threads}"] for p in precisions}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_event_like(folder)
        one = {p: timed_run(folder, 1, a) for p, a in per_precision.items()}
        three = {p: timed_run(folder, 3, a) for p, a in per_precision.items()}
    epoch = {p: (three[p] - one[p]) / 2 for p in precisions}
    print(f"SDCIB variant={args.variant} on Event-shaped data (1579 x 3 x 1000, batch 32), {args.threads} thread(s):")
    for p in precisions:
        line = f"  {p:5s}: {epoch[p]:6.2f} s per epoch (runs: 1 epoch {one[p]:.1f} s, 3 epochs {three[p]:.1f} s)"
        if p != precisions[0]:
            line += f"  {epoch[precisions[0]] / epoch[p]:.2f}x of {precisions[0]}"
        if args.released_epoch_s:
            line += f"  {args.released_epoch_s / epoch[p]:.2f}x of the released code ({args.released_epoch_s:g} s)"
        print(line)


if __name__ == "__main__":
    main()
