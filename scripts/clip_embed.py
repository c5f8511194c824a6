"""CLIP ViT-B/32 image features (512-d) of every image of a dataset, for MFAVBs-CC's anchor token.

    pip install -e ".[clip]"          # open_clip (downloads the OpenAI weights on first use)
    python scripts/clip_embed.py dataset=rsod paths.data_dir=/data
    python scripts/clip_embed.py dataset=cifar10 paths.data_dir=/data --device cuda

The arguments are train.py's Hydra overrides (the dataset and where it lives; any override that
changes the images, e.g. dataset.image_size, must be the same as the training run's). The
dataset is loaded as training loads it; every image (uint8, in sample order) is resized to
224 px (bicubic, shorter side, then a centre crop), gray images repeated to RGB, normalised with
CLIP's mean and std, and encoded by `encode_image` (the projected image [CLS] embedding, not
L2-normalised). The features go to `model.clip_cache` (default ${paths.data_dir}/clip) under a
name keyed by the images' checksum (clusterbench/data/clip_cache.py), which is where
`model=mfavbs model.clip=cached` looks. An existing file for the same images is kept (nothing
is recomputed) unless --force.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from clusterbench.data.clip_cache import CLIP_MODEL, CLIP_PRETRAINED, cache_path, images_checksum, save_features

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_clip(device: str):
    """open_clip's ViT-B/32 with the OpenAI weights, in eval mode."""
    import open_clip

    model, _, _ = open_clip.create_model_and_transforms(CLIP_MODEL, pretrained=CLIP_PRETRAINED)
    return model.to(device).eval()


def preprocess(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8 (B, C, H, W) -> CLIP's input: shorter side to `size` (bicubic), centre crop, RGB,
    normalised (the tensor form of open_clip's PIL preprocessing)."""
    x = images.float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bicubic", align_corners=False)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top : top + size, left : left + size].clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def embed(model, images: torch.Tensor, device: str, batch_size: int) -> torch.Tensor:
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = preprocess(images[start : start + batch_size].to(device))
        out.append(model.encode_image(batch).float().cpu())
    return torch.cat(out)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="train.py overrides: dataset=rsod paths.data_dir=/data ...")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--force", action="store_true", help="recompute an existing cache file")
    args = parser.parse_args(argv)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["model=mfavbs", *args.overrides])
    data = instantiate(cfg.dataset)
    checksum = images_checksum(data.images)
    path = cache_path(cfg.model.clip_cache, checksum)
    if path.exists() and not args.force:
        print(f"{path}: already there (images sha256 {checksum[:16]}...), nothing recomputed")
        return path
    features = embed(load_clip(args.device), data.images, args.device, args.batch_size)
    save_features(path, features, checksum, dataset=data.name, dataset_checksum=data.checksum, model=CLIP_MODEL, pretrained=CLIP_PRETRAINED)
    print(f"{path}: {tuple(features.shape)} CLIP {CLIP_MODEL} ({CLIP_PRETRAINED}) features of dataset '{data.name}'")
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
