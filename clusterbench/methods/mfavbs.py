"""MFAVBs-CC: contrastive clustering with Multiple Fusing-Augmenting ViT Blocks and a CLIP anchor
token (Wang, Zhou et al.).

VTCC (methods/vtcc.py) with two changes:

- FAVB (Sec. 3.2, Eq. 1-2, Alg. 1): the blocks come in pairs. Block 2i-1 runs on each view's
  tokens with shared weights; block 2i runs on the two sequences concatenated along the TOKEN
  dimension (B x 2T x E), so self-attention mixes the views; its output is split back into the
  two views (Eq. 2). `fused_pairs` (Fig. 6's N) pairs from the first block are fused, the
  rest run unfused. `fusion`: token (the paper, literally: view a fused with its positive view
  b), own (token fusion of each training view with a second, independent draw of its own
  pipeline: four views a, b, a', b', the pairs (a, a') and (b, b') are fused and the loss reads
  a and b), batch (the released code: concatenation along the batch dimension, numerically the
  same as none), none (VTCC).
  Why `own`: with `token`, view a's readout attends to its positive's tokens, so a and b
  become functions of the same two images and the instance loss can match the positive
  without learning invariance (docs/vit_methods.md has the measurement). With `own`, h_a
  depends on x_a and x_a' only, which share nothing with x_b but the image itself.
- CLIP anchor (Sec. 3.4): the frozen CLIP ViT-B/32 image embedding of each sample (512-d,
  cached by scripts/clip_embed.py) is inserted after [CLS]; the final-layer anchor slot is the
  representation fed to the heads (`representation: anchor`, the paper and the released code),
  or the [CLS] slot (`representation: cls`).

Evaluation sees one unaugmented view: it runs every block on that view alone. For token fusion
this equals fusing the view with a copy of itself (attention over two identical copies of
every key gives the same weights per value), so no second view has to be invented.
"""

from __future__ import annotations

import torch
from torch import nn

from clusterbench.data.clip_cache import CLIP_DIM, load_features
from clusterbench.errors import ConfigError
from clusterbench.methods.base import DataInfo, StepContext, check_views
from clusterbench.methods.cc import CCObjective
from clusterbench.methods.vtcc import VTCC

FUSIONS = ("token", "own", "batch", "none")


class MFAVBsCC(VTCC):
    name = "mfavbs"

    def __init__(
        self,
        data_info: DataInfo,
        backbone=None,
        loss: CCObjective | None = None,
        fusion: str = "token",
        fused_pairs: int | None = None,
        clip: str = "cached",
        clip_cache: str = "data/clip",
        clip_command: str = "python scripts/clip_embed.py",
        representation: str = "anchor",
        vit_size: str | None = None,
        embed_dim: int | None = 512,
        num_heads: int | None = 16,
        depth: int = 8,
        patch_size: int = 16,
        mlp_ratio: float = 4.0,
        stem: str = "conv",
        feature_dim: int = 128,
        head_hidden_dim: int | None = None,
        head: str = "mlp",
        init: str = "mae",
    ) -> None:
        if fusion not in FUSIONS:
            raise ConfigError(f"model.fusion={fusion!r}: expected token, own, batch or none")
        if clip not in ("none", "cached"):
            raise ConfigError(f"model.clip={clip!r}: expected none or cached")
        if representation not in ("anchor", "cls"):
            raise ConfigError(f"model.representation={representation!r}: expected anchor or cls")
        if representation == "anchor" and clip == "none":
            raise ConfigError("model.representation=anchor needs the CLIP anchor token (model.clip=cached), or use representation=cls")
        self.extra_tokens = 1 if clip == "cached" else 0
        super().__init__(
            data_info,
            backbone,
            loss,
            vit_size,
            embed_dim,
            num_heads,
            depth,
            patch_size,
            mlp_ratio,
            stem,
            feature_dim,
            head_hidden_dim,
            head,
            init,
        )
        pairs = len(self.vit.blocks) // 2
        fused_pairs = pairs if fused_pairs is None else int(fused_pairs)
        if not 0 <= fused_pairs <= pairs:
            raise ConfigError(f"model.fused_pairs={fused_pairs}: {len(self.vit.blocks)} blocks make 0..{pairs} pairs")
        self.fusion = fusion
        self.fused_pairs = fused_pairs if fusion != "none" else 0
        self.clip = clip
        self.clip_cache = str(clip_cache)
        self.clip_command = str(clip_command)
        self.representation = representation
        if clip == "cached":
            # filled from the cache in on_fit_start; a buffer, so a resumed run gets it back
            self.register_buffer("clip_features", torch.zeros(data_info.n_samples, CLIP_DIM))
            dim = self.vit.embed_dim
            # the paper's width equals CLIP's (512): no projection; other widths need one (trained)
            self.anchor_proj = nn.Identity() if dim == CLIP_DIM else nn.Linear(CLIP_DIM, dim)

    def on_fit_start(self, views: list[torch.Tensor]) -> None:
        if self.clip == "cached":
            features = load_features(self.clip_cache, views[0], self.clip_command)
            self.clip_features.copy_(features.to(self.clip_features.device))

    def extra(self, index: torch.Tensor) -> torch.Tensor | None:
        if self.clip == "none":
            return None
        return self.anchor_proj(self.clip_features[index])[:, None]

    def readout(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 1] if self.representation == "anchor" else tokens[:, 0]

    def encode_pair(self, x_a: torch.Tensor, x_b: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        extra = self.extra(index)
        # the stem per view: its BatchNorm sees each view's own batch (as CC / VTCC)
        y_a, y_b = self.vit.tokens(x_a, extra), self.vit.tokens(x_b, extra)
        n, t = y_a.shape[:2]
        for i, block in enumerate(self.vit.blocks):
            fused = i % 2 == 1 and i // 2 < self.fused_pairs
            if fused and self.fusion in ("token", "own"):
                # Eq. 1: Cat along the tokens (B x 2T x E); Eq. 2: Spl back into the two views
                y_a, y_b = block(torch.cat([y_a, y_b], dim=1)).split(t, dim=1)
            else:
                # unfused blocks, and the released "fusion" (batch concatenation): each sample's
                # tokens attend only to themselves, so this is running the views separately
                y_a, y_b = block(torch.cat([y_a, y_b], dim=0)).split(n, dim=0)
        return self.readout(self.vit.norm(y_a)), self.readout(self.vit.norm(y_b))

    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        if self.fusion != "own":
            # token / batch / none contrast two views; with augment=mfavbs_own they read a and b
            return super().training_step(views[:2] if len(views) == 4 else views, index, ctx)
        check_views(views, 4, f"{self.name} with model.fusion=own (augment=mfavbs_own)")
        # FAVB on (a, a') and on (b, b'): neither readout sees the other's positive view
        h_a, _ = self.encode_pair(views[0], views[2], index)
        h_b, _ = self.encode_pair(views[1], views[3], index)
        return self.objective(self.instance_head(h_a), self.instance_head(h_b), self.cluster_head(h_a), self.cluster_head(h_b))
