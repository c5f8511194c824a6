"""Fully connected encoders and small networks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GaussianLayerOutput:
    sample: torch.Tensor  # reparameterised h_l in training, the mean in eval mode
    mean: torch.Tensor
    std: torch.Tensor


class GaussianLayer(nn.Module):
    """One variational IB layer: mean = ReLU(BN(W_mu x)), std = softplus(W_s x) + min_std.

    One fused Linear(in, 2d) computes both halves (one matmul instead of two).
    """

    def __init__(self, in_dim: int, out_dim: int, min_std: float) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.linear = nn.Linear(in_dim, 2 * out_dim)
        self.norm = nn.BatchNorm1d(out_dim)
        self.min_std = min_std

    def forward(self, x: torch.Tensor) -> GaussianLayerOutput:
        mean_pre, std_pre = self.linear(x).split(self.out_dim, dim=-1)
        mean = F.relu(self.norm(mean_pre))
        std = F.softplus(std_pre) + self.min_std
        sample = mean + std * torch.randn_like(std) if self.training else mean
        return GaussianLayerOutput(sample, mean, std)


class VIBEncoder(nn.Module):
    """Variational IB encoder (SDCIB Sec. 2.3): a Gaussian p(h_l | x) at every layer; layer l+1
    takes the sample h_l. `forward` returns one GaussianLayerOutput per layer, H_1 .. H_L."""

    def __init__(self, in_dim: int, hidden_dims: list[int] = (1024, 1024, 1024, 128), min_std: float = 1e-4) -> None:
        super().__init__()
        if not hidden_dims:
            raise ValueError("backbone.hidden_dims must name at least one layer")
        dims = [in_dim, *hidden_dims]
        self.layers = nn.ModuleList(GaussianLayer(a, b, min_std) for a, b in zip(dims[:-1], dims[1:]))
        self.out_dims = list(hidden_dims)

    def forward(self, x: torch.Tensor) -> list[GaussianLayerOutput]:
        outputs = []
        for layer in self.layers:
            out = layer(x)
            outputs.append(out)
            x = out.sample
        return outputs


def mlp(in_dim: int, hidden_dims: list[int], out_dim: int) -> nn.Sequential:
    """Linear-ReLU stack ending in a plain Linear."""
    dims = [in_dim, *hidden_dims]
    modules: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        modules += [nn.Linear(a, b), nn.ReLU()]
    modules.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*modules)


class BatchedMLP(nn.Module):
    """G independent MLPs of the same shape evaluated with one batched matmul per layer.

    Input ``G x N x in_dim`` -> output ``G x N x out_dim``. Each member is initialised like
    nn.Linear. Used for SDCIB's per-modality MINE critics (one kernel instead of G).
    """

    def __init__(self, n_models: int, in_dim: int, hidden_dims: list[int], out_dim: int) -> None:
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / a**0.5
            self.weights.append(nn.Parameter(torch.empty(n_models, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_models, 1, b).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if i < last:
                x = F.relu(x)
        return x
