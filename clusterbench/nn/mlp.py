"""Fully connected encoders and small networks.

Modules whose parameters carry a leading *member* dimension (EnsembleLinear,
EnsembleBatchNorm1d, EnsembleLinearBNReLU, GaussianLayer, VIBEncoder) hold G independent networks of one shape: a
plain run has G = 1, a vectorised sweep stacks G grid members and trains them with one batched
matmul per layer (engine/ensemble.py). Inputs are ``N x D`` (shared by every member) or
``G x N x D``; outputs are ``G x N x D_out``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from clusterbench.errors import ConfigError


class EnsembleLinear(nn.Module):
    """G independent Linear(in, out) layers, each initialised like nn.Linear."""

    def __init__(self, members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.expand(self.weight.shape[0], -1, -1)
        # one batched matmul for any number of members, G = 1 included: each member's slice is
        # computed (forward and backward) as with G = 1, so members match their separate runs
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleBatchNorm1d(nn.Module):
    """BatchNorm1d for each of G members over its own batch (dim 1): the statistics of one
    member never mix with another's, so a stacked member trains as it would alone."""

    def __init__(self, members: int, dim: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(members, 1, dim))
        self.register_buffer("running_mean", torch.zeros(members, 1, dim))
        self.register_buffer("running_var", torch.ones(members, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            n = x.shape[1]
            var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
            with torch.no_grad():
                self.running_mean.lerp_(mean.float(), self.momentum)
                self.running_var.lerp_(var.float() * (n / max(n - 1, 1)), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


@dataclass
class GaussianLayerOutput:
    sample: torch.Tensor  # reparameterised h_l in training, the mean in eval mode
    mean: torch.Tensor
    std: torch.Tensor


class GaussianLayer(nn.Module):
    """One variational IB layer of G members, from one fused Linear(in, 2d) (one matmul for both
    halves).

    head="paper":    mean = ReLU(BN(W_mu x)), std = softplus(W_s x) + min_std (SDCIB Sec. 2.3);
    head="official": ReLU(BN(W x)) over all 2d outputs, then split into mean and
                     softplus(.) + min_std (the authors' released code).
    The reparameterisation noise is drawn once with the batch's shape and shared by the
    members: each member then draws exactly what its separate run (same seed) would.
    """

    def __init__(self, in_dim: int, out_dim: int, min_std: float, members: int = 1, head: Literal["paper", "official"] = "paper") -> None:
        super().__init__()
        self.out_dim = out_dim
        self.head = head
        self.linear = EnsembleLinear(members, in_dim, 2 * out_dim)
        self.norm = EnsembleBatchNorm1d(members, out_dim if head == "paper" else 2 * out_dim)
        self.min_std = min_std

    def forward(self, x: torch.Tensor) -> GaussianLayerOutput:
        pre = self.linear(x)
        if self.head == "paper":
            mean_pre, std_pre = pre.split(self.out_dim, dim=-1)
            mean = F.relu(self.norm(mean_pre))
        else:
            mean, std_pre = F.relu(self.norm(pre)).split(self.out_dim, dim=-1)
        std = F.softplus(std_pre) + self.min_std
        if not self.training:
            return GaussianLayerOutput(mean, mean, std)
        noise = torch.randn(std.shape[-2:], dtype=std.dtype, device=std.device)
        return GaussianLayerOutput(mean + std * noise, mean, std)


class EnsembleLinearBNReLU(nn.Sequential):
    """Linear -> BatchNorm -> ReLU for G members: one deterministic trunk layer."""

    def __init__(self, members: int, in_dim: int, out_dim: int) -> None:
        super().__init__(EnsembleLinear(members, in_dim, out_dim), EnsembleBatchNorm1d(members, out_dim), nn.ReLU())


ENCODER_LAYOUTS = ("side_heads", "chained")


class VIBEncoder(nn.Module):
    """Variational IB encoder (SDCIB Sec. 2.3): a Gaussian p(h_l | x) at every layer.

    layout="side_heads" (the network the authors ran, their released network.py): a
        deterministic trunk of Linear-BN-ReLU layers; beside trunk layer l a Gaussian head reads
        the clean activation a_l and gives p(h_l | x); trunk layer l+1 takes a_l, not the sample.
    layout="chained": there is no trunk; layer l+1 takes the noisy sample h_l (the other reading
        of the paper's text; it does not cluster: docs/sdcib.md).
    `forward` returns one GaussianLayerOutput per layer, H_1 .. H_L, each ``members x N x width``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dims: list[int] = (1024, 1024, 1024, 128),
        min_std: float = 1e-4,
        members: int = 1,
        head: Literal["paper", "official"] = "paper",
        layout: Literal["side_heads", "chained"] = "side_heads",
    ) -> None:
        super().__init__()
        if not hidden_dims:
            raise ConfigError("backbone.hidden_dims=[]: name at least one layer")
        if any(not isinstance(d, int) or d < 1 for d in hidden_dims):
            raise ConfigError(f"backbone.hidden_dims={list(hidden_dims)}: every layer width must be a positive integer")
        if layout not in ENCODER_LAYOUTS:
            raise ConfigError(f"backbone.layout={layout!r}: expected one of {', '.join(ENCODER_LAYOUTS)}")
        dims = [in_dim, *hidden_dims]
        self.layout = layout
        if layout == "side_heads":
            self.trunk = nn.ModuleList(EnsembleLinearBNReLU(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
            self.layers = nn.ModuleList(GaussianLayer(b, b, min_std, members, head) for b in hidden_dims)
        else:
            self.trunk = None
            self.layers = nn.ModuleList(GaussianLayer(a, b, min_std, members, head) for a, b in zip(dims[:-1], dims[1:]))
        self.out_dims = list(hidden_dims)

    def forward(self, x: torch.Tensor) -> list[GaussianLayerOutput]:
        outputs = []
        for l, layer in enumerate(self.layers):
            if self.trunk is not None:
                x = self.trunk[l](x)
                outputs.append(layer(x))
            else:
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

    def __init__(self, n_models: int, in_dim: int, hidden_dims: list[int], out_dim: int, batch_norm: bool = False) -> None:
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / a**0.5
            self.weights.append(nn.Parameter(torch.empty(n_models, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_models, 1, b).uniform_(-bound, bound)))
        # BatchNorm after each hidden Linear, per model over its own batch (statistics of one
        # forward pass: pass joint and marginal batches separately to keep them apart)
        self.norms = nn.ModuleList(EnsembleBatchNorm1d(n_models, b) for b in hidden_dims) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if i < last:
                if self.norms is not None:
                    x = self.norms[i](x)
                x = F.relu(x)
        return x
