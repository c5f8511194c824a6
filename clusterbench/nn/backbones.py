"""Convolutional image backbones for the `backbone=` config group.

Each backbone maps images ``N x C x H x W`` to features ``N x out_dim`` (after global average
pooling) and has an ``out_dim`` attribute; the method builds it with
``hydra.utils.instantiate(cfg.backbone, in_channels=C)``, C taken from the data.

- ResNet:   torchvision ResNet-18/34/50 without its fc layer; a CIFAR stem (3x3/1 conv, no
            max-pool) by default, since 32 px images lose most of their resolution to the
            ImageNet 7x7/2 conv + max-pool.
- SmallCNN: a compact VGG-style net for 8-32 px inputs (sklearn digits, USPS, MNIST); the
            backbone of the tests and the CPU presets.
- VGG:      torchvision VGG-11/13/16/19 (optionally with BatchNorm) features, average-pooled
            to 1 x 1 so that 32 px inputs work (DCSM).

``weights`` names torchvision pretrained weights (e.g. "IMAGENET1K_V1", "DEFAULT"); they are
downloaded on first use, so they need internet or a file already in torch's hub cache. The
clustering papers train from scratch: the default is None (random init).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from clusterbench.errors import ConfigError, first_line

# torchvision is imported where a model is built: its import loads torch's compiler (2-3 s of
# every process's start), which the MLP and small-CNN methods never use
_RESNET_DEPTHS = (18, 34, 50)
# torchvision.models.vgg.cfgs letters: A = VGG-11, B = 13, D = 16, E = 19
_VGGS = {11: "A", 13: "B", 16: "D", 19: "E"}


def _check_in_channels(in_channels: int) -> None:
    if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
        raise ConfigError(f"backbone.in_channels={in_channels!r}: expected a positive integer")


def _load_state_dict(weights: Any) -> dict[str, torch.Tensor]:
    """Fetches a torchvision weights enum's state dict (downloads into torch's hub cache when
    it is not there yet). A separate function so that tests can replace it and stay offline."""
    return weights.get_state_dict(progress=False, check_hash=True)


def _resolve_weights(builder_name: str, weights: str) -> Any:
    """The torchvision weights enum member for `weights` ("IMAGENET1K_V1", "DEFAULT", or the
    full "ResNet18_Weights.IMAGENET1K_V1") of the model `builder_name`."""
    import torchvision.models as tvm

    enum = tvm.get_model_weights(builder_name)
    try:
        return enum.verify(weights)
    except (KeyError, TypeError):
        names = ", ".join(["DEFAULT", *(w.name for w in enum)])
        raise ConfigError(f"backbone.weights={weights!r}: no such weights for {builder_name} (expected one of {names})") from None


def _pretrained_state(builder_name: str, weights: str) -> dict[str, torch.Tensor]:
    member = _resolve_weights(builder_name, weights)
    try:
        return _load_state_dict(member)
    except Exception as err:  # URLError, HTTPError, hash mismatch, disk errors, ...
        raise ConfigError(
            f"backbone.weights={weights!r}: could not load torchvision weights {type(member).__name__}.{member.name} "
            f"({type(err).__name__}: {first_line(err)}); the download needs internet, or put the file in "
            f"{torch.hub.get_dir()}/checkpoints"
        ) from None


def _conv_init(conv: nn.Conv2d) -> None:
    # torchvision's ResNet/VGG init, so replaced layers start like the ones they replace
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ResNet(nn.Module):
    """torchvision ResNet-`depth` as a feature extractor: ``N x C x H x W -> N x out_dim``
    (512 for depth 18/34, 2048 for 50).

    stem="cifar":    conv1 is 3x3 stride 1 (no bias) and there is no max-pool, so a 32 px input
                     reaches layer1 at 32 x 32 (the usual CIFAR ResNet, as in SCAN and SimCLR's
                     CIFAR runs);
    stem="imagenet": torchvision's 7x7/2 conv + 3x3/2 max-pool, for ~224 px inputs.
    The submodules keep torchvision's names (conv1, bn1, layer1..4), so a torchvision state
    dict without its fc.* keys loads into this module.
    """

    def __init__(
        self,
        depth: int = 18,
        stem: Literal["imagenet", "cifar"] = "cifar",
        in_channels: int = 3,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        if depth not in _RESNET_DEPTHS or isinstance(depth, bool):
            raise ConfigError(f"backbone.depth={depth!r}: expected one of 18, 34, 50")
        if stem not in ("imagenet", "cifar"):
            raise ConfigError(f"backbone.stem={stem!r}: expected one of 'imagenet', 'cifar'")
        _check_in_channels(in_channels)
        if weights is not None and (stem != "imagenet" or in_channels != 3):
            raise ConfigError(
                f"backbone.weights={weights!r} needs backbone.stem=imagenet and 3 input channels "
                f"(got stem={stem!r}, in_channels={in_channels}): the pretrained conv1 is a 7x7/2 RGB filter"
            )
        import torchvision.models as tvm

        net = getattr(tvm, f"resnet{depth}")(weights=None)
        if weights is not None:
            net.load_state_dict(_pretrained_state(f"resnet{depth}", weights))
        if stem == "cifar":
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
            _conv_init(net.conv1)
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            _conv_init(net.conv1)
        self.out_dim = net.fc.in_features
        self.depth = depth
        self.stem = stem
        # torchvision's children minus fc, under their own names
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


class _MaxPoolIfLarge(nn.Module):
    """2x2 max-pool only while both sides are >= 4, so the last map keeps at least 2 x 2:
    the same network then fits 8 px digits (8-4-2-2), 16 px USPS (8-4-2), 28 px MNIST (14-7-3)
    and 32 px CIFAR (16-8-4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) >= 4:
            return nn.functional.max_pool2d(x, 2)
        return x


class SmallCNN(nn.Module):
    """Compact conv net for 8-32 px images: ``N x C x H x W -> N x out_dim``.

    Per width w in `widths` a stage conv3x3-BN-ReLU, conv3x3-BN-ReLU (w channels), then a 2x2
    max-pool while the map is at least 4 px a side (see _MaxPoolIfLarge); then global average
    pooling and Linear(widths[-1], out_dim)-BN-ReLU. The projection gives clustering heads a
    width independent of the conv widths; out_dim=None skips it and returns the pooled
    ``widths[-1]`` features. (The final BatchNorm needs more than one sample per batch in
    training mode.)
    """

    def __init__(self, in_channels: int = 3, widths: list[int] = (32, 64, 128), out_dim: int | None = 256) -> None:
        super().__init__()
        _check_in_channels(in_channels)
        widths = list(widths)
        if not widths or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
            raise ConfigError(f"backbone.widths={widths!r}: expected a non-empty list of positive integers")
        if out_dim is not None and (not isinstance(out_dim, int) or isinstance(out_dim, bool) or out_dim < 1):
            raise ConfigError(f"backbone.out_dim={out_dim!r}: expected a positive integer or null")
        layers: list[nn.Module] = []
        prev = in_channels
        for w in widths:
            for a in (prev, w):
                layers += [nn.Conv2d(a, w, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            layers.append(_MaxPoolIfLarge())
            prev = w
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        if out_dim is None:
            self.head = nn.Identity()
            self.out_dim = widths[-1]
        else:
            # no Linear bias: the BatchNorm that follows removes it
            self.head = nn.Sequential(nn.Linear(widths[-1], out_dim, bias=False), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True))
            self.out_dim = out_dim
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _conv_init(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.avgpool(self.features(x)), 1))


class VGG(nn.Module):
    """torchvision VGG-`depth` (with BatchNorm when batch_norm) convolutional features, average
    pooled to 1 x 1: ``N x C x H x W -> N x 512``. torchvision's 7 x 7 pool and 4096-wide
    classifier are dropped (they assume 224 px). The five max-pools round up (ceil_mode), so
    odd sizes such as 28 px reach 1 x 1 instead of 0 x 0; for even sizes (32, 224) this is the
    same as torchvision.

    ``width`` is the first stage's channels (torchvision: 64); every stage scales with it, so
    ``width=16`` is a VGG a quarter as wide (1/16 of the FLOPs) for 28-96 px images on a CPU,
    with ``out_dim = 8 * width``. Pretrained weights need ``width=64``."""

    def __init__(self, depth: int = 16, batch_norm: bool = True, in_channels: int = 3, weights: str | None = None, width: int = 64) -> None:
        super().__init__()
        if depth not in _VGGS or isinstance(depth, bool):
            raise ConfigError(f"backbone.depth={depth!r}: expected one of 11, 13, 16, 19")
        _check_in_channels(in_channels)
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ConfigError(f"backbone.width={width!r}: expected a positive integer (torchvision's VGG: 64)")
        if weights is not None and in_channels != 3:
            raise ConfigError(
                f"backbone.weights={weights!r} needs 3 input channels (got in_channels={in_channels}): the pretrained first conv is RGB"
            )
        if weights is not None and width != 64:
            raise ConfigError(
                f"backbone.weights={weights!r} needs backbone.width=64 (got {width}): the pretrained layers have torchvision's widths"
            )
        name = f"vgg{depth}" + ("_bn" if batch_norm else "")
        # torchvision's own layer list for vgg{depth}(_bn), without building its 120M-parameter
        # classifier; initialised as torchvision's VGG does (BatchNorm keeps its 1/0 default)
        import torchvision.models.vgg as tv_vgg

        layout = [v if v == "M" else v * width // 64 for v in tv_vgg.cfgs[_VGGS[depth]]]
        features = tv_vgg.make_layers(layout, batch_norm=batch_norm)
        for m in features:
            if isinstance(m, nn.Conv2d):
                _conv_init(m)
        if weights is not None:
            state = _pretrained_state(name, weights)
            # only the conv part is used (IMAGENET1K_FEATURES weights carry no trained classifier)
            features.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
        if in_channels != 3:
            features[0] = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
            _conv_init(features[0])
        for m in features:
            if isinstance(m, nn.MaxPool2d):
                m.ceil_mode = True
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = 8 * width
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)
