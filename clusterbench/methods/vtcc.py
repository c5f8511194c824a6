"""VTCC: Vision-Transformer Contrastive Clustering (Ling et al., 2022), the baseline of MFAVBs-CC.

CC (methods/cc.py) with its CNN replaced by a ViT with a convolutional stem (nn/vit.py:
ConvStem, fixed 2-D sin-cos positions, pre-norm blocks): both augmented views run through the
same ViT separately, the final LayerNorm'd [CLS] token feeds CC's instance head (MLP -> 128)
and cluster head (MLP -> K, softmax), and the loss is CC's instance + cluster loss
(`loss=cc`). The clusters are the cluster head's argmax on the unaugmented image.
MFAVBs-CC (methods/mfavbs.py) subclasses this and overrides `encode_pair`.

Named options for the released code's choices (JackKoLing/VTCC, sszhou-github/MFAVBs-CC):
`head: official` builds both heads as Linear(d, 4d)-BN-ReLU-Linear(4d, 4d)-BN-ReLU-Linear (the
papers' text: a two-layer MLP, `head: mlp`, the default); `init: official` initialises the
q, k and v thirds of each attention projection separately (MoCo v3's uniform bound
sqrt(6 / (d + d))) and [CLS] with std 1e-6 (default `init: mae`: xavier on the joint qkv
matrix, [CLS] std 0.02). The released views are `augment=vtcc_official`.
docs/vit_methods.md maps the papers to this file.
"""

from __future__ import annotations

import torch
from torch import nn

from clusterbench.errors import ConfigError
from clusterbench.methods.base import ClusteringMethod, DataInfo, StepContext, check_views
from clusterbench.methods.cc import CCObjective
from clusterbench.nn.heads import mlp_head
from clusterbench.nn.vit import VisionTransformer
from clusterbench.nn.vit import vit_size as vit_size_of

HEADS = ("mlp", "official")
INITS = ("mae", "official")


def official_head(in_dim: int, out_dim: int) -> nn.Sequential:
    """The released VTCC / MFAVBs-CC projector: Linear(d, 4d)-BN-ReLU-Linear(4d, 4d)-BN-ReLU-Linear."""
    mid = 4 * in_dim
    return nn.Sequential(
        nn.Linear(in_dim, mid),
        nn.BatchNorm1d(mid),
        nn.ReLU(inplace=True),
        nn.Linear(mid, mid),
        nn.BatchNorm1d(mid),
        nn.ReLU(inplace=True),
        nn.Linear(mid, out_dim),
    )


@torch.no_grad()
def official_init(vit: VisionTransformer) -> None:
    """MoCo v3 / released VTCC: each of q, k, v (a d x d third of the 3d x d qkv weight) gets
    U(-b, b) with b = sqrt(6 / (d + d)); biases zero; [CLS] ~ N(0, 1e-6^2)."""
    for block in vit.blocks:
        qkv = block.attn.qkv
        out3, d_in = qkv.weight.shape
        bound = (6.0 / float(out3 // 3 + d_in)) ** 0.5
        nn.init.uniform_(qkv.weight, -bound, bound)
        nn.init.zeros_(qkv.bias)
    nn.init.normal_(vit.cls_token, std=1e-6)


class VTCC(ClusteringMethod):
    name = "vtcc"
    extra_tokens = 0  # tokens after [CLS] (MFAVBs-CC's CLIP anchor)

    def __init__(
        self,
        data_info: DataInfo,
        backbone=None,
        loss: CCObjective | None = None,
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
        super().__init__()
        model = self.name
        if head not in HEADS:
            raise ConfigError(f"model.head={head!r}: expected {' or '.join(HEADS)}")
        if init not in INITS:
            raise ConfigError(f"model.init={init!r}: expected {' or '.join(INITS)}")
        if not isinstance(loss, CCObjective):
            raise ConfigError(f"model={model} needs loss=cc")
        if data_info.image_shape is None:
            raise ConfigError(f"model={model} trains on augmented image views: use an image dataset with an augmentation (augment=mfavbs)")
        c, h, w = data_info.image_shape
        if h != w:
            raise ConfigError(f"model={model}: the ViT needs square images, the views are {h} x {w} (set augment.size)")
        dim, heads = vit_size_of(vit_size, embed_dim, num_heads)
        self.objective = loss
        self.vit = VisionTransformer(h, c, patch_size, dim, depth, heads, mlp_ratio, stem, extra_tokens=self.extra_tokens)
        if init == "official":
            official_init(self.vit)
        if head == "official":
            self.instance_head = official_head(dim, feature_dim)
            self.cluster_head = nn.Sequential(official_head(dim, data_info.n_clusters), nn.Softmax(dim=1))
        else:
            hidden = head_hidden_dim or dim
            self.instance_head = mlp_head(dim, hidden, feature_dim)
            self.cluster_head = nn.Sequential(mlp_head(dim, hidden, data_info.n_clusters), nn.Softmax(dim=1))

    # ------------------------------------------------------------------ representation
    def extra(self, index: torch.Tensor) -> torch.Tensor | None:
        """The per-sample tokens inserted after [CLS] (none for VTCC)."""
        return None

    def readout(self, tokens: torch.Tensor) -> torch.Tensor:
        """The representation h from the final (normalised) token sequence: the [CLS] slot."""
        return tokens[:, 0]

    def encode(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """One view alone through every block (VTCC; evaluation of every method here)."""
        y = self.vit.tokens(x, self.extra(index))
        for block in self.vit.blocks:
            y = block(y)
        return self.readout(self.vit.norm(y))

    def encode_pair(self, x_a: torch.Tensor, x_b: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both training views; VTCC runs them separately through the shared ViT."""
        return self.encode(x_a, index), self.encode(x_b, index)

    # ------------------------------------------------------------------ contract
    def training_step(self, views: list[torch.Tensor], index: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        check_views(views, 2, self.name)
        h_a, h_b = self.encode_pair(views[0], views[1], index)
        return self.objective(self.instance_head(h_a), self.instance_head(h_b), self.cluster_head(h_a), self.cluster_head(h_b))

    def predict(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return self.cluster_head(self.encode(views[0], index))

    def embed(self, views: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.instance_head(self.encode(views[0], index)), dim=1)
