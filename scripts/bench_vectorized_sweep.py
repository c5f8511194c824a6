"""Wall time of SDCIB's 25-point alpha x beta grid: vectorised (one batched model) against the
same 25 runs as a sequential Hydra multirun, same epochs, same machine, one after the other.

    python scripts/bench_vectorized_sweep.py --epochs 1                          # paper-size network
    python scripts/bench_vectorized_sweep.py --epochs 3 --small                  # 128-128-128-32

Both sweeps are launched as users launch them (`python -m clusterbench.train -m
+sweep=sdcib_alpha_beta ...`, the second with `+launcher=vectorized`); the script times each
command, then compares every member's ACC/NMI with its sequential twin. With one thread they
agree to round-off (tests/test_ensemble.py); with several, a separate run itself moves with the
thread count (by up to 0.086 ACC after one paper-size epoch, docs/results.md), so a larger
difference there is the sequential side's round-off, not the vectorisation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["backbone.hidden_dims=[128,128,128,32]", "model.critic_hidden_dims=[64]"]


def sweep(folder: Path, extra: list[str]) -> float:
    command = [sys.executable, "-m", "clusterbench.train", "-m", "+sweep=sdcib_alpha_beta", *extra, f"hydra.sweep.dir={folder}"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    for line in done.stdout.splitlines():
        if line.startswith("vectorised:"):  # the launcher split a group that did not fit in memory
            print(line, file=sys.stderr, flush=True)
    if done.returncode < 0:  # killed by a signal: SIGKILL is most often the kernel's OOM killer
        sys.exit(
            f"error: {' '.join(command)} was killed by signal {-done.returncode} after {elapsed:.0f} s"
            " (9: most likely out of memory; --max-members caps the members trained at once)"
        )
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def metrics(folder: Path) -> dict[tuple[str, ...], dict[str, float]]:
    found = {}
    for path in folder.glob("*/results.json"):
        results = json.loads(path.read_text())
        key = tuple(sorted(o for o in results["overrides"] if o.startswith(("model.alpha", "model.beta"))))
        found[key] = results["metrics"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--small", action="store_true", help="encoders 128-128-128-32, critics 64 (default: the paper's 1024-1024-1024-128)"
    )
    parser.add_argument("--dataset", default="handwritten")
    parser.add_argument(
        "--max-members", type=int, default=None, help="hydra.launcher.max_members: members per batched model (default: all 25)"
    )
    args = parser.parse_args()
    extra = [f"dataset={args.dataset}", f"trainer.max_epochs={args.epochs}", "trainer.progress=false", *(SMALL if args.small else [])]
    with tempfile.TemporaryDirectory() as tmp:
        sequential = sweep(Path(tmp) / "sequential", extra)
        print(f"sequential multirun: {sequential:.1f} s; now the vectorised one", file=sys.stderr, flush=True)
        cap = [] if args.max_members is None else [f"hydra.launcher.max_members={args.max_members}"]
        vectorised = sweep(Path(tmp) / "vectorised", ["+launcher=vectorized", *cap, *extra])
        seq, vec = metrics(Path(tmp) / "sequential"), metrics(Path(tmp) / "vectorised")
    if len(seq) != 25 or set(seq) != set(vec):
        sys.exit(f"error: expected the same 25 finished members in both sweeps, got {len(seq)} and {len(vec)}")
    worst = {k: max(abs(seq[m][k] - vec[m][k]) for m in seq) for k in ("acc", "nmi")}
    size = "128-128-128-32" if args.small else "1024-1024-1024-128"
    print(f"SDCIB 25-point alpha x beta grid on {args.dataset}, encoders {size}, {args.epochs} epoch(s), torch {torch_version()}")
    print(f"  sequential multirun : {sequential:8.1f} s")
    print(f"  vectorised          : {vectorised:8.1f} s")
    print(f"  ratio               : {sequential / vectorised:8.2f}x")
    print(f"  largest member difference: ACC {worst['acc']:.4f}, NMI {worst['nmi']:.4f}")


def torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
