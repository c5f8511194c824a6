"""Bootstrap (BYOL-style) prediction loss, as HTCN uses it for instance-level learning.

Reference: X. Deng et al., "Heterogeneous Tri-stream Clustering Network" (HTCN), Eq. 1-2;
J.-B. Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bootstrap_loss"]


def bootstrap_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """HTCN Eq. 1-2: mean over the N rows of ``||y/|y| - z/|z|||^2 = 2 - 2 cos(y, z)``.

    ``prediction`` (online network's instance predictor output y) and ``target`` (target
    network's projection z) are ``N x D``. The target is detached here: it is the stop-gradient
    side (no gradient ever reaches the target network). Computed in float32 under autocast.
    """
    if prediction.shape != target.shape or prediction.dim() != 2:
        raise ValueError(f"expected two N x D tensors of equal shape, got {tuple(prediction.shape)} and {tuple(target.shape)}")
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        y = F.normalize(prediction.float(), dim=1)
        z = F.normalize(target.detach().float(), dim=1)
        return (2 - 2 * (y * z).sum(dim=1)).mean()
