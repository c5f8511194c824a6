"""Small heads shared by the image methods (CC, HTCN, PICI, VTCC, DCSM)."""

from __future__ import annotations

from torch import nn


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = False) -> nn.Sequential:
    """Linear - (BN) - ReLU - Linear: CC's heads (no BN) and BYOL/HTCN's projectors (BN)."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden_dim))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
    return nn.Sequential(*layers)
