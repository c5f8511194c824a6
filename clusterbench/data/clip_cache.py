"""Cached CLIP image features for MFAVBs-CC's anchor token (scripts/clip_embed.py writes them).

One file per image set: `<cache_dir>/clip_<model>_<key>.pt`, where the key is the first 16 hex
digits of `images_checksum` (sha256 of the uint8 image tensor, shape included, in sample
order). The key is computed from the images themselves, not from ImageData.checksum, because
a method sees the images (on_fit_start) but not the dataset object; the file also records the
dataset's own checksum and name. The features are in sample order, (N, 512) float32.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from clusterbench.errors import ConfigError

CLIP_MODEL = "ViT-B-32"
CLIP_PRETRAINED = "openai"
CLIP_DIM = 512


def images_checksum(images: torch.Tensor) -> str:
    """sha256 of a uint8 (N, C, H, W) image tensor: its shape, then its bytes."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_path(cache_dir: str | Path, checksum: str, model: str = CLIP_MODEL) -> Path:
    return Path(cache_dir) / f"clip_{model}_{checksum[:16]}.pt"


def save_features(path: Path, features: torch.Tensor, checksum: str, **record) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"features": features.float().cpu(), "images_sha256": checksum, **record}, tmp)
    tmp.replace(path)  # atomic: an interrupted script leaves no half-written cache


def load_features(cache_dir: str | Path, images: torch.Tensor, command: str, model: str = CLIP_MODEL) -> torch.Tensor:
    """The cached (N, D) features of `images`; a missing or stale cache is one ConfigError line
    with `command`, the command that computes it (where there is network)."""
    checksum = images_checksum(images)
    path = cache_path(cache_dir, checksum, model)
    if not path.exists():
        raise ConfigError(f"model.clip=cached: no CLIP features for these images at {path}; compute them where there is network: {command}")
    record = torch.load(path, map_location="cpu", weights_only=True)
    features = record["features"]
    if record.get("images_sha256") != checksum or features.shape[0] != images.shape[0]:
        raise ConfigError(f"model.clip=cached: {path} holds features of other images; recompute them: {command}")
    return features.float()
