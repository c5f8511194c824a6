"""The prepared GPU check (issue 15, item 5): runs the project's benchmark scripts at GPU sizes,
each of which measures against its baseline in the same run on the same machine, and writes
their results into ONE JSON file.

    python scripts/gpu_check.py --out gpu_check.json          # on a machine with a CUDA device (~8 min)
    python scripts/gpu_check.py --tiny --out /tmp/check.json  # CPU, tiny sizes: checks the plumbing only
    python scripts/gpu_check.py --only augment,cc_step        # a subset

Checks (script, what it compares):
- cc_step       scripts/bench_cc_step.py: CC ResNet34 training steps/s, the engine's step with
                bf16 + channels_last against a plain PyTorch loop (torchvision DataLoader, fp32)
                over the same model and losses. Its images are 32 px (the script has no size
                option) and it has no torch.compile switch: 224 px and compile are NOT covered.
- augment       scripts/bench_augment.py: augmented views/s at 224 px, the batched on-device
                pipeline against torchvision per-sample DataLoaders.
- vit_epoch     scripts/bench_vit_epoch.py: seconds per epoch of VTCC, MFAVBs-CC and PICI's three
                stages on RSOD-sized synthetic images (976 x 224 px); bf16 against fp32
                (`hardware.precision=fp32`) in the same run as the plain baseline.
- sdcib_epoch   SDCIB on Event-shaped synthetic data (1579 x 3 x 1000, 8 classes): seconds per
                epoch from T(3 epochs) - T(1 epoch) of command-line runs, on the GPU and on the CPU.
- vectorized    scripts/bench_vectorized_sweep.py: the 25-member alpha x beta grid as one batched
                model against 25 sequential runs.
- throughput    the engine's own figure (results.json `throughput`, engine/throughput.py) of two
                command-line runs on the embedded data: SDCIB (MLPs) on handwritten and CC (small
                CNN) on digits, 2 epochs each: training samples/s, counted FLOP/s and their fraction
                of the bf16 matmul peak measured in the same process (the model-FLOP utilisation);
                the sdcib_epoch runs' blocks are kept beside their times too.
Each check runs as a subprocess with a time limit; a failing or timed-out check is recorded
(return code, last output lines) and the others still run. Without a CUDA device and without
--tiny nothing is measured: the JSON says so and the exit status is 3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _event_like(folder: Path, n: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 9, size=n)
    views = {f"view_{i}": rng.poisson(0.3, size=(n, dim)).astype(np.uint16) for i in range(3)}
    np.savez(folder / "event.npz", n_views=np.int64(3), labels=labels, **views)


def _last_json(text: str):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def _run(command: list[str], timeout: float, env: dict | None = None) -> dict:
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        code, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        code, out = "timeout", (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
    record = {"command": " ".join(command), "returncode": code, "wall_s": round(time.perf_counter() - started, 2)}
    parsed = _last_json(out) if code == 0 else None
    if parsed is not None:
        record["result"] = parsed
    else:
        record["output_tail"] = out.splitlines()[-25:]
    return record


def _run_throughput(command: list[str], folder: Path, timeout: float) -> dict:
    """A command-line run into `folder`, with its results.json's throughput block."""
    record = _run([*command, f"hydra.run.dir={folder}"], timeout)
    results = folder / "results.json"
    if record["returncode"] == 0 and results.exists():
        record["throughput"] = json.loads(results.read_text()).get("throughput")
    return record


def _throughput(device: str, epochs: int, timeout: float, threads: int) -> dict:
    hardware = ["hardware=gpu"] if device == "cuda" else ["hardware=cpu", f"hardware.num_threads={threads}"]
    common = [*hardware, f"trainer.max_epochs={epochs}", "trainer.progress=false", "trainer.save_embedding=false"]
    runs = {"sdcib_handwritten": ["model=sdcib", "dataset=handwritten"], "cc_digits": ["model=cc", "dataset=digits"]}
    if device != "cuda":  # --tiny: the plumbing, on small networks
        runs["sdcib_handwritten"] += ["backbone.hidden_dims=[32,16]", "model.critic_hidden_dims=[16]", "trainer.batch_size=200"]
    with tempfile.TemporaryDirectory() as out:
        return {
            name: _run_throughput([PY, "-m", "clusterbench.train", *args, *common], Path(out) / name, timeout)
            for name, args in runs.items()
        }


def _sdcib_epoch(device: str, epochs: tuple[int, int], data: Path, timeout: float, threads: int) -> dict:
    hardware = "hardware=gpu" if device == "cuda" else "hardware=cpu"
    times, records = {}, []
    for e in epochs:
        with tempfile.TemporaryDirectory() as out:
            command = [
                PY,
                "-m",
                "clusterbench.train",
                "model=sdcib",
                "dataset=event",
                f"paths.data_dir={data}",
                hardware,
                f"hardware.num_threads={threads}",
                f"trainer.max_epochs={e}",
                "trainer.progress=false",
                "trainer.save_embedding=false",
            ]
            record = _run_throughput(command, Path(out) / "run", timeout)
            records.append(record)
            times[e] = record["wall_s"] if record["returncode"] == 0 else None
    low, high = epochs
    per_epoch = (times[high] - times[low]) / (high - low) if times[low] is not None and times[high] is not None else None
    return {"device": device, "epochs": list(epochs), "wall_s": times, "s_per_epoch": per_epoch, "runs": records}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU: checks the plumbing, measures nothing useful")
    parser.add_argument("--only", default="", help="comma-separated checks (default all)")
    parser.add_argument("--timeout", type=float, default=150, help="seconds per check (tiny: 120)")
    args = parser.parse_args(argv)

    import torch

    cuda = torch.cuda.is_available()
    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": cuda,
            "device": torch.cuda.get_device_name(0) if cuda else None,
            "cpus": os.cpu_count(),
        },
        "tiny": args.tiny,
        "checks": {},
    }
    if not cuda and not args.tiny:
        report["note"] = "no CUDA device: nothing measured (run with --tiny to check the plumbing on a CPU)"
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(report["note"])
        return 3
    device = "cuda" if cuda and not args.tiny else "cpu"
    wanted = [c for c in args.only.split(",") if c] or ["cc_step", "augment", "vit_epoch", "sdcib_epoch", "vectorized", "throughput"]
    timeout = args.timeout if not args.tiny else min(args.timeout, 120)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        for check in wanted:
            print(f"gpu_check: {check} ...", flush=True)
            if check == "cc_step":
                size = (
                    ["--batch-size", "8", "--steps", "2", "--warmup", "1", "--backbone", "small_cnn", "--workers", "0"]
                    if args.tiny
                    else ["--batch-size", "256", "--steps", "30", "--warmup", "5", "--workers", "8", "--threads", "8"]
                )
                extra = ["--device", "cuda", "--bf16", "--channels-last"] if device == "cuda" else []
                record = _run([PY, "scripts/bench_cc_step.py", *size, *extra], timeout)
            elif check == "augment":
                size = (
                    [
                        "--n",
                        "64",
                        "--size",
                        "32",
                        "--out-size",
                        "64",
                        "--batch-size",
                        "16",
                        "--batches",
                        "2",
                        "--warmup",
                        "1",
                        "--workers",
                        "0",
                    ]
                    if args.tiny
                    else [
                        "--n",
                        "4096",
                        "--size",
                        "256",
                        "--out-size",
                        "224",
                        "--batch-size",
                        "256",
                        "--batches",
                        "8",
                        "--warmup",
                        "2",
                        "--workers",
                        "0",
                        "8",
                    ]
                )
                record = _run([PY, "scripts/bench_augment.py", *size, "--device", device], timeout)
            elif check == "vit_epoch":
                if args.tiny:
                    record = {
                        "bf16": _run(
                            [
                                PY,
                                "scripts/bench_vit_epoch.py",
                                "hardware=cpu",
                                "--presets",
                                "tiny",
                                "--n",
                                "64",
                                "--size",
                                "16",
                                "--warmup",
                                "1",
                            ],
                            timeout,
                        )
                    }
                else:
                    record = {
                        "bf16": _run([PY, "scripts/bench_vit_epoch.py", "hardware=gpu"], timeout),
                        "fp32": _run([PY, "scripts/bench_vit_epoch.py", "hardware=gpu", "hardware.precision=fp32"], timeout),
                    }
            elif check == "sdcib_epoch":
                n, dim, epochs = (200, 50, (1, 2)) if args.tiny else (1579, 1000, (1, 3))
                _event_like(data, n, dim)
                record = {"gpu": _sdcib_epoch("cuda", epochs, data, timeout, 8)} if device == "cuda" else {}
                record["cpu"] = _sdcib_epoch("cpu", epochs, data, timeout, 1 if args.tiny else 8)
                if record.get("gpu") and record["gpu"]["s_per_epoch"] and record["cpu"]["s_per_epoch"]:
                    record["cpu_over_gpu"] = record["cpu"]["s_per_epoch"] / record["gpu"]["s_per_epoch"]
            elif check == "vectorized":
                record = _run(
                    [PY, "scripts/bench_vectorized_sweep.py", "--epochs", "1", *(["--small"] if args.tiny else [])],
                    timeout * (3 if not args.tiny else 1),
                )
            elif check == "throughput":
                record = _throughput(device, 1 if args.tiny else 2, timeout, 1 if args.tiny else 8)
            else:
                record = {"error": f"unknown check {check}"}
            report["checks"][check] = record
            args.out.write_text(json.dumps(report, indent=2) + "\n")  # what is done so far survives a kill
    report["wall_s"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu_check: {len(report['checks'])} checks in {report['wall_s']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
