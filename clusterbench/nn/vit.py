"""Vision-transformer parts for PICI, VTCC and MFAVBs-CC (docs/vit_methods.md).

- `PatchEmbed`: non-overlapping p x p patches by a stride-p convolution (ViT, MAE: PICI).
- `ConvStem`: VTCC's stem (Xiao et al. 2021, "Early convolutions help transformers see
  better"): log2(p) conv3x3 / stride 2 - BN - ReLU stages, then a 1x1 conv to the width.
- `sincos_pos_embed_2d`: fixed 2-D sine-cosine position embeddings (MAE's), zeros for the
  leading non-patch tokens ([CLS], MFAVBs-CC's CLIP anchor).
- `Block`: pre-norm transformer block (LN - multi-head self-attention - residual, LN - MLP -
  residual), the block of ViT / timm / MAE.
- `VisionTransformer`: stem + [CLS] (+ optional extra tokens) + position embeddings + blocks;
  the blocks are exposed so MFAVBs-CC can run them in fused pairs.
- `random_masking`, `MAEEncoder`, `MAEDecoder`, `patchify`: MAE's masked auto-encoder (PICI).
- `VIT_SIZES`: ViT-Tiny / Small / Base widths and heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from clusterbench.errors import ConfigError

# name -> (embed dim, heads); depths are set per method (PICI's ViT-Small has 6 blocks)
VIT_SIZES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}


def vit_size(size: str | None, embed_dim: int | None, num_heads: int | None, key: str = "model") -> tuple[int, int]:
    """(embed dim, heads): a named size (tiny | small | base) when given, else embed_dim and
    num_heads; a bad name or a missing / indivisible pair is a one-line ConfigError."""
    if size is not None:
        if size not in VIT_SIZES:
            raise ConfigError(f"{key}.vit_size={size!r}: expected one of {', '.join(VIT_SIZES)} (or null with embed_dim and num_heads)")
        return VIT_SIZES[size]
    if not embed_dim or not num_heads:
        raise ConfigError(f"{key}.embed_dim / {key}.num_heads: give both, or a vit_size")
    if embed_dim % num_heads:
        raise ConfigError(f"{key}.embed_dim={embed_dim} is not divisible by {key}.num_heads={num_heads}")
    return int(embed_dim), int(num_heads)


def grid_size(image_size: int, patch_size: int, key: str = "model") -> int:
    if image_size % patch_size:
        raise ConfigError(f"{key}.patch_size={patch_size} does not divide the image side {image_size}")
    return image_size // patch_size


def sincos_pos_embed_2d(dim: int, grid: int, extra_tokens: int = 0) -> torch.Tensor:
    """(extra_tokens + grid^2, dim) fixed 2-D sin-cos embeddings as MAE's get_2d_sincos_pos_embed:
    half the channels encode the row, half the column, each as sin/cos of geometric frequencies;
    the extra (leading) tokens get zeros."""
    if dim % 4:
        raise ConfigError(f"model.embed_dim={dim}: 2-D sin-cos position embeddings need a multiple of 4")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    coords = torch.arange(grid, dtype=torch.float64)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angle = pos.reshape(-1, 1) * omega
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    emb = torch.cat([encode(ys), encode(xs)], dim=1)  # MAE's order: rows (h) then columns (w)
    return torch.cat([torch.zeros(extra_tokens, dim, dtype=torch.float64), emb]).float()


class PatchEmbed(nn.Module):
    """p x p patches -> tokens (B, L, dim) by a stride-p convolution (ViT)."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ConvStem(nn.Module):
    """VTCC's convolutional stem: log2(p) x (conv3x3 stride 2 - BN - ReLU) then conv1x1 to the
    width; the widths double per stage up to embed_dim (for dim 512, p 16: 64-128-256-512),
    so the token grid is the same as a stride-p patch embedding's."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        stages = int(round(math.log2(patch_size)))
        if 2**stages != patch_size or stages < 1:
            raise ConfigError(f"model.patch_size={patch_size}: the conv stem needs a power of 2 (>= 2)")
        layers: list[nn.Module] = []
        width_in = in_channels
        for i in range(stages):
            width = max(embed_dim // 2 ** (stages - 1 - i), 8)
            layers += [nn.Conv2d(width_in, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            width_in = width
        layers.append(nn.Conv2d(width_in, embed_dim, 1))
        self.proj = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if q.dtype == torch.bfloat16 and q.device.type == "cpu":
            out = math_attention(q, k, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v)  # fused kernel where the device has one
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v, the softmax in float32. For bf16 on a CPU: torch's fused
    CPU attention (2.14) runs its bf16 backward about 5x slower than float32 (docs/benchmark.md,
    bf16 on the CPU), while these two products gain from the bf16 kernels like any matmul."""
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    return scores.softmax(dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).to(v.dtype) @ v


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x)) (GELU, ratio 4)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _init_weights(module: nn.Module) -> None:
    # MAE / timm: xavier-uniform linears, zero biases, unit LayerNorms
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class VisionTransformer(nn.Module):
    """Stem + [CLS] + `extra_tokens` given per sample (MFAVBs-CC's CLIP anchor) + fixed sin-cos
    positions + `depth` pre-norm blocks + final LayerNorm. `tokens(x, extra)` gives the input
    sequence (B, 1 + extra + L, E); `forward` runs all blocks and returns the normalised [CLS]."""

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        stem: str = "conv",
        extra_tokens: int = 0,
    ) -> None:
        super().__init__()
        stems = {"conv": ConvStem, "patch": PatchEmbed}
        if stem not in stems:
            raise ConfigError(f"model.stem={stem!r}: expected conv or patch")
        if depth < 1:
            raise ConfigError(f"model.depth={depth}: must be >= 1")
        grid = grid_size(image_size, patch_size)
        self.embed_dim = self.out_dim = embed_dim
        self.extra_tokens = extra_tokens
        self.num_patches = grid * grid
        self.stem = stems[stem](in_channels, embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(embed_dim, grid, 1 + extra_tokens)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.apply(_init_weights)
        nn.init.normal_(self.cls_token, std=0.02)

    def tokens(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        patches = self.stem(x)
        lead = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.extra_tokens:
            if extra is None or extra.shape[1:] != (self.extra_tokens, self.embed_dim):
                raise ValueError(f"expected {self.extra_tokens} extra tokens of width {self.embed_dim} per sample")
            lead.append(extra.to(patches.dtype))
        return torch.cat([*lead, patches], dim=1) + self.pos_embed

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        y = self.tokens(x, extra)
        for block in self.blocks:
            y = block(y)
        return self.norm(y)[:, 0]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C), patches in row-major order, pixels (p, p, C) as MAE."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


def random_masking(tokens: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-sample random masking: every sample keeps exactly L - round(L * ratio) of its
    L tokens, chosen uniformly (argsort of uniform noise). Returns the kept tokens (B, keep, E),
    the mask (B, L; 1 = masked, in the original order) and the permutation that restores it."""
    b, length, dim = tokens.shape
    keep = length - int(round(length * mask_ratio))
    noise = torch.rand(b, length, device=tokens.device)
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    kept = torch.gather(tokens, 1, shuffle[:, :keep, None].expand(-1, -1, dim))
    mask = torch.ones(b, length, device=tokens.device)
    mask[:, :keep] = 0
    return kept, torch.gather(mask, 1, restore), restore


class MAEEncoder(nn.Module):
    """MAE encoder: patch embedding + sin-cos positions, random masking of the patch tokens,
    [CLS] prepended, blocks, LayerNorm. `forward(x, mask_ratio)` -> (tokens (B, 1 + kept, E),
    mask (B, L), restore (B, L)); mask_ratio 0 encodes every patch (test inference)."""

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        grid = grid_size(image_size, patch_size)
        self.patch_size = patch_size
        self.num_patches = grid * grid
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(embed_dim, grid, 1)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.apply(_init_weights)
        # MAE: the patch projection initialised like a linear layer
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor, mask_ratio: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = self.patch_embed(x) + self.pos_embed[:, 1:]
        if mask_ratio > 0:
            tokens, mask, restore = random_masking(tokens, mask_ratio)
        else:
            b, length = tokens.shape[:2]
            mask = tokens.new_zeros(b, length)
            restore = torch.arange(length, device=x.device).expand(b, -1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        y = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            y = block(y)
        return self.norm(y), mask, restore


class MAEDecoder(nn.Module):
    """MAE decoder: encoder tokens projected to the decoder width, a shared learned mask token
    at every masked position (unshuffled with `restore`), sin-cos positions, blocks, LayerNorm
    and a linear prediction of each patch's p*p*C pixels. Returns (B, L, p*p*C) ([CLS] dropped)."""

    def __init__(
        self,
        num_patches: int,
        patch_size: int,
        in_channels: int,
        encoder_dim: int,
        embed_dim: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        grid = int(round(math.sqrt(num_patches)))
        self.embed = nn.Linear(encoder_dim, embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(embed_dim, grid, 1)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.pred = nn.Linear(embed_dim, patch_size * patch_size * in_channels)
        self.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        b, length = restore.shape
        masked = self.mask_token.expand(b, length + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], masked], dim=1)
        patches = torch.gather(patches, 1, restore[:, :, None].expand(-1, -1, x.shape[2]))
        y = torch.cat([x[:, :1], patches], dim=1) + self.pos_embed
        for block in self.blocks:
            y = block(y)
        return self.pred(self.norm(y))[:, 1:]
