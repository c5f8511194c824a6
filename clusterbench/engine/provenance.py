"""What results.json records about the software that produced a run."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("clusterbench", "torch", "numpy", "scipy", "scikit-learn", "h5py", "hydra-core", "omegaconf")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        if name == "torch":
            import torch

            versions[name] = torch.__version__  # keeps the build tag (+cpu, +cu126 ...)
            continue
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state() -> dict[str, str | bool | None]:
    """The commit of the clusterbench checkout (None outside a git checkout) and whether it is dirty."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


# keys left out of the config hash: `resume` names the folder a run continues in and `overwrite`
# what may be replaced, not what a run computes
UNHASHED_KEYS = ("resume", "overwrite")
# trainer keys left out too: what a run keeps on disk and how often, or measures about itself
# (profile.json), not what it computes (a run made before such a key existed keeps its hash)
UNHASHED_TRAINER_KEYS = ("checkpoint_when_done", "checkpoint_interval_s", "profile")


def config_hash(config) -> str:
    """sha256 of the full resolved config as canonical JSON (sorted keys, no spaces), `resume`
    left out: equal hashes mean the same run. Takes a DictConfig or a plain dict."""
    import hashlib
    import json

    from omegaconf import DictConfig, OmegaConf

    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    payload = {k: v for k, v in config.items() if k not in UNHASHED_KEYS}
    if isinstance(payload.get("trainer"), dict):
        payload["trainer"] = {k: v for k, v in payload["trainer"].items() if k not in UNHASHED_TRAINER_KEYS}
    hardware = payload.get("hardware")
    if isinstance(hardware, dict) and "cpu_bf16" in hardware and not (hardware["cpu_bf16"] and hardware.get("precision") == "auto"):
        # a preset's hint that bf16 pays on a CPU acts only under precision auto: elsewhere the
        # run is the one it was before presets carried it, and keeps that run's hash
        payload["hardware"] = {k: v for k, v in hardware.items() if k != "cpu_bf16"}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cpu_name() -> str:
    """The CPU model (/proc/cpuinfo's `model name` on Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_record(device) -> dict[str, str | int | None]:
    """What ran the job: the CPU model always, the CUDA device's name and CUDA version on GPU, the host."""
    import torch

    record: dict[str, str | int | None] = {"cpu": cpu_name(), "host": platform.node(), "platform": platform.platform()}
    if getattr(device, "type", str(device)) == "cuda":
        record["device_name"] = torch.cuda.get_device_name(device)
        record["cuda"] = torch.version.cuda
    else:
        record["device_name"] = record["cpu"]
    return record
