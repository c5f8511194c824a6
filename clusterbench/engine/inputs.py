"""What the training loop feeds a method: feature views, or augmented views of in-memory images.

Both kinds hold all samples on the training device (uint8 for images: 4x smaller than float,
and CIFAR-10's 60000 x 3 x 32 x 32 is 184 MB) and hand out one batch at a time by sample index:

- `train_batch(index, generator)`: the views a training step sees;
- `eval_batch(index)`: the views evaluation sees (images: unaugmented, resized and normalised
  like the training views, `MultiViewAugment.test_view`);
- `full()`: every sample as stored, for `on_fit_start` (k-means fits there).

Augmentation draws its per-sample parameters from the run's generator, so a resumed run
continues the same random stream.
"""

from __future__ import annotations

import torch

from clusterbench.data.augment import MultiViewAugment
from clusterbench.errors import ConfigError


class FeatureInputs:
    """Feature views (multi-view sets, or an image set's flattened pixels), sliced per batch."""

    image_shape = None

    def __init__(self, views: list[torch.Tensor], device: torch.device) -> None:
        self.views = [v.to(device) for v in views]
        self.n_samples = int(self.views[0].shape[0])
        self.n_unlabeled = 0

    def full(self) -> list[torch.Tensor]:
        return self.views

    def train_batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        return [v[index] for v in self.views]

    def eval_batch(self, index: torch.Tensor) -> list[torch.Tensor]:
        return [v[index] for v in self.views]


class ImageInputs:
    """uint8 images on the device; each training batch becomes the augmentation's views.

    `unlabeled` (optional, e.g. STL-10's unlabeled split) is a second image store that is never
    evaluated; `unlabeled_batch` makes its views for instance-only steps."""

    def __init__(
        self,
        images: torch.Tensor,
        augment: MultiViewAugment,
        device: torch.device,
        channels_last: bool = False,
        unlabeled: torch.Tensor | None = None,
    ) -> None:
        self.images = images.to(device)
        self.unlabeled = unlabeled.to(device) if unlabeled is not None else None
        self.augment = augment
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.n_samples = int(self.images.shape[0])
        self.n_unlabeled = 0 if self.unlabeled is None else int(self.unlabeled.shape[0])
        c, h, w = (int(s) for s in self.images.shape[1:])
        size = augment.size
        self.image_shape = (c, *(size if size is not None else (h, w)))

    def _format(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        return [v.contiguous(memory_format=self.memory_format) for v in views]

    def full(self) -> list[torch.Tensor]:
        return [self.images]

    def train_batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        return self._format(self.augment(self.images[index], generator))

    def unlabeled_batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        return self._format(self.augment(self.unlabeled[index], generator))

    def eval_batch(self, index: torch.Tensor) -> list[torch.Tensor]:
        return self._format([self.augment.test_view(self.images[index])])


def build_inputs(data, augment: MultiViewAugment | None, device: torch.device, channels_last: bool = False):
    """Image inputs when an augmentation is configured, else the data's feature views."""
    if augment is None:
        return FeatureInputs(list(data.views), device)
    images = getattr(data, "images", None)
    if images is None or images.dim() != 4:
        raise ConfigError(
            f"augment= makes views of images, but dataset '{data.name}' has feature views; use augment=none with it (or an image dataset)"
        )
    return ImageInputs(images, augment, device, channels_last, getattr(data, "unlabeled", None))
