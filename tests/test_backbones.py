"""Image backbones: output shapes for the input sizes and channel counts of the image data sets,
the CIFAR stem, parameter counts against torchvision, one-line errors for bad depths and
weights (the weights loader is replaced: no network), and the backbone configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from conftest import CONFIG_DIR
from hydra.utils import instantiate
from omegaconf import OmegaConf

from clusterbench.config_check import check_node
from clusterbench.errors import ConfigError
from clusterbench.nn import backbones
from clusterbench.nn.backbones import VGG, ResNet, SmallCNN

BACKBONE_CONFIGS = ["resnet18", "resnet34", "resnet50", "small_cnn", "vgg16", "vgg_small"]


def _features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("size", [8, 16, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_small_cnn_shapes(size, channels):
    model = SmallCNN(in_channels=channels)
    assert model.out_dim == 256
    assert _features(model, torch.randn(2, channels, size, size)).shape == (2, 256)


def test_small_cnn_without_projection_returns_pooled_features():
    model = SmallCNN(in_channels=1, widths=[8, 16], out_dim=None)
    assert model.out_dim == 16
    assert _features(model, torch.randn(2, 1, 16, 16)).shape == (2, 16)


# ResNet-34/50 at 32 px take seconds on 2 cores: most of their cases run at 16 px (the network is
# fully convolutional up to the global pool, so the shape logic is the same)
@pytest.mark.parametrize(
    "depth,out_dim,channels,size",
    [(18, 512, 1, 32), (18, 512, 3, 32), (34, 512, 1, 16), (34, 512, 3, 16), (50, 2048, 1, 32), (50, 2048, 3, 16)],
)
def test_resnet_cifar_stem_shapes(depth, out_dim, channels, size):
    model = ResNet(depth=depth, in_channels=channels)
    assert model.out_dim == out_dim and model.conv1.in_channels == channels
    assert _features(model, torch.randn(1, channels, size, size)).shape == (1, out_dim)


@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_imagenet_stem_shapes(channels):
    model = ResNet(depth=18, stem="imagenet", in_channels=channels)
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, torch.nn.MaxPool2d)
    assert _features(model, torch.randn(2, channels, 64, 64)).shape == (2, 512)


def test_resnet_cifar_stem_keeps_resolution():
    model = ResNet(depth=18, stem="cifar", in_channels=3)
    conv = model.conv1
    assert (conv.kernel_size, conv.stride, conv.padding, conv.bias) == ((3, 3), (1, 1), (1, 1), None)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    seen = {}
    model.layer1.register_forward_pre_hook(lambda mod, inp: seen.update(layer1_in=inp[0].shape))
    _features(model, torch.randn(2, 3, 32, 32))
    assert seen["layer1_in"] == (2, 64, 32, 32)


def test_resnet18_parameter_count_matches_torchvision():
    ours = ResNet(depth=18, stem="imagenet", in_channels=3)
    reference = tvm.resnet18(weights=None)
    fc = sum(p.numel() for p in reference.fc.parameters())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters()) - fc
    # same names too: a torchvision state dict without fc.* loads
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")})


@pytest.mark.parametrize("channels", [1, 3])
def test_vgg_shapes(channels):
    model = VGG(depth=11, batch_norm=True, in_channels=channels)
    assert model.out_dim == 512
    assert _features(model, torch.randn(2, channels, 32, 32)).shape == (2, 512)
    # the rounded-up pools let odd sizes such as MNIST's 28 px through
    assert _features(model, torch.randn(2, channels, 28, 28)).shape == (2, 512)


def test_vgg_width_scales_every_stage():
    small = VGG(depth=11, width=16, in_channels=1)
    convs = [m.out_channels for m in small.features if isinstance(m, torch.nn.Conv2d)]
    full = [m.out_channels for m in VGG(depth=11).features if isinstance(m, torch.nn.Conv2d)]
    assert convs == [c // 4 for c in full] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert small.out_dim == 128 and _features(small, torch.randn(2, 1, 28, 28)).shape == (2, 128)


def test_vgg_without_batch_norm():
    model = VGG(depth=11, batch_norm=False, in_channels=3)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert _features(model, torch.randn(1, 3, 32, 32)).shape == (1, 512)


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: ResNet(depth=20), r"backbone\.depth=20: expected one of 18, 34, 50"),
        (lambda: VGG(depth=12), r"backbone\.depth=12: expected one of 11, 13, 16, 19"),
        (lambda: ResNet(stem="tiny"), r"backbone\.stem='tiny'"),
        (lambda: SmallCNN(widths=[]), r"backbone\.widths=\[\]"),
        (lambda: ResNet(weights="IMAGENET1K_V1", stem="imagenet", in_channels=1), r"needs backbone\.stem=imagenet and 3 input channels"),
        (lambda: ResNet(weights="IMAGENET1K_V1", stem="cifar"), r"needs backbone\.stem=imagenet"),
        (lambda: VGG(weights="IMAGENET1K_V1", in_channels=1), r"needs 3 input channels"),
        (lambda: VGG(weights="IMAGENET1K_V1", width=16), r"needs backbone\.width=64 \(got 16\)"),
        (lambda: VGG(width=0), r"backbone\.width=0: expected a positive integer"),
        (lambda: ResNet(weights="NOPE", stem="imagenet"), r"backbone\.weights='NOPE': no such weights for resnet18"),
    ],
)
def test_bad_arguments_are_one_line_config_errors(build, message):
    with pytest.raises(ConfigError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


def test_failed_weights_download_is_one_line(monkeypatch):
    def offline(weights):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>\nsecond line")

    monkeypatch.setattr(backbones, "_load_state_dict", offline)
    with pytest.raises(ConfigError) as info:
        ResNet(depth=18, stem="imagenet", weights="IMAGENET1K_V1")
    text = str(info.value)
    assert "\n" not in text
    assert "ResNet18_Weights.IMAGENET1K_V1" in text and "Temporary failure in name resolution" in text


def test_weights_load_through_the_loader(monkeypatch):
    # the loader's state dict (here a fresh torchvision model's) ends up in the backbone
    reference = tvm.resnet18(weights=None)
    requested = []

    def fake(weights):
        requested.append(weights)
        return reference.state_dict()

    monkeypatch.setattr(backbones, "_load_state_dict", fake)
    model = ResNet(depth=18, stem="imagenet", weights="DEFAULT")
    assert requested == [tvm.ResNet18_Weights.IMAGENET1K_V1]
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)

    # a torchvision VGG state dict: features.* is loaded, the classifier is not used
    donor = VGG(depth=11)
    state = {f"features.{k}": v for k, v in donor.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)
    monkeypatch.setattr(backbones, "_load_state_dict", lambda weights: state)
    vgg = VGG(depth=11, weights="IMAGENET1K_V1")
    assert torch.equal(vgg.features[0].weight, donor.features[0].weight)
    assert torch.equal(vgg.features[-3].weight, donor.features[-3].weight)  # the last BatchNorm


@pytest.mark.parametrize(
    "build,size",
    [(lambda: SmallCNN(in_channels=3), 16), (lambda: ResNet(depth=18, in_channels=3), 8), (lambda: VGG(depth=11, in_channels=3), 16)],
    ids=["small_cnn", "resnet18", "vgg11"],
)
def test_channels_last_matches_contiguous(build, size):
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = model(x)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "build,first",
    [
        (lambda: SmallCNN(in_channels=1), lambda m: m.features[0]),
        (lambda: ResNet(depth=18, in_channels=1), lambda m: m.conv1),
        (lambda: VGG(depth=11, in_channels=1), lambda m: m.features[0]),
    ],
    ids=["small_cnn", "resnet18", "vgg11"],
)
def test_gradient_reaches_first_conv(build, first):
    model = build().train()
    model(torch.randn(2, 1, 8, 8)).square().mean().backward()
    grad = first(model).weight.grad
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("name", BACKBONE_CONFIGS)
def test_backbone_config_instantiates_and_checks(name):
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "backbone" / f"{name}.yaml")
    assert "in_channels" not in cfg  # the method supplies it from the data
    check_node(cfg, "backbone")
    model = instantiate(cfg, in_channels=3)
    # 16 px: the shape is what is checked here (32 px runs are above), and it keeps ResNet-50 fast
    assert _features(model, torch.randn(1, 3, 16, 16)).shape == (1, model.out_dim)


def test_config_check_rejects_a_bad_backbone_key():
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "backbone" / "resnet18.yaml")
    cfg.stem = "tiny"
    with pytest.raises(ConfigError, match=r"backbone\.stem='tiny': expected one of 'imagenet', 'cifar'"):
        check_node(cfg, "backbone")
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "backbone" / "small_cnn.yaml")
    cfg.widths = 64
    with pytest.raises(ConfigError, match=r"backbone\.widths=64: expected list"):
        check_node(cfg, "backbone")
