"""Parts every deep multi-view method builds on: one fully connected encoder (and decoder) per
view, and the fusion of the views' representations into one.

SiMVC / CoMVC (Trosten et al., CVPR 2021), MFLVC (Xu et al., CVPR 2022), DealMVC, ICMVC and
DIVIDE all encode view v with its own MLP from the view's width d_v to a shared width; they
differ in the widths, in BatchNorm, in whether the last layer has an activation, and in how
(whether) the views are fused. Those are the arguments here, so a method file holds only what
is its own.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from clusterbench.errors import ConfigError

Activation = Literal["relu", "leaky_relu", "sigmoid", "tanh", "none"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def _activation(name: str, key: str) -> nn.Module | None:
    if name == "none":
        return None
    if name not in _ACTIVATIONS:
        raise ConfigError(f"{key}={name!r}: expected one of {', '.join([*_ACTIVATIONS, 'none'])}")
    return _ACTIVATIONS[name]()


def feature_mlp(
    in_dim: int,
    widths: Sequence[int],
    *,
    batch_norm: bool = False,
    activation: str = "relu",
    final_activation: bool = True,
    key: str = "model.encoder_widths",
) -> nn.Sequential:
    """Linear [-BatchNorm] -activation for each width; the last layer ends after its Linear
    unless `final_activation` (then it gets BatchNorm and the activation like the others).

    SiMVC / CoMVC encoders: widths (512, 512, 256), BatchNorm off by default, ReLU on every layer
    including the last; MFLVC's: (500, 500, 2000, feature_dim), no BatchNorm, plain last layer.
    """
    widths = list(widths)
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ConfigError(f"{key}={widths}: expected a non-empty list of positive layer widths")
    layers: list[nn.Module] = []
    dims = [int(in_dim), *widths]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i == len(widths) - 1 and not final_activation:
            break
        if batch_norm:
            layers.append(nn.BatchNorm1d(b))
        act = _activation(activation, key.rsplit(".", 1)[0] + ".activation")
        if act is not None:
            layers.append(act)
    return nn.Sequential(*layers)


def he_normal_init(module: nn.Module) -> None:
    """Kaiming-normal weights of every Linear (biases as nn.Linear leaves them): the released
    SiMVC / CoMVC code initialises its networks this way (`module.apply(he_normal_init)`)."""
    if isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight)


class ViewEncoders(nn.Module):
    """One `feature_mlp` per view: view v's width dims[v] -> widths[-1]."""

    def __init__(self, dims: Sequence[int], widths: Sequence[int], **mlp_options) -> None:
        super().__init__()
        self.nets = nn.ModuleList(feature_mlp(d, widths, **mlp_options) for d in dims)
        self.out_dim = int(list(widths)[-1])

    def forward(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [net(x) for net, x in zip(self.nets, views)]


class ViewDecoders(nn.Module):
    """The mirror of ViewEncoders: from the shared width back to each view's width, through
    the encoder's hidden widths in reverse order, the last layer plain (a reconstruction)."""

    def __init__(self, dims: Sequence[int], encoder_widths: Sequence[int], **mlp_options) -> None:
        super().__init__()
        widths = list(encoder_widths)
        hidden = widths[-2::-1]
        self.nets = nn.ModuleList(feature_mlp(widths[-1], [*hidden, int(d)], final_activation=False, **mlp_options) for d in dims)

    def forward(self, latents: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [net(z) for net, z in zip(self.nets, latents)]


class ViewFusion(nn.Module):
    """Fuses V representations of one width into one.

    mean:           (1 / V) sum_v z_v
    weighted_mean:  sum_v softmax(w)_v z_v with learned w, initialised to 1/V (SiMVC Eq. 2;
                    CoMVC reads min_v softmax(w)_v for its adaptive contrastive weight)
    concat:         [z_1, ..., z_V] (width V times the input width)
    """

    def __init__(
        self, n_views: int, width: int, method: Literal["mean", "weighted_mean", "concat"] = "weighted_mean", key: str = "model.fusion"
    ) -> None:
        super().__init__()
        if method not in ("mean", "weighted_mean", "concat"):
            raise ConfigError(f"{key}={method!r}: expected mean, weighted_mean or concat")
        self.method = method
        self.out_dim = width * n_views if method == "concat" else width
        self.logits = nn.Parameter(torch.full((n_views,), 1.0 / n_views)) if method == "weighted_mean" else None
        if self.logits is None:
            self.register_buffer("_uniform", torch.full((n_views,), 1.0 / n_views), persistent=False)

    def weights(self) -> torch.Tensor:
        """The views' fusion weights (V,), summing to one (uniform for mean and concat)."""
        return torch.softmax(self.logits, dim=0) if self.logits is not None else self._uniform

    def forward(self, zs: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.method == "concat":
            return torch.cat(list(zs), dim=1)
        return torch.einsum("v,vnd->nd", self.weights().to(zs[0].dtype), torch.stack(list(zs)))


def check_multiview(n_views: int, model: str, minimum: int = 2) -> None:
    """A multi-view method given fewer views than it contrasts or fuses: one line."""
    if n_views < minimum:
        raise ConfigError(
            f"model={model} needs at least {minimum} views; the dataset has {n_views} "
            "(use a multi-view dataset, e.g. dataset=event | bdgp | handwritten)"
        )
