"""Batched image augmentation on the training device, with per-sample random parameters.

torchvision.transforms.v2 applied to a batch tensor draws ONE parameter set for the whole batch,
which makes the two views of every sample in a contrastive batch share the same crop and jitter.
The ops here take a batch ``N x C x H x W`` (uint8 or float, any device) and a
``torch.Generator`` and draw every random parameter per sample, in pure PyTorch:

- ``RandomResizedCrop``: one ``affine_grid`` + ``grid_sample`` (bilinear) call, per-sample boxes;
- ``RandomHorizontalFlip``, ``RandomGrayscale``, ``RandomSolarize``: per-sample Bernoulli masks;
- ``ColorJitter``: per-sample brightness / contrast / saturation / hue factors, applied with
  probability ``p`` and in a per-sample random order (``random_order=True``);
- ``GaussianBlur``: per-sample sigma, separable grouped convolution with per-sample kernels;
- ``Resize`` and ``Normalize`` (deterministic).

``BatchAugment`` chains ops into one view; ``MultiViewAugment`` makes the views of a batch.
uint8 input is converted to float in [0, 1] first (``to_float``); every op returns float.
Random draws happen on the generator's device (a CPU generator is the usual case) and the few
per-sample numbers are then moved to the images' device: no host syncs, no data-dependent
shapes, so a step stays capturable. docs/augmentation.md lists the ops, ranges and pipelines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "BatchAugment",
    "ColorJitter",
    "GaussianBlur",
    "MultiViewAugment",
    "Normalize",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomSolarize",
    "Resize",
    "build_augment",
    "hsv_to_rgb",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "to_float",
]

# ITU-R 601-2 luma, as PIL's convert("L") (torchvision's tensor path uses 0.2989 for red)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------- helpers
def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; floating input is returned unchanged."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32) / 255.0
    if not x.is_floating_point():
        raise TypeError(f"expected uint8 or floating images, got {x.dtype}")
    return x


def _check(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected a batch N x C x H x W, got shape {tuple(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 (grayscale) or 3 (RGB) channels, got {x.shape[1]}")


def _rand(n: int, generator: torch.Generator | None, like: torch.Tensor, *shape: int) -> torch.Tensor:
    """U[0, 1) of shape (n, *shape), drawn on the generator's device, returned on like's device."""
    device = generator.device if generator is not None else like.device
    if device.type == "meta":  # the meta device has no random numbers; draw on the CPU
        device = torch.device("cpu")
    u = torch.rand((n, *shape), generator=generator, device=device, dtype=torch.float32)
    return u.to(like.device, non_blocking=True)


def _uniform(lo: float, hi: float, n: int, generator, like, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * _rand(n, generator, like, *shape)


def _bernoulli(p: float, n: int, generator, like) -> torch.Tensor:
    """Per-sample boolean mask of shape (n,), True with probability p."""
    return _rand(n, generator, like) < p


def _pair(value: float | Sequence[float], name: str, center: float, bound: tuple[float, float] | None):
    """torchvision's convention: a number v means [center - v, center + v] (clipped to bound)."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name}={value}: expected a non-negative number")
        lo, hi = center - float(value), center + float(value)
        if bound is not None:
            lo = max(lo, bound[0])
    else:
        lo, hi = (float(v) for v in _seq(value, 2, name))
    if lo > hi or (bound is not None and (lo < bound[0] or hi > bound[1])):
        raise ValueError(f"{name}=({lo}, {hi}): expected min <= max within {bound}")
    return lo, hi


def _seq(value, length: int, name: str) -> tuple:
    values = tuple(value)
    if len(values) != length:
        raise ValueError(f"{name}={values}: expected {length} numbers")
    return values


def _size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = _seq(size, 2, "size")
    return int(h), int(w)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W -> N x 1 x H x W luma (0.299 R + 0.587 G + 0.114 B)."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return x if x.shape[1] == 1 else rgb_to_grayscale(x)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of the turn), channel dim 1."""
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    grey = delta == 0
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    d = torch.where(grey, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    h = torch.where(is_r, bc - gc, torch.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(grey, torch.zeros_like(h), h)
    h = torch.remainder(h / 6.0, 1.0)
    return torch.stack((h, s, maxc), dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1] -> RGB in [0, 1]: c = v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6."""
    h, s, v = x.unbind(1)
    n = torch.tensor((5.0, 3.0, 1.0), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h.unsqueeze(1), 6.0)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * ramp


# --------------------------------------------------------------------------- ops
class RandomResizedCrop:
    """Crop a random box of each image and resize it to ``size``, all in one grid_sample call.

    Per sample: area fraction ~ U(scale), log aspect ratio (w/h) ~ U(log ratio); of ``attempts``
    draws the first box that fits is used, else torchvision's fallback (the central box of the
    whole image with its aspect ratio clamped into ``ratio``). The box position is uniform over the valid range. Boxes are
    continuous (sub-pixel), not rounded to whole pixels as in torchvision, and the bilinear
    resampling has no antialiasing. ``size=None`` keeps the input's H x W.
    """

    def __init__(
        self,
        size: int | Sequence[int] | None = None,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        attempts: int = 10,
    ) -> None:
        self.size = _size(size)
        self.scale = tuple(float(v) for v in _seq(scale, 2, "scale"))
        self.ratio = tuple(float(v) for v in _seq(ratio, 2, "ratio"))
        if not 0 < self.scale[0] <= self.scale[1] or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"scale={self.scale}, ratio={self.ratio}: expected 0 < min <= max")
        if attempts < 1:
            raise ValueError(f"attempts={attempts}: expected >= 1")
        self.attempts = int(attempts)

    def boxes(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample boxes (top, left, height, width) in pixels, shape N x 4, float."""
        n, _, height, width = x.shape
        area = float(height * width)
        u = _rand(n, generator, x, self.attempts, 4)
        target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[..., 0])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
        w = torch.sqrt(target * aspect)
        h = torch.sqrt(target / aspect)
        ok = (w <= width) & (h <= height)
        first = torch.argmax(ok.to(torch.int8), dim=1, keepdim=True)  # first fitting draw
        found = ok.any(dim=1)
        w = torch.gather(w, 1, first).squeeze(1)
        h = torch.gather(h, 1, first).squeeze(1)
        # fallback: the whole image, with the aspect ratio clamped into `ratio`
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            fw, fh = float(width), width / self.ratio[0]
        elif in_ratio > self.ratio[1]:
            fw, fh = height * self.ratio[1], float(height)
        else:
            fw, fh = float(width), float(height)
        w = torch.where(found, w, torch.full_like(w, fw))
        h = torch.where(found, h, torch.full_like(h, fh))
        half = torch.full_like(w, 0.5)  # the fallback box is central
        top = (height - h) * torch.where(found, torch.gather(u[..., 2], 1, first).squeeze(1), half)
        left = (width - w) * torch.where(found, torch.gather(u[..., 3], 1, first).squeeze(1), half)
        return torch.stack((top, left, h, w), dim=1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        x = to_float(x)
        n, c, height, width = x.shape
        out_h, out_w = self.size or (height, width)
        top, left, h, w = self.boxes(x, generator).unbind(1)
        # align_corners=False: normalised -1 / +1 are the outer pixel edges, so the box edges
        # [left, left + w] map to [2 left / W - 1, 2 (left + w) / W - 1]
        # the affine map is a per-sample scale and shift of each axis: built by broadcasting
        # (what F.affine_grid computes with a batched matmul, several times slower on CPU)
        scale = torch.stack((w / width, h / height), dim=1).to(x.dtype).view(n, 1, 1, 2)
        shift = torch.stack(((2 * left + w) / width - 1, (2 * top + h) / height - 1), dim=1).to(x.dtype).view(n, 1, 1, 2)
        xs = (torch.arange(out_w, dtype=x.dtype, device=x.device) * 2 + 1) / out_w - 1  # pixel centres
        ys = (torch.arange(out_h, dtype=x.dtype, device=x.device) * 2 + 1) / out_h - 1
        base = torch.stack(torch.broadcast_tensors(xs.view(1, -1), ys.view(-1, 1)), dim=-1)  # out_h x out_w x 2
        grid = base * scale + shift
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class RandomAffine:
    """Rotate, shift and (optionally) scale each image by its own random parameters, in one
    grid_sample call; the output keeps the input's H x W (DCSM's "small perturbations").

    Per sample, as torchvision's RandomAffine: angle ~ U(degrees) (counter-clockwise on screen,
    about the image centre), shift ~ U(-translate[0] W, translate[0] W) pixels across and
    U(-translate[1] H, translate[1] H) down, zoom ~ U(scale). Shifts are continuous (sub-pixel),
    not rounded to whole pixels as in torchvision; pixels from outside the image are ``fill``
    (torchvision's default 0: black). Bilinear; ``degrees`` may be one number d (U(-d, d)) or a
    pair [min, max].
    """

    def __init__(
        self,
        degrees: float | Sequence[float] = 0.0,
        translate: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        fill: float = 0.0,
    ) -> None:
        self.degrees = _pair(degrees, "degrees", 0.0, None)
        if translate is None:
            translate = (0.0, 0.0)
        self.translate = tuple(float(v) for v in _seq(translate, 2, "translate"))
        if not all(0.0 <= t <= 1.0 for t in self.translate):
            raise ValueError(f"translate={self.translate}: expected fractions in [0, 1]")
        self.scale = (1.0, 1.0) if scale is None else tuple(float(v) for v in _seq(scale, 2, "scale"))
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale={self.scale}: expected 0 < min <= max")
        self.fill = float(fill)

    def parameters(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample (angle in degrees, shift right in px, shift down in px, zoom), N x 4."""
        n, _, height, width = x.shape
        u = _rand(n, generator, x, 4)
        angle = self.degrees[0] + (self.degrees[1] - self.degrees[0]) * u[:, 0]
        dx = (2 * u[:, 1] - 1) * self.translate[0] * width
        dy = (2 * u[:, 2] - 1) * self.translate[1] * height
        zoom = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 3]
        return torch.stack((angle, dx, dy, zoom), dim=1)

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The transform with given per-sample parameters (``parameters``' layout)."""
        _check(x)
        x = to_float(x)
        n, _, height, width = x.shape
        angle, dx, dy, zoom = params.to(x.dtype).unbind(1)
        theta = torch.deg2rad(angle)
        cos, sin = torch.cos(theta).view(n, 1, 1), torch.sin(theta).view(n, 1, 1)
        # output pixel centres in pixels from the image centre (x right, y down)
        us = (torch.arange(width, dtype=x.dtype, device=x.device) + 0.5 - width / 2).view(1, 1, -1)
        vs = (torch.arange(height, dtype=x.dtype, device=x.device) + 0.5 - height / 2).view(1, -1, 1)
        # inverse map: undo the shift, the counter-clockwise (on screen, y down) rotation, the zoom
        u = us - dx.view(n, 1, 1)
        v = vs - dy.view(n, 1, 1)
        src_u = (cos * u + sin * v) / zoom.view(n, 1, 1)
        src_v = (cos * v - sin * u) / zoom.view(n, 1, 1)
        # align_corners=False: -1 / +1 are the outer pixel edges
        grid = torch.stack((2 * src_u / width, 2 * src_v / height), dim=-1)
        if self.fill == 0.0:
            return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # sample a ones channel too: where it falls below 1 the pixel came (partly) from outside
        ones = torch.ones_like(x[:, :1])
        out = F.grid_sample(torch.cat((x, ones), dim=1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        inside = out[:, -1:]
        return out[:, :-1] + (1 - inside) * self.fill

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        return self.apply(x, self.parameters(x, generator))


class Resize:
    """Deterministic bilinear resize to ``size`` (antialiased when shrinking); None: identity."""

    def __init__(self, size: int | Sequence[int] | None = None, antialias: bool = True) -> None:
        self.size = _size(size)
        self.antialias = antialias

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        x = to_float(x)
        if self.size is None or tuple(x.shape[-2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=self.antialias)


class RandomHorizontalFlip:
    """Mirror each image left-right with probability p (per sample)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        x = to_float(x)
        return _where(_bernoulli(self.p, x.shape[0], generator, x), x.flip(-1), x)


class ColorJitter:
    """torchvision's ColorJitter with per-sample factors, applied to each sample with probability p.

    brightness b: x f, f ~ U(max(0, 1 - b), 1 + b); contrast c: blend with the mean luma of the
    image; saturation s: blend with the image's luma; hue h: shift of the HSV hue by U(-h, h)
    turns (|h| <= 0.5). A pair [min, max] gives the factor range directly. Every step clamps to
    [0, 1]. With ``random_order`` each sample applies the four steps in its own random order
    (as torchvision does per image): each of the four slots does one blend a x + b mean + c luma
    that is brightness, contrast or saturation per sample, plus one hue rotation for the
    samples whose slot is hue. To run the HSV round trip (the costly part) once, the linear
    steps before each sample's hue go in three slots, then one hue rotation for the batch,
    then three slots with the steps after it (a slot past a sample's own steps is the identity).
    Saturation and hue are skipped for 1-channel images.
    """

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.0,
        contrast: float | Sequence[float] = 0.0,
        saturation: float | Sequence[float] = 0.0,
        hue: float | Sequence[float] = 0.0,
        p: float = 1.0,
        random_order: bool = True,
    ) -> None:
        self.brightness = _pair(brightness, "brightness", 1.0, (0.0, math.inf))
        self.contrast = _pair(contrast, "contrast", 1.0, (0.0, math.inf))
        self.saturation = _pair(saturation, "saturation", 1.0, (0.0, math.inf))
        self.hue = _pair(hue, "hue", 0.0, (-0.5, 0.5))
        self.p = float(p)
        self.random_order = random_order

    def factors(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Per-sample (apply mask, factors N x 4 [b, c, s, h], order N x 4 of step indices)."""
        n = x.shape[0]
        apply = _bernoulli(self.p, n, generator, x)
        u = _rand(n, generator, x, 4)
        lo = torch.tensor([r[0] for r in (self.brightness, self.contrast, self.saturation, self.hue)], device=x.device)
        hi = torch.tensor([r[1] for r in (self.brightness, self.contrast, self.saturation, self.hue)], device=x.device)
        factors = lo + (hi - lo) * u
        identity = torch.tensor([1.0, 1.0, 1.0, 0.0], device=x.device)
        factors = torch.where(apply.unsqueeze(1), factors, identity)
        if self.random_order:
            order = torch.argsort(_rand(n, generator, x, 4), dim=1)
        else:
            order = torch.arange(4, device=x.device).expand(n, 4)
        return apply, factors, order

    def _linear(self, x: torch.Tensor, chosen: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast or saturation, whichever each sample's ``chosen`` names, in one
        blend a x + b mean(luma) + c luma (a hue slot gets the identity 1 x)."""
        f = f.to(x.dtype)
        a = torch.where(chosen == 3, torch.ones_like(f), f).view(-1, 1, 1, 1)
        out = a * x
        if self.contrast != (1.0, 1.0) or self.saturation != (1.0, 1.0):
            gray = _gray(x)
            zero = torch.zeros_like(f)
            b = torch.where(chosen == 1, 1.0 - f, zero).view(-1, 1, 1, 1)
            out = out + b * gray.mean(dim=(1, 2, 3), keepdim=True)
            if x.shape[1] == 3:
                c = torch.where(chosen == 2, 1.0 - f, zero).view(-1, 1, 1, 1)
                out = out + c * gray
        return out.clamp_(0.0, 1.0)

    def _slot(self, x: torch.Tensor, chosen: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """One linear step per sample: the step ``chosen`` names with its factor (3: identity)."""
        f = torch.gather(factors, 1, chosen.unsqueeze(1)).squeeze(1)
        return self._linear(x, chosen, f)

    @staticmethod
    def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Rotate the HSV hue of each sample by ``shift`` turns; a zero shift returns x exactly."""
        hsv = rgb_to_hsv(x)
        hue = torch.remainder(hsv[:, :1] + shift.to(x.dtype).view(-1, 1, 1, 1), 1.0)
        shifted = hsv_to_rgb(torch.cat((hue, hsv[:, 1:]), dim=1)).clamp_(0.0, 1.0)
        return _where(shift != 0, shifted, x)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        x = to_float(x)
        apply, factors, order = self.factors(x, generator)
        if x.shape[1] == 1:  # no saturation on grayscale (hue is skipped below)
            factors = factors.clone()
            factors[:, 2] = 1.0
        hue_on = x.shape[1] == 3 and self.hue != (0.0, 0.0)
        if not hue_on:
            out = x
            for slot in range(4):  # a hue slot (chosen == 3) is the identity in _linear
                out = self._slot(out, order[:, slot], factors)
            return _where(apply, out, x)
        # Each sample's order is: linear steps, hue, linear steps. Batched as three linear
        # slots with the steps before hue (identity once a sample reaches its hue), ONE hue
        # rotation for all, three linear slots with the steps after it: the HSV round trip
        # (the costly part) runs once instead of once per slot, with the same result.
        hue_at = torch.argmax((order == 3).to(torch.int64), dim=1, keepdim=True)
        slots = torch.arange(4, device=x.device).expand_as(order)
        identity = torch.full_like(order, 3)
        before = torch.where(slots < hue_at, order, identity)
        after = torch.gather(order, 1, torch.clamp(slots + hue_at + 1, max=3))
        after = torch.where(slots + hue_at + 1 <= 3, after, identity)
        out = x
        for slot in range(3):
            out = self._slot(out, before[:, slot], factors)
        out = self._hue(out, factors[:, 3])
        if self.random_order:
            for slot in range(3):
                out = self._slot(out, after[:, slot], factors)
        return _where(apply, out, x)


class RandomGrayscale:
    """Replace each image by its luma (repeated over the channels) with probability p; no-op if C=1."""

    def __init__(self, p: float = 0.1) -> None:
        self.p = float(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        x = to_float(x)
        mask = _bernoulli(self.p, x.shape[0], generator, x)  # drawn for C=1 too: same stream
        if x.shape[1] == 1:
            return x
        return _where(mask, rgb_to_grayscale(x).expand_as(x), x)


class GaussianBlur:
    """Gaussian blur with probability p and per-sample sigma ~ U(sigma), separable and grouped.

    ``kernel_size`` (odd) is the kernel's side; None takes the odd number nearest 10% of the
    image's shorter side (at least 3), SimCLR's rule (23 at 224 px). Reflect padding, as
    torchvision. Samples that are not blurred get a delta kernel, which returns them exactly.
    """

    def __init__(self, kernel_size: int | None = None, sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5) -> None:
        if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size={kernel_size}: expected a positive odd integer")
        self.kernel_size = kernel_size
        self.sigma = tuple(float(v) for v in _seq(sigma, 2, "sigma"))
        if not 0 < self.sigma[0] <= self.sigma[1]:
            raise ValueError(f"sigma={self.sigma}: expected 0 < min <= max")
        self.p = float(p)

    def kernel_side(self, height: int, width: int) -> int:
        if self.kernel_size is not None:
            return self.kernel_size
        k = int(round(0.1 * min(height, width)))
        return max(3, k if k % 2 == 1 else k + 1)

    def kernels(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample normalised 1-D kernels, N x k (a delta for samples not blurred)."""
        n, _, height, width = x.shape
        k = self.kernel_side(height, width)
        apply = _bernoulli(self.p, n, generator, x)
        sigma = _uniform(self.sigma[0], self.sigma[1], n, generator, x).to(x.dtype)
        d = torch.arange(k, dtype=x.dtype, device=x.device) - (k - 1) / 2
        kernel = torch.exp(-0.5 * (d / sigma.unsqueeze(1)) ** 2)
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        delta = (d == 0).to(x.dtype).expand(n, k)
        return torch.where(apply.unsqueeze(1), kernel, delta)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        x = to_float(x)
        n, c, height, width = x.shape
        kernel = self.kernels(x, generator)
        k = kernel.shape[1]
        pad = k // 2
        if pad >= height or pad >= width:
            raise ValueError(f"kernel_size={k} too large for {height} x {width} images (reflect padding)")
        weight = kernel.repeat_interleave(c, dim=0)  # (N C) x k, one kernel per image channel
        y = x.reshape(1, n * c, height, width)
        y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
        y = F.conv2d(y, weight.view(n * c, 1, k, 1), groups=n * c)
        y = F.conv2d(y, weight.view(n * c, 1, 1, k), groups=n * c)
        return y.view(n, c, height, width)


class RandomSolarize:
    """Invert (1 - x) the pixels >= threshold with probability p per image.

    threshold is on the [0, 1] scale; 0.5 selects exactly the uint8 values >= 128 (PIL's default).
    """

    def __init__(self, threshold: float = 0.5, p: float = 0.2) -> None:
        self.threshold = float(threshold)
        self.p = float(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        x = to_float(x)
        mask = _bernoulli(self.p, x.shape[0], generator, x)
        return _where(mask, torch.where(x >= self.threshold, 1.0 - x, x), x)


class Normalize:
    """(x - mean) / std per channel, deterministic; a 1-channel image uses the first entries."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"mean={self.mean}, std={self.std}: expected equal lengths and std > 0")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        x = to_float(x)
        c = x.shape[1]
        if len(self.mean) < c:
            raise ValueError(f"{len(self.mean)} means for {c} channels")
        mean = torch.tensor(self.mean[:c], dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        std = torch.tensor(self.std[:c], dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        return (x - mean) / std


# --------------------------------------------------------------------------- pipelines
class BatchAugment:
    """One view: the ops in order, each drawing its own per-sample parameters.

    ``size`` (optional) is given to every op with a ``size`` of None (crops, resizes).
    """

    def __init__(self, ops: Sequence[object], size: int | Sequence[int] | None = None) -> None:
        self.ops = list(ops)
        for op in self.ops:
            if not callable(op):
                raise TypeError(f"augmentation op {op!r} is not callable")
        self.set_size(size)

    def set_size(self, size: int | Sequence[int] | None) -> None:
        size = _size(size)
        if size is None:
            return
        for op in self.ops:
            if hasattr(op, "size") and op.size is None:
                op.size = size

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x)
        x = to_float(x)
        for op in self.ops:
            x = op(x, generator)
        return x

    def __repr__(self) -> str:
        return f"BatchAugment([{', '.join(type(op).__name__ for op in self.ops)}])"


class MultiViewAugment:
    """The views of a batch: ``augment(x, generator)`` -> a list of one tensor per view.

    ``size`` (optional) is the output side of every view, given to ops whose size is None.
    """

    def __init__(self, views: Sequence[BatchAugment], size: int | Sequence[int] | None = None) -> None:
        self.views = list(views)
        if not self.views:
            raise ValueError("expected at least one view")
        for view in self.views:
            if isinstance(view, BatchAugment):
                view.set_size(size)
        self.size = _size(size) or self._op_size()

    def _op_size(self) -> tuple[int, int] | None:
        """The output side set on the first view's crop/resize ops, when `size` is not given."""
        first = self.views[0]
        for op in getattr(first, "ops", []):
            if getattr(op, "size", None) is not None:
                return _size(op.size)
        return None

    def test_view(self, x: torch.Tensor) -> torch.Tensor:
        """The unaugmented view evaluation sees: float in [0, 1], resized to the training
        views' size, normalised as the first view is (its Normalize ops, if any)."""
        _check(x)
        x = to_float(x)
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = Resize(self.size)(x)
        for op in getattr(self.views[0], "ops", []):
            if isinstance(op, Normalize):
                x = op(x)
        return x

    def __len__(self) -> int:
        return len(self.views)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        return [view(x, generator) for view in self.views]

    def __repr__(self) -> str:
        return f"MultiViewAugment({self.views})"


def build_augment(cfg) -> MultiViewAugment | None:
    """Instantiate an ``augment`` config; an empty one (augment=none, feature data) gives None."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    if cfg is None or (OmegaConf.is_config(cfg) and len(cfg) == 0) or cfg == {}:
        return None
    return instantiate(cfg)
