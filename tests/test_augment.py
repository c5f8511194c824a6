"""Batched augmentation with per-sample parameters (clusterbench.data.augment): exact values of
every op, per-sample independence, reproducibility from a generator, identity settings, the
pipelines in configs/augment/ (instantiated and checked against the ops' signatures)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from clusterbench.config_check import check_node
from clusterbench.data.augment import (
    BatchAugment,
    ColorJitter,
    GaussianBlur,
    MultiViewAugment,
    Normalize,
    RandomAffine,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomSolarize,
    Resize,
    build_augment,
    hsv_to_rgb,
    rgb_to_hsv,
    to_float,
)

AUGMENT_DIR = Path(__file__).resolve().parents[1] / "configs" / "augment"
PIPELINES = {"cc": 2, "pici": 2, "mfavbs": 2, "htcn": 3, "dcsm": 2}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 4, c: int = 3, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=gen(seed))


def same_image(n: int = 16, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    return images(1, c, h, w).expand(n, c, h, w).contiguous()


def distinct(out: torch.Tensor) -> int:
    """How many different images a batch holds."""
    return len({tuple(v.tolist()) for v in out.flatten(1)})


# --------------------------------------------------------------------------- exact values
def test_to_float_and_shapes():
    x = images()
    y = to_float(x)
    assert y.dtype == torch.float32 and torch.equal(y * 255, x.float())
    assert to_float(y) is y
    with pytest.raises(TypeError):
        to_float(x.to(torch.int32))
    for op in (
        RandomResizedCrop(size=5),
        RandomAffine(20, [0.1, 0.1]),
        RandomHorizontalFlip(),
        ColorJitter(0.4, 0.4, 0.4, 0.1),
        RandomGrayscale(0.5),
        GaussianBlur(3),
        RandomSolarize(),
        Normalize([0.5] * 3, [0.2] * 3),
    ):
        out = op(x, gen())
        assert out.dtype == torch.float32 and out.shape[:2] == x.shape[:2]
    assert RandomResizedCrop(size=(5, 7))(x, gen()).shape == (4, 3, 5, 7)
    assert Resize(6)(x).shape == (4, 3, 6, 6)
    with pytest.raises(ValueError):
        RandomHorizontalFlip()(x[0])


def test_flip_exact():
    x = to_float(images(8))
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x, gen()), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x, gen()), x)
    out = RandomHorizontalFlip(p=0.5)(x, gen(3))
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_grayscale_exact_itu601():
    x = to_float(images(3))
    out = RandomGrayscale(p=1.0)(x, gen())
    gray = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for ch in range(3):
        torch.testing.assert_close(out[:, ch], gray, rtol=0, atol=1e-7)
    pixel = torch.tensor([[[[1.0]], [[0.0]], [[0.0]]]])  # pure red
    assert RandomGrayscale(p=1.0)(pixel)[0, :, 0, 0].tolist() == pytest.approx([0.299] * 3)
    assert torch.equal(RandomGrayscale(p=0.0)(x, gen()), x)
    g1 = to_float(images(3, c=1))
    assert torch.equal(RandomGrayscale(p=1.0)(g1, gen()), g1)  # C=1: no-op


def test_solarize_exact():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    out = RandomSolarize(threshold=0.5, p=1.0)(x, gen())
    v = torch.arange(256, dtype=torch.float32) / 255
    expected = torch.where(torch.arange(256) >= 128, 1 - v, v)  # PIL: invert values >= 128
    assert torch.equal(out.flatten(), expected)
    assert torch.equal(RandomSolarize(p=0.0)(x, gen()), to_float(x))


def test_normalize_exact():
    x = images(2)
    out = Normalize([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])(x)
    y = x.float() / 255
    expected = torch.stack(((y[:, 0] - 0.5) / 0.5, (y[:, 1] - 0.25) / 0.25, y[:, 2] / 2.0), dim=1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    one = Normalize([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])(images(2, c=1))
    torch.testing.assert_close(one, (images(2, c=1).float() / 255 - 0.5) / 0.5, rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        Normalize([0.5], [0.0])


def test_brightness_and_contrast_hand_computed():
    x = torch.tensor([[0.2, 0.4], [0.6, 0.8]]).expand(1, 3, 2, 2).contiguous()
    bright = ColorJitter(brightness=(1.5, 1.5), p=1.0)(x, gen())
    expected = torch.tensor([[0.3, 0.6], [0.9, 1.0]])  # 0.8 * 1.5 = 1.2 clamps to 1
    torch.testing.assert_close(bright[0, 0], expected)
    # contrast 0.5 on a gray image: mean luma 0.5, 0.5 x + 0.5 * 0.5
    low = ColorJitter(contrast=(0.5, 0.5), p=1.0)(x, gen())
    torch.testing.assert_close(low[0, 1], torch.tensor([[0.35, 0.45], [0.55, 0.65]]))
    # saturation 0 gives the luma image on every channel
    rgb = to_float(images(2))
    sat = ColorJitter(saturation=(0.0, 0.0), p=1.0)(rgb, gen())
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    torch.testing.assert_close(sat[:, 2], luma)


def test_jitter_factor_ranges_follow_torchvision():
    cj = ColorJitter(brightness=0.4, contrast=1.5, saturation=[0.2, 0.3], hue=0.1)
    assert cj.brightness == pytest.approx((0.6, 1.4))
    assert cj.contrast == (0.0, 2.5)  # lower end clipped at 0
    assert cj.saturation == (0.2, 0.3) and cj.hue == pytest.approx((-0.1, 0.1))
    _, factors, order = cj.factors(torch.zeros(500, 3, 2, 2), gen())
    assert factors[:, 0].min() >= 0.6 and factors[:, 0].max() <= 1.4
    assert factors[:, 3].abs().max() <= 0.1
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(500, 4))
    assert len({tuple(o) for o in order.tolist()}) == 24  # every order occurs
    with pytest.raises(ValueError):
        ColorJitter(hue=0.6)


def test_hue_identities():
    x = to_float(images(6))
    assert torch.equal(ColorJitter(hue=(0.0, 0.0), p=1.0)(x, gen()), x)
    assert torch.equal(ColorJitter._hue(x, torch.zeros(6)), x)
    half = ColorJitter(hue=(0.5, 0.5), p=1.0)
    twice = half(half(x, gen()), gen())
    torch.testing.assert_close(twice, x, rtol=0, atol=1e-5)
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(x)), x, rtol=0, atol=1e-6)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    green = ColorJitter._hue(red, torch.tensor([1 / 3]))  # a third of a turn: red -> green
    torch.testing.assert_close(green.flatten(), torch.tensor([0.0, 1.0, 0.0]), rtol=0, atol=1e-6)


def test_jitter_p0_and_grayscale_input():
    x = to_float(images(5))
    assert torch.equal(ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.0)(x, gen()), x)
    g1 = to_float(images(5, c=1))
    out = ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0)(g1, gen())
    assert out.shape == g1.shape and not torch.equal(out, g1)
    only_colour = ColorJitter(saturation=0.9, hue=0.4, p=1.0)(g1, gen())
    assert torch.equal(only_colour, g1)  # saturation and hue skipped for C=1


def test_random_order_matches_fixed_order_when_same():
    x = to_float(images(32))
    fixed = ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0, random_order=False)
    rand = ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0, random_order=True)
    _, factors, order = rand.factors(x, gen(1))
    out_fixed = fixed(x, gen(1))
    out_rand = rand(x, gen(1))
    # the fixed-order factors are drawn identically (the order draw comes after them)
    assert torch.equal(fixed.factors(x, gen(1))[1], factors)
    same = (order == torch.arange(4)).all(dim=1)
    assert same.any() and not same.all()
    torch.testing.assert_close(out_rand[same], out_fixed[same], rtol=0, atol=1e-6)
    assert not torch.allclose(out_rand[~same], out_fixed[~same])


def test_blur_tiny_sigma_is_identity_and_mean_preserved():
    x = to_float(images(4, h=12, w=12))
    tiny = GaussianBlur(kernel_size=5, sigma=(1e-3, 1e-3), p=1.0)(x, gen())
    torch.testing.assert_close(tiny, x, rtol=0, atol=1e-6)
    assert torch.equal(GaussianBlur(kernel_size=5, p=0.0)(x, gen()), x)
    flat = torch.full((2, 3, 9, 9), 0.3)
    torch.testing.assert_close(GaussianBlur(5, sigma=(2.0, 2.0), p=1.0)(flat, gen()), flat)
    # a centred impulse spreads into the separable gaussian and keeps its mass
    impulse = torch.zeros(1, 1, 11, 11)
    impulse[0, 0, 5, 5] = 1.0
    out = GaussianBlur(5, sigma=(1.0, 1.0), p=1.0)(impulse, gen())
    k = torch.exp(-0.5 * torch.arange(-2.0, 3.0) ** 2)
    k = k / k.sum()
    torch.testing.assert_close(out[0, 0, 3:8, 3:8], torch.outer(k, k))
    assert out.sum().item() == pytest.approx(1.0, abs=1e-6)
    blurred = GaussianBlur(5, sigma=(1.5, 1.5), p=1.0)(x, gen())
    assert blurred.std() < x.std()
    assert GaussianBlur().kernel_side(224, 224) == 23 and GaussianBlur().kernel_side(32, 32) == 3


def test_blur_per_sample_sigma():
    blur = GaussianBlur(kernel_size=5, sigma=(0.5, 2.0), p=1.0)
    kernels = blur.kernels(torch.zeros(64, 3, 8, 8), gen())
    assert len({round(k[2].item(), 7) for k in kernels}) == 64  # 64 different sigmas
    out = blur(same_image(16, h=10, w=10), gen())
    assert distinct(out) == 16


# --------------------------------------------------------------------------- crops
def test_crop_identity_settings_return_input():
    x = to_float(images(4, h=8, w=8))
    crop = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(crop(x, gen()), x, rtol=0, atol=1e-6)
    wide = to_float(images(2, h=6, w=9))
    crop = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.5, 1.5))
    torch.testing.assert_close(crop(wide, gen()), wide, rtol=0, atol=1e-6)


def test_crop_boxes_in_range_and_per_sample():
    crop = RandomResizedCrop(size=4, scale=(0.08, 1.0), ratio=(0.75, 4 / 3))
    x = torch.zeros(2000, 3, 20, 30)
    top, left, h, w = crop.boxes(x, gen()).unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 20 + 1e-4).all() and (left + w <= 30 + 1e-4).all()
    area = h * w / 600
    assert area.min() >= 0.08 - 1e-5 and area.max() <= 1 + 1e-5
    assert (w / h).min() >= 0.75 - 1e-4 and (w / h).max() <= 4 / 3 + 1e-4
    assert len(set(top.tolist())) > 1990  # (a rare fallback box is the same central one)
    # a box that never fits falls back to the whole image with the ratio clamped
    narrow = RandomResizedCrop(scale=(1.0, 1.0), ratio=(3.0, 3.0), attempts=3)
    box = narrow.boxes(torch.zeros(3, 1, 10, 10), gen())
    expected = torch.tensor([[(10 - 10 / 3) / 2, 0.0, 10 / 3, 10.0]] * 3)
    torch.testing.assert_close(box, expected)


def test_crop_exact_on_a_pixel_aligned_box():
    # a half-size box at (2, 4) sampled to its own size hits pixel centres exactly
    x = to_float(images(1, h=8, w=8))
    crop = RandomResizedCrop(size=4)
    crop.boxes = lambda x, generator=None: torch.tensor([[2.0, 4.0, 4.0, 4.0]])
    torch.testing.assert_close(crop(x, gen()), x[:, :, 2:6, 4:8], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "angle, dx, dy, zoom, shape",
    [
        (90.0, 0.0, 0.0, 1.0, (8, 8)),
        (30.0, 0.0, 0.0, 1.0, (8, 8)),
        (0.0, 2.0, -3.0, 1.0, (8, 8)),
        (-20.0, 1.0, 2.0, 1.2, (8, 8)),
        (90.0, 0.0, 0.0, 1.0, (6, 10)),
        (12.0, -1.0, 1.0, 0.9, (7, 9)),
    ],
)
def test_affine_matches_torchvision(angle, dx, dy, zoom, shape):
    """Rotation direction, shift, zoom and black fill as torchvision's affine (bilinear)."""
    from torchvision.transforms.v2 import functional as TF

    x = to_float(images(3, h=shape[0], w=shape[1]))
    params = torch.tensor([[angle, dx, dy, zoom]]).expand(3, 4)
    ours = RandomAffine().apply(x, params)
    ref = TF.affine(x, angle=angle, translate=[dx, dy], scale=zoom, shear=[0.0, 0.0], interpolation=TF.InterpolationMode.BILINEAR)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_affine_parameter_ranges_identity_and_fill():
    x = images(500, h=10, w=20)
    params = RandomAffine(degrees=15, translate=[0.1, 0.2], scale=[0.9, 1.1]).parameters(to_float(x), gen())
    angle, dx, dy, zoom = params.unbind(1)
    assert angle.abs().max() <= 15 and angle.min() < -13 and angle.max() > 13
    assert dx.abs().max() <= 2.0 and dx.abs().max() > 1.8  # 0.1 x width 20
    assert dy.abs().max() <= 2.0 and dy.abs().max() > 1.8  # 0.2 x height 10
    assert zoom.min() >= 0.9 and zoom.max() <= 1.1
    assert distinct(angle[:, None]) == 500
    torch.testing.assert_close(RandomAffine()(x[:4], gen()), to_float(x[:4]), rtol=0, atol=1e-6)
    # a shift of a whole image width leaves only the fill
    shifted = RandomAffine(fill=0.25).apply(to_float(x[:2]), torch.tensor([[0.0, 20.0, 0.0, 1.0]] * 2))
    torch.testing.assert_close(shifted, torch.full_like(shifted, 0.25))
    with pytest.raises(ValueError, match="translate"):
        RandomAffine(translate=[1.5, 0.0])
    with pytest.raises(ValueError, match="degrees"):
        RandomAffine(degrees=-3)


# --------------------------------------------------------------------------- per-sample randomness
def test_identical_images_get_different_views():
    x = same_image(16)
    for op in (RandomResizedCrop(), RandomAffine(20, [0.1, 0.1]), ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0)):
        assert distinct(op(x, gen())) == 16
    view = BatchAugment([RandomResizedCrop(), RandomHorizontalFlip(), ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), RandomGrayscale(0.2)])
    assert distinct(view(x, gen())) == 16


def test_same_seed_reproduces_and_views_differ():
    aug = build_augment(OmegaConf.load(AUGMENT_DIR / "cc.yaml"))
    x = images(6)
    a1, b1 = aug(x, gen(7))
    a2, b2 = aug(x, gen(7))
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert not torch.equal(a1, b1)
    a3, _ = aug(x, gen(8))
    assert not torch.equal(a1, a3)


def test_sample_result_does_not_depend_on_batch_mates():
    # the parameters of sample i come from the i-th draw: the same images in another batch
    # give the same result for the samples the batches share when drawn the same way
    x = images(6)
    y = x.clone()
    y[3:] = images(3, seed=9)
    for op in (
        RandomResizedCrop(size=5),
        RandomAffine(20, [0.1, 0.1]),
        RandomHorizontalFlip(),
        ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        RandomGrayscale(0.5),
        GaussianBlur(3, p=0.5),
        RandomSolarize(p=0.5),
    ):
        assert torch.equal(op(x, gen(2))[:3], op(y, gen(2))[:3]), type(op).__name__


def test_probability_is_per_sample():
    x = to_float(images(400, h=2, w=2))
    out = RandomSolarize(threshold=0.0, p=0.2)(x, gen())
    changed = (out != x).flatten(1).any(dim=1).float().mean().item()
    assert 0.12 < changed < 0.28


# --------------------------------------------------------------------------- pipelines and configs
def _target_nodes(node, path="augment"):
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node:
            yield from _target_nodes(node[key], f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            yield from _target_nodes(item, f"{path}.{i}")


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_configs_instantiate_and_run(name):
    cfg = OmegaConf.load(AUGMENT_DIR / f"{name}.yaml")
    for path, node in _target_nodes(cfg):
        check_node(node, path)  # keys and annotations fit the ops' signatures
    aug = build_augment(cfg)
    assert isinstance(aug, MultiViewAugment) and len(aug) == PIPELINES[name]
    for c in (3, 1):
        views = aug(images(4, c=c, h=12, w=12), gen())
        assert len(views) == PIPELINES[name]
        for v in views:
            assert v.shape == (4, c, 12, 12) and v.dtype == torch.float32 and torch.isfinite(v).all()
    cfg.size = 10
    views = build_augment(cfg)(images(2, h=12, w=12), gen())
    assert all(v.shape == (2, 3, 10, 10) for v in views)


def test_pipeline_contents():
    mf = build_augment(OmegaConf.load(AUGMENT_DIR / "mfavbs.yaml"))
    names = [[type(op).__name__ for op in v.ops] for v in mf.views]
    assert names[1] == names[0] + ["RandomSolarize"] and mf.views[1].ops[-1].p == 0.2
    assert mf.views[0].ops[0].scale == (0.08, 1.0)
    cc = build_augment(OmegaConf.load(AUGMENT_DIR / "cc.yaml"))
    jitter = cc.views[0].ops[2]
    assert jitter.p == 0.8 and jitter.brightness == pytest.approx((0.6, 1.4)) and jitter.hue == pytest.approx((-0.1, 0.1))
    assert cc.views[0].ops[3].p == 0.2 and cc.views[0] is not cc.views[1]
    pici = build_augment(OmegaConf.load(AUGMENT_DIR / "pici.yaml"))
    assert [type(op).__name__ for op in pici.views[0].ops] == ["Resize", "Normalize"]
    assert "GaussianBlur" in [type(op).__name__ for op in pici.views[1].ops]


def test_none_config_gives_no_augmentation():
    assert build_augment(OmegaConf.load(AUGMENT_DIR / "none.yaml")) is None
    assert build_augment(None) is None


# --------------------------------------------------------------------------- devices
def test_meta_device_shapes():
    x = torch.empty(4, 3, 8, 8, dtype=torch.uint8, device="meta")
    aug = build_augment(OmegaConf.load(AUGMENT_DIR / "mfavbs.yaml"))
    for v in aug(x, gen()):
        assert v.device.type == "meta" and v.shape == (4, 3, 8, 8) and v.dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = images(8, h=16, w=16)
    for name in PIPELINES:
        aug = build_augment(OmegaConf.load(AUGMENT_DIR / f"{name}.yaml"))
        cpu = aug(x, gen(4))
        cuda = aug(x.cuda(), gen(4))  # CPU generator, CUDA images: same parameters
        for a, b in zip(cpu, cuda):
            assert b.is_cuda
            torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-4)
        on_device = aug(x.cuda(), torch.Generator(device="cuda").manual_seed(4))
        assert all(v.is_cuda and v.shape == (8, 3, 16, 16) for v in on_device)
